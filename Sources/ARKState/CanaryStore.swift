// Canary runs and their checks as the state store keeps them.

import ARKCore
import ARKStoreWriter
import Foundation
import GRDB

/// Where a canary run is. A run ends `promoted` or `rolled_back`; every other status is a
/// run in progress (or stranded by a controller that is gone, which `ark canary abort` ends).
public enum CanaryStatus: String, Sendable, CaseIterable {
    case starting, running, holding, promoting
    case rollingBack = "rolling_back"
    case promoted
    case rolledBack = "rolled_back"
}

/// One canary rollout as the state store keeps it. `plan` and `report` are JSON written by
/// the controller (`ARKCanary`), so a finished run can be read back without it.
public struct CanaryRunRecord: Sendable, Equatable {
    public var runID: String
    public var release: String
    public var baselineRelease: String
    public var plan: String
    public var status: CanaryStatus
    public var percent: Double
    public var startedNs: Int64
    public var updatedNs: Int64
    public var endedNs: Int64?
    public var tripwire: String?
    public var report: String
    /// An operator's request the controller has not yet carried out: abort or promote.
    public var requested: String?
    public var controllerPID: Int

    public init(runID: String, release: String, baselineRelease: String, plan: String, status: CanaryStatus, percent: Double, startedNs: Int64,
                updatedNs: Int64, endedNs: Int64? = nil, tripwire: String? = nil, report: String = "{}", requested: String? = nil, controllerPID: Int) {
        self.runID = runID
        self.release = release
        self.baselineRelease = baselineRelease
        self.plan = plan
        self.status = status
        self.percent = percent
        self.startedNs = startedNs
        self.updatedNs = updatedNs
        self.endedNs = endedNs
        self.tripwire = tripwire
        self.report = report
        self.requested = requested
        self.controllerPID = controllerPID
    }

    public var isFinished: Bool { endedNs != nil }

    /// Whether the run's controller process is still there (on this host; a zombie is gone).
    public var controllerIsAlive: Bool { !processHasExited(pid_t(controllerPID)) }
}

extension CanaryRunRecord {
    /// The run with its plan, report and checks as `ark canary status --json` and the console
    /// show it.
    public func statusObject(checks: [CanaryCheckRecord]) -> [String: Any] {
        func parsed(_ text: String) -> Any { JSONDocument.parse(text) ?? NSNull() }
        return [
            "run_id": runID, "status": status.rawValue, "release": release, "baseline_release": baselineRelease, "percent": percent,
            "started_ns": startedNs, "updated_ns": updatedNs, "ended_ns": endedNs ?? NSNull(), "tripwire": tripwire ?? NSNull(),
            "requested": requested ?? NSNull(), "controller_pid": controllerPID,
            "plan": parsed(plan), "report": parsed(report),
            "checks": checks.map { ["step": $0.step, "percent": $0.percent, "verdict": $0.verdict, "ts_ns": $0.tsNs, "figures": parsed($0.figures)] },
        ]
    }
}

/// One judgement of a canary run: the figures of both tracks over the same interval.
public struct CanaryCheckRecord: Sendable, Equatable {
    public var runID: String
    public var step: Int
    public var percent: Double
    /// pass, inconclusive or tripwire.
    public var verdict: String
    public var figures: String
    public var tsNs: Int64

    public init(runID: String, step: Int, percent: Double, verdict: String, figures: String, tsNs: Int64) {
        self.runID = runID
        self.step = step
        self.percent = percent
        self.verdict = verdict
        self.figures = figures
        self.tsNs = tsNs
    }
}

/// What one track's passes say over an interval.
public struct TrackFigures: Sendable, Equatable {
    /// Passes recorded.
    public var passes: Int = 0
    /// Passes HRM decided (approved + denied).
    public var decided: Int = 0
    public var denied: Int = 0
    /// Passes that failed: continuity errors and dead letters.
    public var failed: Int = 0
    /// p95 of end-to-end latency over the passes that were not dead-lettered, and how many.
    public var latencyP95Ms: Double?
    public var latencySamples: Int = 0

    public init(passes: Int = 0, decided: Int = 0, denied: Int = 0, failed: Int = 0, latencyP95Ms: Double? = nil, latencySamples: Int = 0) {
        self.passes = passes
        self.decided = decided
        self.denied = denied
        self.failed = failed
        self.latencyP95Ms = latencyP95Ms
        self.latencySamples = latencySamples
    }
}

