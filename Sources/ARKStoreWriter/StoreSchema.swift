// The state store's schema as versioned migrations.

/// The state store's schema: versioned migrations, applied in order, each once. Applied
/// migrations are listed in `grdb_migrations`, the table GRDB's migrator kept before this
/// (stores made by earlier releases open as they are).
enum StoreSchema {
    struct Migration {
        let identifier: String
        let apply: @Sendable (SQLiteConnection) throws -> Void
    }

    static let migrations: [Migration] = [
        Migration(identifier: "v1_passes_orders_audit") { db in
            try db.execute("""
                CREATE TABLE passes (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    trace_id TEXT NOT NULL UNIQUE,
                    signal_id TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    source TEXT NOT NULL,
                    verdict TEXT NOT NULL,
                    reasons TEXT NOT NULL,
                    policy_hash TEXT,
                    compliance_score REAL,
                    t0_ns INTEGER NOT NULL,
                    done_ns INTEGER NOT NULL,
                    latency_ms REAL NOT NULL,
                    hrm_eval_us REAL,
                    continuity_ok INTEGER NOT NULL,
                    injected_violation TEXT,
                    order_id TEXT,
                    record TEXT NOT NULL,
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL
                );
                CREATE INDEX passes_done_ns ON passes(done_ns);
                CREATE TABLE orders (
                    order_id TEXT PRIMARY KEY,
                    trace_id TEXT NOT NULL UNIQUE,
                    symbol TEXT NOT NULL,
                    side TEXT NOT NULL,
                    quantity REAL NOT NULL,
                    price REAL NOT NULL,
                    notional REAL NOT NULL,
                    realized_pnl REAL NOT NULL,
                    ts_ns INTEGER NOT NULL
                );
                CREATE TABLE dead_letters (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    deadletter_id TEXT NOT NULL UNIQUE,
                    stream TEXT NOT NULL,
                    entry_id TEXT NOT NULL,
                    consumer_group TEXT NOT NULL,
                    consumer TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    deliveries INTEGER NOT NULL,
                    trace_id TEXT,
                    ts_ns INTEGER NOT NULL
                );
                CREATE TABLE rollup_1s (
                    second INTEGER PRIMARY KEY,
                    passes INTEGER NOT NULL,
                    approved INTEGER NOT NULL,
                    denied INTEGER NOT NULL,
                    rejected INTEGER NOT NULL,
                    errors INTEGER NOT NULL,
                    deadlettered INTEGER NOT NULL,
                    slow INTEGER NOT NULL,
                    latency_sum_ms REAL NOT NULL,
                    latency_max_ms REAL NOT NULL,
                    latency_hist BLOB NOT NULL,
                    hrm_hist BLOB NOT NULL
                );
                CREATE TABLE heartbeats (
                    instance TEXT PRIMARY KEY,
                    stage TEXT NOT NULL,
                    host TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    processed INTEGER NOT NULL,
                    failed INTEGER NOT NULL,
                    pending INTEGER NOT NULL,
                    p50_ms REAL NOT NULL,
                    p95_ms REAL NOT NULL,
                    ts_ns INTEGER NOT NULL
                );
                """)
        },
        // Counts the SLO engine sums over windows (so /slos never decodes a histogram per
        // second of a 6-hour window), and per-stage processing-time histograms from the hops.
        Migration(identifier: "v2_rollup_slo_counts") { db in
            try db.execute("""
                ALTER TABLE rollup_1s ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN timed INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN over_latency_slo INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN hrm_timed INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN hrm_over_slo INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN stage_hists BLOB NOT NULL DEFAULT x'';
                """)
        },
        // Stage histograms go from fine to coarse buckets (StageHistograms explains why);
        // the rows written at fine resolution are resampled, not dropped.
        Migration(identifier: "v3_coarse_stage_histograms") { db in
            let select = try db.prepare("SELECT second, stage_hists FROM rollup_1s WHERE length(stage_hists) > 0")
            var rows: [(Int64, [UInt8])] = []
            while try select.step() { rows.append((select.int64(0), select.blob(1))) }
            let update = try db.prepare("UPDATE rollup_1s SET stage_hists = ? WHERE second = ?")
            for (second, blob) in rows {
                update.reset()
                update.bind(blob: StageHistograms(encoded: blob, stored: .fine).encoded())
                update.bind(second)
                try update.run()
            }
        },
        Migration(identifier: "v4_watchdog") { db in
            try db.execute("""
                CREATE TABLE watchdog_instances (
                    instance TEXT PRIMARY KEY,
                    stage TEXT NOT NULL,
                    status TEXT NOT NULL,
                    offences INTEGER NOT NULL,
                    since_ns INTEGER NOT NULL,
                    release_at_ns INTEGER NOT NULL,
                    probation_until_ns INTEGER NOT NULL,
                    reason TEXT NOT NULL
                );
                CREATE TABLE watchdog_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    instance TEXT NOT NULL,
                    stage TEXT NOT NULL,
                    action TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    figures TEXT NOT NULL,
                    by TEXT NOT NULL,
                    ts_ns INTEGER NOT NULL
                );
                CREATE INDEX watchdog_events_ts ON watchdog_events(ts_ns);
                """)
        },
        // Canary rollouts: each pass says which track it ran on, and each run keeps its steps,
        // checks and outcome.
        Migration(identifier: "v5_canary") { db in
            try db.execute("""
                ALTER TABLE passes ADD COLUMN track TEXT NOT NULL DEFAULT 'baseline';
                CREATE INDEX passes_track_done_ns ON passes(track, done_ns);
                CREATE TABLE canary_runs (
                    run_id TEXT PRIMARY KEY,
                    release TEXT NOT NULL,
                    baseline_release TEXT NOT NULL,
                    plan TEXT NOT NULL,
                    status TEXT NOT NULL,
                    percent REAL NOT NULL,
                    started_ns INTEGER NOT NULL,
                    updated_ns INTEGER NOT NULL,
                    ended_ns INTEGER,
                    tripwire TEXT,
                    report TEXT NOT NULL DEFAULT '{}',
                    requested TEXT,
                    controller_pid INTEGER NOT NULL
                );
                CREATE TABLE canary_checks (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    run_id TEXT NOT NULL,
                    step INTEGER NOT NULL,
                    percent REAL NOT NULL,
                    verdict TEXT NOT NULL,
                    figures TEXT NOT NULL,
                    ts_ns INTEGER NOT NULL
                );
                CREATE INDEX canary_checks_run ON canary_checks(run_id, id);
                """)
        },
        // The audit becomes a Merkle tree with signed checkpoints (RFC 9162): passes, orders
        // and dead letters are its leaves; what is already stored becomes its first leaves.
        Migration(identifier: "v6_audit_tree") { db in
            try AuditTreeStore.adoptExistingRows(db)
        },
        // Trading states (the kill switch, the breakers): each change a leaf of the audit.
        Migration(identifier: "v7_trading_states") { db in
            try db.execute("""
                CREATE TABLE trading_states (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    control_id TEXT NOT NULL UNIQUE,
                    shard TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    mode TEXT NOT NULL,
                    from_mode TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    by TEXT NOT NULL,
                    at_ns INTEGER NOT NULL,
                    leaf INTEGER NOT NULL UNIQUE,
                    leaf_hash TEXT NOT NULL
                );
                CREATE INDEX trading_states_at ON trading_states(at_ns);
                """)
        },
    ]

