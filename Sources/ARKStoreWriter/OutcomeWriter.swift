import ARKCore
import GRDBSQLite
import Metrics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct StateStoreError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The state store's writer of outcomes: passes, orders and dead letters (the audit tree's leaves), the
/// per-second rollups and heartbeats, each batch in one transaction. Aletheia writes through
/// it; so does `StateStore.record`. It opens the store as every writer does (directory and
/// file mode 600, WAL, `synchronous=NORMAL`, the migrations), on SQLite's C API and not
/// GRDB, so that ark-agent links FoundationEssentials only (see `SQLiteConnection`).
public final class OutcomeWriter: @unchecked Sendable {
    public let path: String
    // Guarded by `lock`.
    private let connection: SQLiteConnection
    private let statements: Statements
    private var lastRollup: CachedRollup?
    private let lock = ConditionLock()
    private let checkpointer: WALCheckpointer?
    private let writeTimer = Metrics.Timer(label: MetricName.dbWrite)
    /// Held while this writer is open: `ark restore` refuses meanwhile.
    private let writerLock: StoreWriterLock
    /// Signs the audit tree's checkpoints (Aletheia's writer); nil: the tree grows unsigned.
    private let signer: AuditSigner?
    /// When the oldest leaf this writer committed and no checkpoint covers yet was written;
    /// nil when none waits. At opening: now, for a tail left unsigned before this writer.
    private var oldestUnsignedNs: Int64? = wallClockNanoseconds()
    private var unpublished: AuditCheckpoint?
    private let checkpointFailures = Counter(label: MetricName.auditCheckpointFailures)

    /// The checkpoint interval of this writer's signer (nil: it signs nothing).
    public var signerIntervalNs: Int64? { signer?.intervalNs }

    /// The first pass's `prev_hash` (and the genesis link of the old hash chain).
    public static let genesisHash = String(repeating: "0", count: 64)

    /// How long a statement waits for a lock another connection holds before it fails.
    public static let busyTimeoutMs = 10_000

    /// The store as Aletheia opens it: WAL checkpoints on a thread of their own, at 1,000
    /// WAL pages (4 MB) or at least every `checkpointInterval`, never inside a commit; and a
    /// 2 MB page cache. A writer's cache only saves re-reading pages the OS already caches:
    /// at 1 kHz a 2 MB cache cost no measurable CPU per pass against 16 MB (305 against
    /// 311 µs, `ark bench --rate 1000 --duration 60`) and took 16 MB off Aletheia's memory;
    /// 1 MB cost 11-14 % more CPU at `max` (docs/performance.md).
    /// `signer` signs the audit tree's checkpoints.
    public static func aletheia(path: String, checkpointInterval: Duration, signer: AuditSigner? = nil) throws -> OutcomeWriter {
        let c = checkpointInterval.components
        return try OutcomeWriter(path: path, cacheKiB: 2_000, backgroundCheckpointIntervalNs: c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000, signer: signer)
    }

    /// `backgroundCheckpointIntervalNs`: nil leaves WAL checkpoints to SQLite, inside the
    /// commit that brings the WAL to 4,000 pages (16 MB).
    public init(path: String, cacheKiB: Int = 2_000, backgroundCheckpointIntervalNs: Int64? = nil, signer: AuditSigner? = nil) throws {
        self.path = path
        self.signer = signer
        try Self.prepareFile(path)
        writerLock = try StoreWriterLock.shared(path)
        checkpointer = backgroundCheckpointIntervalNs.map { WALCheckpointer(path: path, frameThreshold: 1000, intervalNs: $0) }
        connection = try Self.connect(path: path, cacheKiB: cacheKiB, checkpointer: checkpointer)
        statements = try Statements(connection)
        checkpointer?.start()
        for suffix in ["", "-wal", "-shm"] where access(path + suffix, F_OK) == 0 {
            chmod(path + suffix, 0o600)
        }
    }

    deinit {
        checkpointer?.stop()
    }