extension StateStore {
    /// The figures of `track`'s passes finished in [fromNs, toNs).
    public func trackFigures(_ track: Track, fromNs: Int64, toNs: Int64) throws -> TrackFigures {
        try pool.read { db in
            let args: StatementArguments = [track.rawValue, fromNs, toNs]
            var f = TrackFigures()
            if let row = try Row.fetchOne(db, sql: """
                SELECT count(*) AS passes,
                       coalesce(sum(verdict IN ('approved', 'denied')), 0) AS decided,
                       coalesce(sum(verdict = 'denied'), 0) AS denied,
                       coalesce(sum(verdict IN ('error', 'deadlettered')), 0) AS failed,
                       coalesce(sum(verdict != 'deadlettered'), 0) AS timed
                FROM passes WHERE track = ? AND done_ns >= ? AND done_ns < ?
                """, arguments: args) {
                f.passes = row["passes"]
                f.decided = row["decided"]
                f.denied = row["denied"]
                f.failed = row["failed"]
                f.latencySamples = row["timed"]
            }
            if f.latencySamples > 0 {
                let offset = max(0, Int((Double(f.latencySamples) * 0.95).rounded(.up)) - 1)
                f.latencyP95Ms = try Double.fetchOne(db, sql: """
                    SELECT latency_ms FROM passes WHERE track = ? AND done_ns >= ? AND done_ns < ? AND verdict != 'deadlettered'
                    ORDER BY latency_ms LIMIT 1 OFFSET ?
                    """, arguments: [track.rawValue, fromNs, toNs, offset])
            }
            return f
        }
    }

    /// Quarantines of any of `instances` recorded since `sinceNs`, oldest first.
    public func quarantines(of instances: [String], sinceNs: Int64) throws -> [WatchdogEventRecord] {
        guard !instances.isEmpty else { return [] }
        return try pool.read { db in
            let marks = Array(repeating: "?", count: instances.count).joined(separator: ",")
            var args = StatementArguments(instances)
            args += [sinceNs]
            return try Row.fetchAll(db, sql: """
                SELECT * FROM watchdog_events WHERE action = 'quarantine' AND instance IN (\(marks)) AND ts_ns >= ? ORDER BY id
                """, arguments: args).map {
                WatchdogEventRecord(instance: $0["instance"], stage: $0["stage"], action: $0["action"], reason: $0["reason"],
                                    figures: $0["figures"], by: $0["by"], tsNs: $0["ts_ns"])
            }
        }
    }

