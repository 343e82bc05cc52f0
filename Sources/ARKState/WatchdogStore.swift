// The watchdog's standing of each instance and its events, in the store.

import ARKStoreWriter
import GRDB

/// What one watchdog transaction changes.
public struct WatchdogChanges: Sendable {
    public var upserts: [WatchdogInstanceRecord] = []
    public var deletes: [String] = []
    public var events: [WatchdogEventRecord] = []

    public init(upserts: [WatchdogInstanceRecord] = [], deletes: [String] = [], events: [WatchdogEventRecord] = []) {
        self.upserts = upserts
        self.deletes = deletes
        self.events = events
    }
}

extension StateStore {
    /// Reads the watchdog's standings and applies `decide`'s changes in one write
    /// transaction, so the watchdog and an operator's `ark watchdog release` never overwrite
    /// each other's decisions.
    public func updateWatchdog<T>(_ decide: ([WatchdogInstanceRecord]) throws -> (WatchdogChanges, T)) throws -> T {
        try pool.write { db in
            let current = try Self.watchdogInstances(db)
            let (changes, result) = try decide(current)
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO watchdog_instances (instance, stage, status, offences, since_ns, release_at_ns, probation_until_ns, reason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(instance) DO UPDATE SET stage = excluded.stage, status = excluded.status, offences = excluded.offences,
                    since_ns = excluded.since_ns, release_at_ns = excluded.release_at_ns,
                    probation_until_ns = excluded.probation_until_ns, reason = excluded.reason
                """)
            for r in changes.upserts {
                try upsert.execute(arguments: [r.instance, r.stage, r.status, r.offences, r.sinceNs, r.releaseAtNs, r.probationUntilNs, r.reason])
            }
            for instance in changes.deletes {
                try db.execute(sql: "DELETE FROM watchdog_instances WHERE instance = ?", arguments: [instance])
            }
            let insert = try db.cachedStatement(sql: """
                INSERT INTO watchdog_events (instance, stage, action, reason, figures, by, ts_ns) VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            for e in changes.events {
                try insert.execute(arguments: [e.instance, e.stage, e.action, e.reason, e.figures, e.by, e.tsNs])
            }
            return result
        }
    }

    public func watchdogInstances() throws -> [WatchdogInstanceRecord] {
        try pool.read { try Self.watchdogInstances($0) }
    }

    /// The newest `limit` events, oldest first.
    public func watchdogEvents(limit: Int = 100) throws -> [WatchdogEventRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM (SELECT * FROM watchdog_events ORDER BY id DESC LIMIT ?) ORDER BY id", arguments: [limit]).map {
                WatchdogEventRecord(instance: $0["instance"], stage: $0["stage"], action: $0["action"], reason: $0["reason"],
                                    figures: $0["figures"], by: $0["by"], tsNs: $0["ts_ns"])
            }
        }
    }

    static func watchdogInstances(_ db: Database) throws -> [WatchdogInstanceRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM watchdog_instances ORDER BY instance").map {
            WatchdogInstanceRecord(instance: $0["instance"], stage: $0["stage"], status: $0["status"], offences: $0["offences"],
                                   sinceNs: $0["since_ns"], releaseAtNs: $0["release_at_ns"], probationUntilNs: $0["probation_until_ns"],
                                   reason: $0["reason"])
        }
    }
}