    /// Creates the directory (mode 700) and the file (mode 600) before SQLite does, so the
    /// store is never readable by others; names the fix when it cannot.
    static func prepareFile(_ path: String) throws {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if !dir.isEmpty, let failure = makeDirectories(dir) {
            throw StateStoreError("cannot create the state directory \(dir): \(failure). Fix: create it writable for this user, or set ARK_STATE_DB")
        }
        if access(path, F_OK) != 0 {
            let fd = open(path, O_CREAT | O_WRONLY, 0o600)
            if fd < 0 { throw StateStoreError("cannot create \(path): \(String(cString: strerror(errno))). Fix: make \(dir.isEmpty ? "/" : dir) writable, or set ARK_STATE_DB") }
            close(fd)
        }
    }

    /// `mkdir -p` with mode 700 for what it creates; nil when `dir` exists, else the reason.
    static func makeDirectories(_ dir: String) -> String? {
        var isDir = stat()
        if stat(dir, &isDir) == 0 { return (isDir.st_mode & S_IFMT) == S_IFDIR ? nil : "a file of that name is in the way" }
        if let slash = dir.lastIndex(of: "/"), slash != dir.startIndex, let failure = makeDirectories(String(dir[..<slash])) {
            return failure
        }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { return String(cString: strerror(errno)) }
        return nil
    }

    /// Opens the connection and applies pending migrations. Two processes opening a new store
    /// at once race on switching the new file to WAL, which answers "locked" without waiting:
    /// the loser retries.
    static let pageSize = 8192

    static func connect(path: String, cacheKiB: Int, checkpointer: WALCheckpointer?) throws -> SQLiteConnection {
        var attempt = 0
        while true {
            do {
                let db = try SQLiteConnection(path: path)
                if checkpointer != nil {
                    // The checkpoint thread holds the write lock for a millisecond or so when
                    // it makes the WAL start over; SQLite's own busy wait would sleep 1, 2, then
                    // 5 ms. Poll finely for the first 2 ms, then every millisecond, up to the
                    // same 10 s.
                    sqlite3_busy_handler(db.handle, { _, tries in
                        usleep(tries < 20 ? 100 : 1000)
                        return tries < 20 + Int32(OutcomeWriter.busyTimeoutMs) ? 1 : 0
                    }, nil)
                } else {
                    sqlite3_busy_timeout(db.handle, Int32(busyTimeoutMs))
                }
                // A new store's page size (an existing one keeps its own): a pass row is about
                // 2 KB, so 4 KB pages held one row each and half of every page written (to the
                // WAL, then again to the database) was empty.
                try db.execute("PRAGMA page_size = \(Self.pageSize)")
                let mode = try db.text("PRAGMA journal_mode = WAL")
                guard mode == "wal" else { throw StateStoreError("the state store \(path) cannot use WAL mode (journal_mode is \(mode ?? "unknown"))") }
                try db.execute("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -\(cacheKiB); PRAGMA wal_autocheckpoint = 4000")
                // After the pragmas: setting wal_autocheckpoint installs SQLite's own hook,
                // which the checkpointer's replaces.
                checkpointer?.install(on: db.handle)
                try StoreSchema.migrate(db)
                return db
            } catch let e as StateStoreError {
                throw e
            } catch {
                attempt += 1
                if attempt >= 10 { throw StateStoreError("cannot open the state store \(path): \(error)") }
                usleep(useconds_t(20_000 * attempt))
            }
        }
    }

    // MARK: writing

    /// The statements of the write path, prepared once with the connection (a lookup by SQL
    /// text per batch would hash a few kilobytes per signal at 1 kHz).
    private struct Statements {
        let lastHash, insertPass, insertOrder, insertDeadLetter, insertTradingState, rollupPasses, rollupHistograms, upsertRollup, upsertHeartbeat: SQLiteStatement
        let loadTree, saveTree, insertNode, insertCheckpoint, newestCheckpoint: SQLiteStatement