    public func saveCanaryRun(_ r: CanaryRunRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO canary_runs (run_id, release, baseline_release, plan, status, percent, started_ns, updated_ns, ended_ns, tripwire, report, requested, controller_pid)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(run_id) DO UPDATE SET status = excluded.status, percent = excluded.percent, updated_ns = excluded.updated_ns,
                    ended_ns = excluded.ended_ns, tripwire = excluded.tripwire, report = excluded.report, controller_pid = excluded.controller_pid,
                    requested = CASE WHEN excluded.ended_ns IS NOT NULL THEN NULL ELSE canary_runs.requested END
                """, arguments: [r.runID, r.release, r.baselineRelease, r.plan, r.status.rawValue, r.percent, r.startedNs, r.updatedNs, r.endedNs, r.tripwire,
                                 r.report, r.requested, r.controllerPID])
        }
    }

    /// The newest run, or the one named.
    public func canaryRun(id: String? = nil) throws -> CanaryRunRecord? {
        try pool.read { db in
            let row = if let id {
                try Row.fetchOne(db, sql: "SELECT * FROM canary_runs WHERE run_id = ?", arguments: [id])
            } else {
                try Row.fetchOne(db, sql: "SELECT * FROM canary_runs ORDER BY started_ns DESC LIMIT 1")
            }
            return try row.map {
                let status: String = $0["status"]
                guard let known = CanaryStatus(rawValue: status) else {
                    throw StateStoreError("canary run \(String(describing: $0["run_id"] as String?)) has the status \(status), which this version of ark does not know: read it with the version that wrote it")
                }
                return CanaryRunRecord(runID: $0["run_id"], release: $0["release"], baselineRelease: $0["baseline_release"], plan: $0["plan"],
                                status: known, percent: $0["percent"], startedNs: $0["started_ns"], updatedNs: $0["updated_ns"],
                                endedNs: $0["ended_ns"], tripwire: $0["tripwire"], report: $0["report"], requested: $0["requested"],
                                controllerPID: $0["controller_pid"])
            }
        }
    }

    /// Asks the controller of an unfinished run to `action` (abort or promote). False when
    /// no unfinished run has that id.
    public func requestCanary(_ action: String, runID: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE canary_runs SET requested = ? WHERE run_id = ? AND ended_ns IS NULL", arguments: [action, runID])
            return db.changesCount == 1
        }
    }

    public func addCanaryCheck(_ c: CanaryCheckRecord) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO canary_checks (run_id, step, percent, verdict, figures, ts_ns) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [c.runID, c.step, c.percent, c.verdict, c.figures, c.tsNs])
        }
    }

    public func canaryChecks(runID: String) throws -> [CanaryCheckRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM canary_checks WHERE run_id = ? ORDER BY id", arguments: [runID]).map {
                CanaryCheckRecord(runID: $0["run_id"], step: $0["step"], percent: $0["percent"], verdict: $0["verdict"], figures: $0["figures"], tsNs: $0["ts_ns"])
            }
        }
    }

    // MARK: schema

    /// The schema as SQLite has it: every table, index, view and trigger with its SQL
    /// (`"table passes"`: its CREATE statement), and each migration applied
    /// (`"migration v5_canary"`). Two stores with equal schemas have the same structure.
    public func schema() throws -> [String: String] {
        try pool.read { try Self.schema($0) }
    }

    static func schema(_ db: Database) throws -> [String: String] {
        var out: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'") {
            out[(row["type"] as String) + " " + (row["name"] as String)] = row["sql"]
        }
        if try db.tableExists("grdb_migrations") {
            for id in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") { out["migration " + id] = "" }
        }
        return out
    }

    /// Puts the live store back to `target`'s schema (a snapshot's), keeping every row: each
    /// table the canary changed is rebuilt with the snapshot's definition from the columns the
    /// two share, tables and indexes it added are dropped, ones it dropped are recreated
    /// empty. One immediate transaction: Aletheia's writes wait for it, none is lost.
    /// Returns what it changed.
    public func restoreSchema(to target: [String: String]) throws -> [String] {
        try pool.writeWithoutTransaction { db in
            var changed: [String] = []
            try db.inTransaction(.immediate) {
                var current = try Self.schema(db)
                // The migrations a canary applied are forgotten, so it can apply them again.
                let extraMigrations = current.keys.filter { $0.hasPrefix("migration ") && target[$0] == nil }.map { String($0.dropFirst(10)) }
                for id in extraMigrations.sorted() {
                    try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = ?", arguments: [id])
                    changed.append("forgot migration \(id)")
                }
                current = current.filter { !$0.key.hasPrefix("migration ") }
                let target = target.filter { !$0.key.hasPrefix("migration ") }
                func name(_ key: String) -> String { String(key.split(separator: " ", maxSplits: 1)[1]) }
                // Added objects go first (an added index may sit on a table rebuilt below).
                for key in current.keys.sorted() where target[key] == nil {
                    let kind = key.hasPrefix("table ") ? "TABLE" : key.hasPrefix("index ") ? "INDEX" : key.hasPrefix("view ") ? "VIEW" : "TRIGGER"
                    try db.execute(sql: "DROP \(kind) IF EXISTS \"\(name(key))\"")
                    changed.append("dropped \(key)")
                }
                for key in target.keys.sorted() where key.hasPrefix("table ") && current[key] != target[key] {
                    let table = name(key)
                    if current[key] == nil {
                        try db.execute(sql: target[key]!)
                        changed.append("recreated \(key)")
                        continue
                    }
                    let oldColumns = try Set(db.columns(in: table).map(\.name))
                    let tmp = "ark_restore_" + table
                    try db.execute(sql: "ALTER TABLE \"\(table)\" RENAME TO \"\(tmp)\"")
                    try db.execute(sql: target[key]!)
                    let shared = try db.columns(in: table).map(\.name).filter { oldColumns.contains($0) }
                    let list = shared.map { "\"\($0)\"" }.joined(separator: ", ")
                    try db.execute(sql: "INSERT INTO \"\(table)\" (\(list)) SELECT \(list) FROM \"\(tmp)\"")
                    try db.execute(sql: "DROP TABLE \"\(tmp)\"")
                    changed.append("rebuilt \(key) keeping its rows")
                }
                // Indexes of rebuilt tables went with them; recreate every missing one.
                var now: Set<String> = []
                for row in try Row.fetchAll(db, sql: "SELECT type, name FROM sqlite_master") { now.insert((row["type"] as String) + " " + (row["name"] as String)) }
                for key in target.keys.sorted() where !key.hasPrefix("table ") && !now.contains(key) {
                    try db.execute(sql: target[key]!)
                    if current[key] == nil || current[key] != target[key] { changed.append("restored \(key)") }
                }
                return .commit
            }
            return changed
        }
    }
}
