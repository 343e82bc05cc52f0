// The state store's writer of outcomes: each batch in one transaction, with its leaves and
// rollups.

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

/// The state store's writer of outcomes: passes, orders, dead letters and trading states (the
/// audit tree's leaves), the per-second rollups and heartbeats, each batch in one
/// transaction, and the signed checkpoints of the tree. Aletheia writes through it; so does
/// `StateStore.record`. It opens the store as every writer does (`StoreFile`), on SQLite's C
/// API and not GRDB, so that ark-agent links FoundationEssentials only (see `SQLiteConnection`).
public final class OutcomeWriter: @unchecked Sendable {
    public let path: String
    // Guarded by `lock`.
    let connection: SQLiteConnection
    let statements: OutcomeStatements
    private var lastRollup: OutcomeStatements.CachedRollup?
    let lock = ConditionLock()
    private let checkpointer: WALCheckpointer?
    private let writeTimer = Metrics.Timer(label: MetricName.dbWrite)
    /// Held while this writer is open: `ark restore` refuses meanwhile.
    private let writerLock: StoreWriterLock
    /// Signs the audit tree's checkpoints (Aletheia's writer); nil: the tree grows unsigned.
    let signer: AuditSigner?
    /// When the head is due for a signature (nil: no signer).
    var schedule: CheckpointSchedule?
    var unpublished: AuditCheckpoint?
    let checkpointFailures = Counter(label: MetricName.auditCheckpointFailures)

    /// The checkpoint interval of this writer's signer (nil: it signs nothing).
    public var signerIntervalNs: Int64? { signer?.intervalNs }

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
        schedule = signer.map { CheckpointSchedule(dueAfterNs: $0.dueAfterNs, openedNs: wallClockNanoseconds()) }
        try StoreFile.prepare(path)
        writerLock = try StoreWriterLock.shared(path)
        checkpointer = backgroundCheckpointIntervalNs.map { WALCheckpointer(path: path, frameThreshold: 1000, intervalNs: $0) }
        connection = try StoreFile.connect(path: path, cacheKiB: cacheKiB, checkpointer: checkpointer)
        statements = try OutcomeStatements(connection)
        checkpointer?.start()
        for suffix in ["", "-wal", "-shm"] where access(path + suffix, F_OK) == 0 {
            chmod(path + suffix, 0o600)
        }
    }

    deinit {
        checkpointer?.stop()
    }

    // MARK: writing

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
            var tree = try statements.loadTree(path: path)
            var prev = try statements.lastHash.firstRow { $0.text(0) } ?? AuditTreeStore.genesisHash
            var rollups: [Int64: RollupAccumulator] = [:]
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
                if try statements.insert(p, record: record, prev: prev, hash: hash, leaf: tree.size) {
                    try statements.append(leafHash, to: &tree)
                    prev = hash
                    summary.passesInserted += 1
                    if let id = p.orderID { ordersOfRecordedPasses.insert(id) }
                    rollups[p.doneNs / 1_000_000_000, default: RollupAccumulator()].add(p, thresholds)
                } else {
                    summary.passesAlreadyPresent += 1
                }
            }
            for o in orders where ordersOfRecordedPasses.contains(o.orderID) {
                let leafHash = Merkle.leafHash(AuditLeaf.data(of: o))
                guard try statements.insert(o, leaf: tree.size, leafHash: leafHash) else { continue }
                try statements.append(leafHash, to: &tree)
                summary.ordersInserted += 1
            }
            for d in deadLetters {
                let leafHash = Merkle.leafHash(AuditLeaf.data(of: d))
                guard try statements.insert(d, leaf: tree.size, leafHash: leafHash) else { continue }
                try statements.append(leafHash, to: &tree)
                summary.deadLettersInserted += 1
                // A dead letter whose trace is known is counted through its pass; one
                // without a trace still failed a pass and must not vanish from availability.
                if d.traceID == nil {
                    rollups[d.tsNs / 1_000_000_000, default: RollupAccumulator()].addUntracedDeadLetter()
                }
            }
            for t in tradingStates {
                let leafHash = Merkle.leafHash(AuditLeaf.data(of: t))
                guard try statements.insert(t, leaf: tree.size, leafHash: leafHash) else { continue }
                try statements.append(leafHash, to: &tree)
                summary.tradingStatesInserted += 1
            }
            try statements.save(tree)
            let now = wallClockNanoseconds()
            schedule?.committed(leaves: summary.leavesAdded, nowNs: now)
            signed = try signIfDue(tree, nowNs: now)
            for (second, r) in rollups.sorted(by: { $0.key < $1.key }) { try statements.mergeRollup(second: second, r, cached: &cached) }
            return summary
        }
        lastRollup = cached  // only once committed
        if let signed { publish(signed) }
        return summary
    }

    /// Deletes the rollup rows of the seconds before `second` (METRICS_RETENTION_SECONDS);
    /// returns how many went. Rollups are not part of the audit: passes are never pruned.
    @discardableResult
    public func pruneRollups(before second: Int64) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        let stmt = statements.pruneRollups
        stmt.reset()
        stmt.bind(second)
        try stmt.run()
        lastRollup = nil
        return connection.changes
    }

    public func upsertHeartbeats(_ beats: [HeartbeatRecord]) throws {
        guard !beats.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        let db = connection
        try db.inImmediateTransaction {
            for b in beats { try statements.upsert(b) }
        }
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