        init(_ db: SQLiteConnection) throws {
            lastHash = try db.prepare("SELECT hash FROM passes ORDER BY seq DESC LIMIT 1")
            insertPass = try db.prepare("""
                INSERT INTO passes (trace_id, signal_id, symbol, source, verdict, reasons, policy_hash, compliance_score,
                    t0_ns, done_ns, latency_ms, hrm_eval_us, continuity_ok, injected_violation, order_id, track, record, prev_hash, hash, leaf)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(trace_id) DO NOTHING
                """)
            insertOrder = try db.prepare("""
                INSERT INTO orders (order_id, trace_id, symbol, side, quantity, price, notional, realized_pnl, ts_ns, leaf, leaf_hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """)
            insertDeadLetter = try db.prepare("""
                INSERT INTO dead_letters (deadletter_id, stream, entry_id, consumer_group, consumer, reason, payload, deliveries, trace_id, ts_ns, leaf, leaf_hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """)
            insertTradingState = try db.prepare("""
                INSERT INTO trading_states (control_id, shard, scope, mode, from_mode, reason, by, at_ns, leaf, leaf_hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """)
            loadTree = try db.prepare("SELECT size, frontier FROM audit_tree WHERE id = 1")
            saveTree = try db.prepare("INSERT INTO audit_tree (id, size, frontier) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET size = excluded.size, frontier = excluded.frontier")
            insertNode = try db.prepare("INSERT OR REPLACE INTO audit_nodes (height, idx, hash) VALUES (?, ?, ?)")
            insertCheckpoint = try db.prepare("INSERT INTO audit_checkpoints (kind, size, root, time_ns, key_id, note, signature) VALUES (?, ?, ?, ?, ?, ?, ?)")
            newestCheckpoint = try db.prepare("SELECT size FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
            rollupPasses = try db.prepare("SELECT passes FROM rollup_1s WHERE second = ?")
            rollupHistograms = try db.prepare("SELECT latency_hist, hrm_hist, stage_hists FROM rollup_1s WHERE second = ?")
            upsertRollup = try db.prepare("""
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
                """)
            upsertHeartbeat = try db.prepare("""
                INSERT INTO heartbeats (instance, stage, host, pid, processed, failed, pending, p50_ms, p95_ms, ts_ns)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(instance) DO UPDATE SET stage = excluded.stage, host = excluded.host, pid = excluded.pid,
                    processed = excluded.processed, failed = excluded.failed, pending = excluded.pending,
                    p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, ts_ns = excluded.ts_ns
                WHERE excluded.ts_ns >= heartbeats.ts_ns
                """)
        }
    }

    /// What one `record` call changed.
    public struct WriteSummary: Sendable, Equatable {
        public var passesInserted = 0
        public var passesAlreadyPresent = 0
        public var ordersInserted = 0
        public var deadLettersInserted = 0
        public var tradingStatesInserted = 0

        public var leavesAdded: Int { passesInserted + ordersInserted + deadLettersInserted + tradingStatesInserted }
    }

