// The state store on GRDB: its readers and its writers other than Aletheia's.

import ARKCore
import ARKStoreWriter
import Foundation
import GRDB

/// The SQLite state store: WAL mode, `synchronous=NORMAL`, file mode 600, versioned
/// migrations. Aletheia is its only writer of outcomes (through `OutcomeWriter`, which
/// ark-agent links without GRDB); every other process reads here, and the watchdog and the
/// canary controller write their own tables.
public final class StateStore: Sendable {
    public let path: String
    let pool: DatabasePool
    /// Opened with a writable store: it creates the file and applies the migrations before
    /// the pool opens, and `record`/`upsertHeartbeats` write through it.
    let outcomes: OutcomeWriter?

    /// A reader, or a writer that is not Aletheia: SQLite checkpoints inside the commit that
    /// brings the WAL to 4,000 pages (16 MB), and each reading connection has a 16 MB page
    /// cache.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        outcomes = readOnly ? nil : try OutcomeWriter(path: path)
        var config = Configuration()
        config.readonly = readOnly
        config.busyMode = .timeout(Double(StoreFile.busyTimeoutMs) / 1000)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA cache_size = -16000")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 4000")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw StateStoreError("cannot open the state store \(path): \(error)")
        }
    }

    /// The journal mode SQLite reports (must be `wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    // MARK: writing

    /// Writes a batch of outcomes in one transaction: see `OutcomeWriter.record`.
    @discardableResult
    public func record(passes: [PassRecord], orders: [OrderRecord] = [], deadLetters: [DeadLetterRecord] = [], thresholds: RollupThresholds = RollupThresholds()) throws -> OutcomeWriter.WriteSummary {
        try writer().record(passes: passes, orders: orders, deadLetters: deadLetters, thresholds: thresholds)
    }

    public func upsertHeartbeats(_ beats: [HeartbeatRecord]) throws {
        try writer().upsertHeartbeats(beats)
    }

    private func writer() throws -> OutcomeWriter {
        guard let outcomes else { throw StateStoreError("the state store \(path) was opened read-only") }
        return outcomes
    }

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