    /// Applies the migrations `db` lacks, up to and including `last` (all when nil), in one
    /// write transaction: a second process opening a new store at the same moment waits for
    /// the lock and then finds the work done. A store that lacks none is only read, so
    /// opening it never waits behind another writer's transaction (`ark health` must answer
    /// while a stuck writer holds the lock).
    static func migrate(_ db: SQLiteConnection, upTo last: String? = nil) throws {
        guard try !pending(db, upTo: last).isEmpty else { return }
        try db.inImmediateTransaction {
            try db.execute("CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            let record = try db.prepare("INSERT INTO grdb_migrations (identifier) VALUES (?)")
            for m in try pending(db, upTo: last) {
                try m.apply(db)
                record.reset()
                record.bind(m.identifier)
                try record.run()
            }
        }
    }

    /// The migrations up to `last` that `db` has not applied, in order.
    static func pending(_ db: SQLiteConnection, upTo last: String?) throws -> [Migration] {
        var applied: Set<String> = []
        let hasTable = try db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'grdb_migrations'").firstRow { _ in true } ?? false
        if hasTable {
            let select = try db.prepare("SELECT identifier FROM grdb_migrations")
            while try select.step() { applied.insert(select.text(0)) }
        }
        var result: [Migration] = []
        for m in migrations {
            if !applied.contains(m.identifier) { result.append(m) }
            if m.identifier == last { break }
        }
        return result
    }
}