    /// Writes a batch in one transaction: passes, orders and dead letters (each a new leaf of
    /// the audit tree, see `AuditLeaf`), the tree's new right edge, and the per-second
    /// rollups; and, when a signer is set and a checkpoint is due, the signed checkpoint of
    /// the tree as this batch leaves it. Idempotent by trace id, order id and dead letter id,
    /// so a redelivered batch changes nothing. `thresholds` decide which passes the rollups
    /// count as failed (too late) or over an SLO.
    @discardableResult
    public func record(passes: [PassRecord], orders: [OrderRecord] = [], deadLetters: [DeadLetterRecord] = [], tradingStates: [TradingStateRecord] = [],
                       thresholds: RollupThresholds = RollupThresholds()) throws -> WriteSummary {
        let started = monotonicNanoseconds()
        defer { writeTimer.recordNanoseconds(monotonicNanoseconds() - started) }
        lock.lock()
        defer { lock.unlock() }
        let db = connection
        var cached = lastRollup
        var signed: AuditCheckpoint?
        let summary = try db.inImmediateTransaction {
            var summary = WriteSummary()
            // Read in the transaction: another writer (a second Aletheia, a canary's) may
            // have extended the tree since this one last did.
            var tree = try loadTree()
            var prev = try statements.lastHash.firstRow { $0.text(0) } ?? Self.genesisHash
            let insertPass = statements.insertPass
            var rollups: [Int64: Rollup] = [:]
            // A trace recorded before (a redelivery: after a failover, a stage may have done it
            // again on the promoted replica; a producer's resubmission) keeps what was recorded
            // first: its order, if the first outcome had one, was recorded with it, and a second
            // execution's order is not part of the audited history. By order id, not trace id:
            // the same batch can hold both outcomes of one trace.
            var ordersOfRecordedPasses: Set<String> = []
            for p in passes {
                let record = p.auditRecord()
                let leafHash = Merkle.leafHash(record)
                let hash = SHA256.hex(leafHash)
                if try Self.insert(p, record: record, prev: prev, hash: hash, leaf: tree.size, with: insertPass) {
                    try append(leafHash, to: &tree)
                    prev = hash
                    summary.passesInserted += 1
                    if let id = p.orderID { ordersOfRecordedPasses.insert(id) }
                    rollups[p.doneNs / 1_000_000_000, default: Rollup()].add(p, thresholds)
                } else {
                    summary.passesAlreadyPresent += 1
                }
            }
            let insertOrder = statements.insertOrder
            for o in orders where ordersOfRecordedPasses.contains(o.orderID) {
                let leafHash = Merkle.leafHash(AuditLeaf.data(of: o))
                insertOrder.reset()
                insertOrder.bind(o.orderID)
                insertOrder.bind(o.traceID)
                insertOrder.bind(o.symbol)
                insertOrder.bind(o.side)
                insertOrder.bind(o.quantity)
                insertOrder.bind(o.price)
                insertOrder.bind(o.notional)
                insertOrder.bind(o.realizedPnl)
                insertOrder.bind(o.tsNs)
                insertOrder.bind(tree.size)
                insertOrder.bind(SHA256.hex(leafHash))
                try insertOrder.run()
                if db.changes == 1 {
                    try append(leafHash, to: &tree)
                    summary.ordersInserted += 1
                }
            }
            let insertDead = statements.insertDeadLetter
            for d in deadLetters {
                let leafHash = Merkle.leafHash(AuditLeaf.data(of: d))
                insertDead.reset()
                insertDead.bind(d.deadLetterID)
                insertDead.bind(d.stream)
                insertDead.bind(d.entryID)
                insertDead.bind(d.group)
                insertDead.bind(d.consumer)
                insertDead.bind(d.reason)
                insertDead.bind(blob: d.payload)
                insertDead.bind(d.deliveries)
                insertDead.bind(d.traceID)
                insertDead.bind(d.tsNs)
                insertDead.bind(tree.size)
                insertDead.bind(SHA256.hex(leafHash))
                try insertDead.run()
                guard db.changes == 1 else { continue }
                try append(leafHash, to: &tree)
                summary.deadLettersInserted += 1
                // A dead letter whose trace is known is counted through its pass; one
                // without a trace still failed a pass and must not vanish from availability.
                if d.traceID == nil {
                    rollups[d.tsNs / 1_000_000_000, default: Rollup()].addUntracedDeadLetter()
                }
            }
            let insertState = statements.insertTradingState
            for t in tradingStates {
                let leafHash = Merkle.leafHash(AuditLeaf.data(of: t))
                insertState.reset()
                insertState.bind(t.controlID)
                insertState.bind(t.shard)
                insertState.bind(t.scope)
                insertState.bind(t.mode)
                insertState.bind(t.from)
                insertState.bind(t.reason)
                insertState.bind(t.by)
                insertState.bind(t.atNs)
                insertState.bind(tree.size)
                insertState.bind(SHA256.hex(leafHash))
                try insertState.run()
                guard db.changes == 1 else { continue }
                try append(leafHash, to: &tree)
                summary.tradingStatesInserted += 1
            }
            try saveTree(tree)
            let now = wallClockNanoseconds()
            if oldestUnsignedNs == nil, summary.leavesAdded > 0 { oldestUnsignedNs = now }
            signed = try signIfDue(tree, nowNs: now)
            for (second, r) in rollups.sorted(by: { $0.key < $1.key }) { try Self.mergeRollup(statements, second: second, r, cached: &cached) }
            return summary
        }
        lastRollup = cached  // only once committed
        if let signed { publish(signed) }
        return summary
    }

