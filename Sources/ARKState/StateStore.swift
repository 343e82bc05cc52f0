import ARKCore
import Foundation
import GRDB
import GRDBSQLite
import Metrics
import Synchronization

public struct StateStoreError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The SQLite state store: WAL mode, `synchronous=NORMAL`, file mode 600, versioned
/// migrations. Aletheia is its only writer of outcomes; every other process reads.
public final class StateStore: Sendable {
    public let path: String
    let pool: DatabasePool
    let writeTimer = Metrics.Timer(label: MetricName.dbWrite)
    let checkpointer: WALCheckpointer?
    /// The histograms of the last rollup row this store wrote (see `mergeRollup`).
    let lastRollup = Mutex<CachedRollup?>(nil)

    /// The genesis link of the audit chain.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// A reader, or a writer that is not Aletheia (see `outcomesWriter`): SQLite checkpoints
    /// inside the commit that brings the WAL to 4,000 pages (16 MB), and each connection has a
    /// 16 MB page cache.
    public convenience init(path: String, readOnly: Bool = false) throws {
        try self.init(path: path, readOnly: readOnly, backgroundCheckpointInterval: nil, cacheKiB: 16_000)
    }

    /// `backgroundCheckpointInterval`: WAL checkpoints run on a thread of their own, at 1,000
    /// WAL pages (4 MB) or at least this often, never inside a commit.
    /// `cacheKiB`: SQLite's page cache per connection.
    init(path: String, readOnly: Bool, backgroundCheckpointInterval: Duration?, cacheKiB: Int) throws {
        self.path = path
        checkpointer = readOnly ? nil : backgroundCheckpointInterval.map {
            let c = $0.components
            return WALCheckpointer(path: path, frameThreshold: 1000, intervalNs: c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
        }
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        if !readOnly {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                // Foundation's text ends with a full stop; the fix follows it.
                let reason = error.localizedDescription.hasSuffix(".") ? error.localizedDescription : error.localizedDescription + "."
                throw StateStoreError("cannot create the state directory \(dir): \(reason) Fix: create it writable for this user, or set ARK_STATE_DB")
            }
            // Create the file with mode 600 before SQLite does, so it is never readable by others.
            if !FileManager.default.fileExists(atPath: path) {
                let fd = open(path, O_CREAT | O_WRONLY, 0o600)
                if fd < 0 { throw StateStoreError("cannot create \(path): \(String(cString: strerror(errno))). Fix: make \(dir) writable, or set ARK_STATE_DB") }
                close(fd)
            }
        }
        var config = Configuration()
        config.readonly = readOnly
        if checkpointer == nil {
            config.busyMode = .timeout(Double(Self.busyTimeoutMs) / 1000)
        } else {
            // The checkpoint thread holds the write lock for a millisecond or so when it makes
            // the WAL start over; SQLite's own busy wait would sleep 1, 2, then 5 ms. Poll
            // finely for the first 2 ms, then every millisecond, up to the same 10 s.
            config.busyMode = .callback { tries in
                usleep(tries < 20 ? 100 : 1000)
                return tries < 20 + Self.busyTimeoutMs
            }
        }
        config.prepareDatabase { [checkpointer] db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA cache_size = -\(cacheKiB)")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 4000")
            checkpointer?.install(on: db.sqliteConnection)
        }
        pool = try Self.openPool(path: path, configuration: config, migrate: !readOnly)
        checkpointer?.start()
        if !readOnly {
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
                chmod(path + suffix, 0o600)
            }
        }
    }

    deinit {
        checkpointer?.stop()
    }

    /// The store as Aletheia, the outcomes writer, opens it: WAL checkpoints on their own
    /// thread, and a 2 MB page cache instead of 16. A writer's cache only saves re-reading
    /// pages the OS already caches; at 1 kHz the smaller one cost no measurable CPU per pass
    /// (305 against 311 µs, `ark bench --rate 1000 --duration 60`) and took 16 MB off
    /// Aletheia's resident memory.
    public static func outcomesWriter(path: String, checkpointInterval: Duration) throws -> StateStore {
        try StateStore(path: path, readOnly: false, backgroundCheckpointInterval: checkpointInterval, cacheKiB: 2_000)
    }

    /// How long a statement waits for a lock another connection holds before it fails.
    static let busyTimeoutMs = 10_000

    /// The journal mode SQLite reports (must be `wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    /// Opens the pool and applies pending migrations. Two processes opening a new store at
    /// once (Aletheia and a reader) race twice: switching the new file to WAL answers "locked"
    /// without waiting, and GRDB reads which migrations are applied before it takes the write
    /// lock, so both may try the same one. The loser retries and finds the work done.
    static func openPool(path: String, configuration: Configuration, migrate: Bool) throws -> DatabasePool {
        var attempt = 0
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                if migrate { try migrator.migrate(pool) }
                return pool
            } catch {
                attempt += 1
                if attempt >= 10 { throw StateStoreError("cannot open the state store \(path): \(error)") }
                usleep(useconds_t(20_000 * attempt))
            }
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1_passes_orders_audit") { db in
            try db.execute(sql: """
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
        }
        // Counts the SLO engine sums over windows (so /slos never decodes a histogram per
        // second of a 6-hour window), and per-stage processing-time histograms from the hops.
        m.registerMigration("v2_rollup_slo_counts") { db in
            try db.execute(sql: """
                ALTER TABLE rollup_1s ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN timed INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN over_latency_slo INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN hrm_timed INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN hrm_over_slo INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rollup_1s ADD COLUMN stage_hists BLOB NOT NULL DEFAULT x'';
                """)
        }
        // Stage histograms go from fine to coarse buckets (StageHistograms explains why);
        // the rows written at fine resolution are resampled, not dropped.
        m.registerMigration("v3_coarse_stage_histograms") { db in
            let rows = try Row.fetchAll(db, sql: "SELECT second, stage_hists FROM rollup_1s WHERE length(stage_hists) > 0")
            let update = try db.makeStatement(sql: "UPDATE rollup_1s SET stage_hists = ? WHERE second = ?")
            for row in rows {
                let fine = StageHistograms(encoded: [UInt8](row["stage_hists"] as Data), stored: .fine)
                try update.execute(arguments: [Data(fine.encoded()), row["second"] as Int64])
            }
        }
        m.registerMigration("v4_watchdog") { db in
            try db.execute(sql: """
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
        }
        // Canary rollouts: each pass says which track it ran on, and each run keeps its steps,
        // checks and outcome.
        m.registerMigration("v5_canary") { db in
            try db.execute(sql: """
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
        }
        return m
    }

    // MARK: writing

    /// What one `record` call changed.
    public struct WriteSummary: Sendable, Equatable {
        public var passesInserted = 0
        public var passesAlreadyPresent = 0
        public var ordersInserted = 0
        public var deadLettersInserted = 0
    }

    /// Writes a batch in one transaction: passes (each chained to the previous audit hash),
    /// orders, dead letters and the per-second rollups. Idempotent by trace id, order id and
    /// dead letter id, so a redelivered batch changes nothing. `thresholds` decide which
    /// passes the rollups count as failed (too late) or over an SLO.
    @discardableResult
    public func record(passes: [PassRecord], orders: [OrderRecord] = [], deadLetters: [DeadLetterRecord] = [], thresholds: RollupThresholds = RollupThresholds()) throws -> WriteSummary {
        let started = monotonicNanoseconds()
        defer { writeTimer.recordNanoseconds(monotonicNanoseconds() - started) }
        return try pool.writeWithoutTransaction { db in
            var summary = WriteSummary()
            var cached = lastRollup.withLock { $0 }
            try db.inTransaction(.immediate) {
                var prev = try String.fetchOne(db.cachedStatement(sql: "SELECT hash FROM passes ORDER BY seq DESC LIMIT 1")) ?? Self.genesisHash
                let insertPass = try db.cachedStatement(sql: """
                    INSERT INTO passes (trace_id, signal_id, symbol, source, verdict, reasons, policy_hash, compliance_score,
                        t0_ns, done_ns, latency_ms, hrm_eval_us, continuity_ok, injected_violation, order_id, track, record, prev_hash, hash)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(trace_id) DO NOTHING
                    """)
                var rollups: [Int64: Rollup] = [:]
                for p in passes {
                    let record = p.auditRecord()
                    let hash = Self.chainHash(prev: prev, record: record)
                    // Bound through SQLite's own API: GRDB's general argument path boxes every
                    // value and copied the 1 KB record twice, a fifth of Aletheia's time.
                    if try Self.insert(p, record: record, prev: prev, hash: hash, with: insertPass.sqliteStatement, in: db) {
                        prev = hash
                        summary.passesInserted += 1
                        rollups[p.doneNs / 1_000_000_000, default: Rollup()].add(p, thresholds)
                    } else {
                        summary.passesAlreadyPresent += 1
                    }
                }
                let insertOrder = try db.cachedStatement(sql: """
                    INSERT INTO orders (order_id, trace_id, symbol, side, quantity, price, notional, realized_pnl, ts_ns)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                    """)
                for o in orders {
                    try insertOrder.execute(arguments: [o.orderID, o.traceID, o.symbol, o.side, o.quantity, o.price, o.notional, o.realizedPnl, o.tsNs])
                    summary.ordersInserted += db.changesCount
                }
                let insertDead = try db.cachedStatement(sql: """
                    INSERT INTO dead_letters (deadletter_id, stream, entry_id, consumer_group, consumer, reason, payload, deliveries, trace_id, ts_ns)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                    """)
                for d in deadLetters {
                    try insertDead.execute(arguments: [d.deadLetterID, d.stream, d.entryID, d.group, d.consumer, d.reason, Data(d.payload), d.deliveries, d.traceID, d.tsNs])
                    summary.deadLettersInserted += db.changesCount
                    // A dead letter whose trace is known is counted through its pass; one
                    // without a trace still failed a pass and must not vanish from availability.
                    if db.changesCount == 1 && d.traceID == nil {
                        rollups[d.tsNs / 1_000_000_000, default: Rollup()].addUntracedDeadLetter()
                    }
                }
                for (second, r) in rollups.sorted(by: { $0.key < $1.key }) { try Self.mergeRollup(db, second: second, r, cached: &cached) }
                return .commit
            }
            lastRollup.withLock { $0 = cached }  // only once committed
            return summary
        }
    }

    /// The link of a record: SHA-256 of the previous hash (hex) followed by the record.
    /// Runs the prepared pass INSERT for `p`; true when a row was added (false: the trace
    /// was already recorded).
    static func insert(_ p: PassRecord, record: [UInt8], prev: String, hash: String, with stmt: OpaquePointer, in db: Database) throws -> Bool {
        sqlite3_reset(stmt)
        var binder = Binder(stmt: stmt)
        binder.text(p.traceID)
        binder.text(p.signalID)
        binder.text(p.symbol)
        binder.text(p.source)
        binder.text(p.verdict.rawValue)
        binder.text(jsonArray(p.reasons))
        binder.text(p.policyHash)
        binder.double(p.complianceScore)
        binder.int(p.t0Ns)
        binder.int(p.doneNs)
        binder.double(p.latencyMs)
        binder.double(p.hrmEvalUs)
        binder.int(p.continuityOK ? 1 : 0)
        binder.text(p.injectedViolation)
        binder.text(p.orderID)
        binder.text(p.track.rawValue)
        let rc = record.withUnsafeBufferPointer { buf in
            binder.bytes(buf)
            binder.text(prev)
            binder.text(hash)
            return sqlite3_step(stmt)
        }
        guard rc == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
        }
        return sqlite3_changes(db.sqliteConnection) == 1
    }

    /// Binds parameters in order. Text is copied by SQLite (SQLITE_TRANSIENT) except `bytes`,
    /// which must stay alive until the statement has run.
    struct Binder {
        let stmt: OpaquePointer
        var index: Int32 = 1
        static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        mutating func text(_ value: String?) {
            defer { index += 1 }
            guard var value else { sqlite3_bind_null(stmt, index); return }
            value.withUTF8 { utf8 in bind(utf8, Self.transient) }
        }

        /// UTF-8 text bound in place (SQLITE_STATIC).
        mutating func bytes(_ utf8: UnsafeBufferPointer<UInt8>) {
            defer { index += 1 }
            bind(utf8, nil)
        }

        private func bind(_ utf8: UnsafeBufferPointer<UInt8>, _ destructor: sqlite3_destructor_type?) {
            // A zero-length buffer may have no address, and SQLite binds NULL for a null pointer.
            guard let base = utf8.baseAddress, !utf8.isEmpty else {
                sqlite3_bind_text(stmt, index, "", 0, Self.transient)
                return
            }
            base.withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                _ = sqlite3_bind_text(stmt, index, $0, Int32(utf8.count), destructor)
            }
        }

        mutating func double(_ value: Double?) {
            defer { index += 1 }
            if let value { sqlite3_bind_double(stmt, index, value) } else { sqlite3_bind_null(stmt, index) }
        }

        mutating func int(_ value: Int64) {
            defer { index += 1 }
            sqlite3_bind_int64(stmt, index, value)
        }
    }

    public static func chainHash(prev: String, record: [UInt8]) -> String {
        var input = Array(prev.utf8)
        input.append(contentsOf: record)
        return SHA256.hexDigest(input)
    }

    static func jsonArray(_ items: [String]) -> String {
        var w = JSONWriter(capacity: 64)
        w.beginArray()
        for s in items { w.string(s) }
        w.endArray()
        return String(decoding: w.bytes, as: UTF8.self)
    }

    struct Rollup {
        var passes = 0, approved = 0, denied = 0, rejected = 0, errors = 0, deadlettered = 0, slow = 0
        var failed = 0, timed = 0, overLatencySLO = 0, hrmTimed = 0, hrmOverSLO = 0
        var latencySum = 0.0, latencyMax = 0.0
        var latency = LogHistogram()
        var hrm = LogHistogram()
        var stages = StageHistograms()

        mutating func add(_ p: PassRecord, _ t: RollupThresholds) {
            passes += 1
            switch p.verdict {
            case .approved: approved += 1
            case .denied: denied += 1
            case .rejected: rejected += 1
            case .error: errors += 1
            case .deadlettered: deadlettered += 1
            }
            guard p.verdict != .deadlettered else { failed += 1; return }
            let ms = p.latencyMs
            if ms > t.passTimeoutMs { slow += 1 }
            if p.verdict.isFailure || ms > t.passTimeoutMs { failed += 1 }
            timed += 1
            if ms > t.latencySLOMs { overLatencySLO += 1 }
            latencySum += ms
            latencyMax = max(latencyMax, ms)
            latency.record(micros: ms * 1000)
            if let us = p.hrmEvalUs {
                hrm.record(micros: us)
                hrmTimed += 1
                if us / 1000 > t.hrmSLOMs { hrmOverSLO += 1 }
            }
            for t in p.stageTimes { stages.record(t.stage, micros: t.micros) }
        }

        mutating func addUntracedDeadLetter() {
            passes += 1
            deadlettered += 1
            failed += 1
        }
    }

    /// A rollup row's histograms as this store last wrote them, and its pass count then.
    struct CachedRollup {
        var second: Int64
        var passes: Int
        var latency: LogHistogram
        var hrm: LogHistogram
        var stages: StageHistograms
    }

    /// Adds `r` to the row of `second`. At 1,000 passes/s every batch merges into the same
    /// row, and decoding its three histograms again each time was a fifth of Aletheia's CPU:
    /// the histograms this store wrote last are kept in `cached`, and used while the row's
    /// pass count shows no other writer added to it since (every merge adds passes).
    static func mergeRollup(_ db: Database, second: Int64, _ r: Rollup, cached: inout CachedRollup?) throws {
        var latency = r.latency
        var hrm = r.hrm
        var stages = r.stages
        let count = try db.cachedStatement(sql: "SELECT passes FROM rollup_1s WHERE second = ?")
        let storedPasses = try Int.fetchOne(count, arguments: [second])
        if let storedPasses {
            if let c = cached, c.second == second, c.passes == storedPasses {
                latency.merge(c.latency)
                hrm.merge(c.hrm)
                stages.merge(c.stages)
            } else {
                // Cached statements: compiling these for every batch showed in Aletheia's profile.
                let select = try db.cachedStatement(sql: "SELECT latency_hist, hrm_hist, stage_hists FROM rollup_1s WHERE second = ?")
                if let row = try Row.fetchOne(select, arguments: [second]) {
                    latency.merge(LogHistogram(encoded: [UInt8](row["latency_hist"] as Data)))
                    hrm.merge(LogHistogram(encoded: [UInt8](row["hrm_hist"] as Data)))
                    stages.merge(StageHistograms(encoded: [UInt8](row["stage_hists"] as Data)))
                }
            }
        }
        cached = CachedRollup(second: second, passes: (storedPasses ?? 0) + r.passes, latency: latency, hrm: hrm, stages: stages)
        try db.cachedStatement(sql: """
            INSERT INTO rollup_1s (second, passes, approved, denied, rejected, errors, deadlettered, slow, latency_sum_ms, latency_max_ms,
                latency_hist, hrm_hist, failed, timed, over_latency_slo, hrm_timed, hrm_over_slo, stage_hists)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(second) DO UPDATE SET
                passes = passes + excluded.passes, approved = approved + excluded.approved,
                denied = denied + excluded.denied, rejected = rejected + excluded.rejected,
                errors = errors + excluded.errors, deadlettered = deadlettered + excluded.deadlettered,
                slow = slow + excluded.slow, latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms,
                latency_max_ms = max(latency_max_ms, excluded.latency_max_ms),
                latency_hist = excluded.latency_hist, hrm_hist = excluded.hrm_hist,
                failed = failed + excluded.failed, timed = timed + excluded.timed,
                over_latency_slo = over_latency_slo + excluded.over_latency_slo,
                hrm_timed = hrm_timed + excluded.hrm_timed, hrm_over_slo = hrm_over_slo + excluded.hrm_over_slo,
                stage_hists = excluded.stage_hists
            """).execute(arguments: [second, r.passes, r.approved, r.denied, r.rejected, r.errors, r.deadlettered, r.slow,
                             r.latencySum, r.latencyMax, Data(latency.encoded()), Data(hrm.encoded()),
                             r.failed, r.timed, r.overLatencySLO, r.hrmTimed, r.hrmOverSLO, Data(stages.encoded())])
    }

    public func upsertHeartbeats(_ beats: [HeartbeatRecord]) throws {
        guard !beats.isEmpty else { return }
        try pool.write { db in
            let stmt = try db.cachedStatement(sql: """
                INSERT INTO heartbeats (instance, stage, host, pid, processed, failed, pending, p50_ms, p95_ms, ts_ns)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(instance) DO UPDATE SET stage = excluded.stage, host = excluded.host, pid = excluded.pid,
                    processed = excluded.processed, failed = excluded.failed, pending = excluded.pending,
                    p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, ts_ns = excluded.ts_ns
                WHERE excluded.ts_ns >= heartbeats.ts_ns
                """)
            for b in beats {
                try stmt.execute(arguments: [b.instance, b.stage, b.host, b.pid, b.processed, b.failed, b.pending, b.p50Ms, b.p95Ms, b.tsNs])
            }
        }
    }

    /// Copies the live database to `destination` with SQLite's online backup (consistent
    /// while Aletheia keeps writing).
    /// Copies the store into `destination` with SQLite's backup API (a consistent snapshot
    /// while writers go on), as one self-contained file: the copy leaves WAL mode, so no
    /// `-wal`/`-shm` files trail it.
    public func backup(to destination: String) throws {
        let target = try DatabaseQueue(path: destination)
        try pool.backup(to: target)
        try target.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = DELETE") }
    }

    /// SQLite's own `PRAGMA integrity_check`: "ok", or what is wrong.
    public func integrityCheck() throws -> String {
        try pool.read { db in
            try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
        }
    }
}

/// A write the store refused for reasons of its environment: another writer holding the
/// lock past the busy timeout, a full disk, an I/O error, a read-only file system. The batch
/// is retried as it is (see `EnvironmentFailure`); the message is SQLite's.
public struct StoreUnavailable: EnvironmentFailure, CustomStringConvertible {
    public let description: String

    static let codes: [ResultCode] = [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PROTOCOL, .SQLITE_NOMEM]

    /// nil unless `error` is such a failure.
    public init?(_ error: any Error) {
        guard let e = error as? DatabaseError, Self.codes.contains(e.resultCode) else { return nil }
        description = "\(e)"
    }
}