    /// Runs the prepared pass INSERT for `p`; true when a row was added (false: the trace
    /// was already recorded). The 1 KB record is bound in place, not copied.
    static func insert(_ p: PassRecord, record: [UInt8], prev: String, hash: String, leaf: Int, with stmt: SQLiteStatement) throws -> Bool {
        stmt.reset()
        stmt.bind(p.traceID)
        stmt.bind(p.signalID)
        stmt.bind(p.symbol)
        stmt.bind(p.source)
        stmt.bind(p.verdict.rawValue)
        stmt.bind(jsonArray(p.reasons))
        stmt.bind(p.policyHash)
        stmt.bind(p.complianceScore)
        stmt.bind(p.t0Ns)
        stmt.bind(p.doneNs)
        stmt.bind(p.latencyMs)
        stmt.bind(p.hrmEvalUs)
        stmt.bind(p.continuityOK ? 1 : 0)
        stmt.bind(p.injectedViolation)
        stmt.bind(p.orderID)
        stmt.bind(p.track.rawValue)
        try record.withUnsafeBufferPointer { buf throws(SQLiteError) in
            stmt.bindInPlace(buf)
            stmt.bind(prev)
            stmt.bind(hash)
            stmt.bind(leaf)
            try stmt.run()
        }
        return stmt.connection.changes == 1
    }

    /// The link of a record in the hash chain of stores written before the audit tree
    /// (schema v5 and earlier): SHA-256 of the previous hash (hex) followed by the record.
    /// Only the upgrade of such a store checks it (`AuditTreeStore.adoptExistingRows`).
    static func chainHash(prev: String, record: [UInt8]) -> String {
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

    // MARK: the audit tree

    private func loadTree() throws -> Merkle.Frontier {
        let s = statements.loadTree
        guard let (size, blob) = try s.firstRow({ (Int($0.int64(0)), $0.blob(1)) }) else { return Merkle.Frontier() }
        guard let tree = AuditLeaf.decode(size: size, blob) else {
            throw StateStoreError("the audit tree's right edge in \(path) (audit_tree) is damaged: \(blob.count) bytes for \(size) leaves. Fix: run ark verify-audit, and restore a backup")
        }
        return tree
    }

    private func saveTree(_ tree: Merkle.Frontier) throws {
        let s = statements.saveTree
        s.reset()
        s.bind(tree.size)
        s.bind(blob: AuditLeaf.encode(tree))
        try s.run()
    }

    /// Adds a leaf, storing each subtree it completes from `AuditLeaf.storedHeight` up.
    private func append(_ leafHash: Merkle.Digest, to tree: inout Merkle.Frontier) throws {
        var completed: [(Int, Int, Merkle.Digest)] = []
        tree.append(leafHash) { h, i, d in if h >= AuditLeaf.storedHeight { completed.append((h, i, d)) } }
        for (h, i, d) in completed { try AuditTreeStore.storeNode(statements.insertNode, height: h, index: i, hash: d) }
    }

    // MARK: checkpoints

    /// Whether the oldest unsigned leaf has waited `signer.dueAfterNs`, half the checkpoint
    /// interval: with Aletheia looking at least every quarter interval, no leaf waits longer
    /// than the interval for its signature, busy or idle, and a busy log is signed twice an
    /// interval.
    private func due(nowNs: Int64) -> Bool {
        guard let signer, let oldest = oldestUnsignedNs else { return false }
        return nowNs - oldest >= signer.dueAfterNs
    }

    /// Signs the head `tree` when a signer is set, a checkpoint is `due`, and the tree has
    /// grown since the newest checkpoint; the row goes into this transaction.
    private func signIfDue(_ tree: Merkle.Frontier, nowNs: Int64) throws -> AuditCheckpoint? {
        guard let signer, due(nowNs: nowNs) else { return nil }
        let newest = try statements.newestCheckpoint.firstRow { Int($0.int64(0)) }
        guard newest != tree.size, tree.size > 0 else {
            oldestUnsignedNs = nil
            return nil
        }
        let c: AuditCheckpoint
        do {
            c = try signer.sign(size: tree.size, root: tree.root, timeNs: nowNs)
        } catch {
            checkpointFailures.increment()
            return nil
        }
        try insert(c)
        oldestUnsignedNs = nil
        return c
    }

    /// Appends a committed checkpoint to the checkpoint file, and keeps it for `takeSigned`.
    /// A file that cannot be written loses no record (the store has the checkpoint, and the
    /// next one covers all before it): it is counted, for the alert.
    private func publish(_ c: AuditCheckpoint) {
        do {
            try signer?.publish(c)
        } catch {
            checkpointFailures.increment()
        }
        unpublished = c
    }

    /// Signs the head as it is now, due or not: `ark restore` marks with a `restore`
    /// checkpoint that the log starts again from the restored copy.
    public func signHead(kind: AuditCheckpoint.Kind, note: String) throws -> AuditCheckpoint {
        guard let signer else { throw StateStoreError("no audit key to sign with") }
        lock.lock()
        defer { lock.unlock() }
        let c: AuditCheckpoint = try connection.inImmediateTransaction {
            let tree = try loadTree()
            let c = try signer.sign(kind: kind, size: tree.size, root: tree.root, timeNs: wallClockNanoseconds(), note: note)
            try insert(c)
            return c
        }
        publish(c)
        return c
    }

    private func insert(_ c: AuditCheckpoint) throws {
        let s = statements.insertCheckpoint
        s.reset()
        s.bind(c.kind.rawValue)
        s.bind(c.size)
        s.bind(SHA256.hex(c.root))
        s.bind(c.timeNs)
        s.bind(c.keyID)
        s.bind(c.note)
        s.bind(SHA256.hex(c.signature))
        try s.run()
    }

    /// Signs a checkpoint now if one is due and the tree grew (Aletheia asks after every read,
    /// so the newest records are signed within the interval even when no batch follows): a
    /// look at the clock when nothing waits. `force`: whatever the interval (at shutdown).
    public func checkpointIfDue(force: Bool = false) throws {
        guard signer != nil else { return }
        lock.lock()
        defer { lock.unlock() }
        if force { oldestUnsignedNs = 0 }
        guard due(nowNs: wallClockNanoseconds()) else { return }
        let signed = try connection.inImmediateTransaction { try signIfDue(try loadTree(), nowNs: wallClockNanoseconds()) }
        if let signed { publish(signed) }
    }

    /// The newest checkpoint this writer signed since the last call, for publishing beyond
    /// the host (Aletheia sets it in Redis).
    public func takeSigned() -> AuditCheckpoint? {
        lock.lock()
        defer { lock.unlock() }
        defer { unpublished = nil }
        return unpublished
    }

    /// Gives back a checkpoint `takeSigned` handed out that could not be published, unless a
    /// newer one came meanwhile.
    public func keepUnpublished(_ c: AuditCheckpoint) {
        lock.lock()
        defer { lock.unlock() }
        if unpublished == nil { unpublished = c }
    }

    /// Refuses to extend a log that is no longer what `published` (the newest checkpoint
    /// kept outside the store) signed: rows deleted since, or the tree's nodes or newest
    /// leaves changed. Aletheia checks this before it signs anything.
    public func checkHead(against published: AuditCheckpoint, source: String) throws {
        lock.lock()
        defer { lock.unlock() }
        let reader = AuditReader(connection: connection)
        let size = try reader.treeSize()
        guard published.size <= size else {
            throw StateStoreError("the audit log of \(path) has \(size) leaves, but \(source) signed \(published.size) at time_ns \(published.timeNs): the newest \(published.size - size) record(s) were deleted. Aletheia will not sign over it. Fix: run ark verify-audit; restore the newest backup with ark restore (which signs the restored head)")
        }
        let root = try reader.root(size: published.size)
        guard root == published.root else {
            throw StateStoreError("the audit log of \(path) does not give the root that \(source) signed at size \(published.size) (time_ns \(published.timeNs)): it was altered. Aletheia will not sign over it. Fix: run ark verify-audit to find the record; restore a backup with ark restore")
        }
    }

    public func upsertHeartbeats(_ beats: [HeartbeatRecord]) throws {
        guard !beats.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        let db = connection
        try db.inImmediateTransaction {
            let stmt = statements.upsertHeartbeat
            for b in beats {
                stmt.reset()
                stmt.bind(b.instance)
                stmt.bind(b.stage)
                stmt.bind(b.host)
                stmt.bind(b.pid)
                stmt.bind(b.processed)
                stmt.bind(b.failed)
                stmt.bind(b.pending)
                stmt.bind(b.p50Ms)
                stmt.bind(b.p95Ms)
                stmt.bind(b.tsNs)
                try stmt.run()
            }
        }
    }

    // MARK: rollups

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

    /// A rollup row's histograms as this writer last wrote them, and its pass count then.
    struct CachedRollup {
        var second: Int64
        var passes: Int
        var latency: LogHistogram
        var hrm: LogHistogram
        var stages: StageHistograms
    }

    /// Adds `r` to the row of `second`. At 1,000 passes/s every batch merges into the same
    /// row, and decoding its three histograms again each time was a fifth of Aletheia's CPU:
    /// the histograms this writer wrote last are kept in `cached`, and used while the row's
    /// pass count shows no other writer added to it since (every merge adds passes).
    private static func mergeRollup(_ statements: Statements, second: Int64, _ r: Rollup, cached: inout CachedRollup?) throws {
        var latency = r.latency
        var hrm = r.hrm
        var stages = r.stages
        let count = statements.rollupPasses
        count.reset()
        count.bind(second)
        let storedPasses = try count.firstRow { Int($0.int64(0)) }
        if let storedPasses {
            if let c = cached, c.second == second, c.passes == storedPasses {
                latency.merge(c.latency)
                hrm.merge(c.hrm)
                stages.merge(c.stages)
            } else {
                let select = statements.rollupHistograms
                select.reset()
                select.bind(second)
                if let (l, h, s) = try select.firstRow({ ($0.blob(0), $0.blob(1), $0.blob(2)) }) {
                    latency.merge(LogHistogram(encoded: l))
                    hrm.merge(LogHistogram(encoded: h))
                    stages.merge(StageHistograms(encoded: s))
                }
            }
        }
        cached = CachedRollup(second: second, passes: (storedPasses ?? 0) + r.passes, latency: latency, hrm: hrm, stages: stages)
        let upsert = statements.upsertRollup
        upsert.reset()
        upsert.bind(second)
        for n in [r.passes, r.approved, r.denied, r.rejected, r.errors, r.deadlettered, r.slow] { upsert.bind(n) }
        upsert.bind(r.latencySum)
        upsert.bind(r.latencyMax)
        upsert.bind(blob: latency.encoded())
        upsert.bind(blob: hrm.encoded())
        for n in [r.failed, r.timed, r.overLatencySLO, r.hrmTimed, r.hrmOverSLO] { upsert.bind(n) }
        upsert.bind(blob: stages.encoded())
        try upsert.run()
    }
}

/// A write the store refused for reasons of its environment: another writer holding the
/// lock past the busy timeout, a full disk, an I/O error, a read-only file system. The batch
/// is retried as it is (see `EnvironmentFailure`); the message is SQLite's.
public struct StoreUnavailable: EnvironmentFailure, CustomStringConvertible {
    public let description: String

    static let codes: Set<Int32> = [SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PROTOCOL, SQLITE_NOMEM]

    /// nil unless `error` is such a failure.
    public init?(_ error: any Error) {
        guard let e = error as? SQLiteError, Self.codes.contains(e.primaryCode) else { return nil }
        description = "\(e)"
    }
}
