import ARKCore
import Foundation
import GRDB

/// Sums of the per-second rollups over a window: what the SLO engine and `/metrics/json`
/// read. A window is `[fromSecond, now]` in Unix seconds.
public struct RollupTotals: Sendable, Equatable {
    public var passes = 0
    public var approved = 0
    public var denied = 0
    public var rejected = 0
    public var errors = 0
    public var deadlettered = 0
    /// Passes that count against availability: errored, dead-lettered or later than the pass timeout.
    public var failed = 0
    /// Passes with a latency (all but dead letters).
    public var timed = 0
    public var overLatencySLO = 0
    public var hrmTimed = 0
    public var hrmOverSLO = 0
    /// Seconds in the window that saw at least one pass.
    public var activeSeconds = 0

    public init() {}
}

/// The merged histograms of a window.
public struct RollupHistograms: Sendable, Equatable {
    public var latency = LogHistogram()
    public var hrm = LogHistogram()
    public var stages = StageHistograms()

    public init() {}
}

extension StateStore {
    /// Totals for each window start, read in one transaction so they agree with each other.
    public func rollupTotals(since fromSeconds: [Int64]) throws -> [RollupTotals] {
        try pool.read { db in
            try fromSeconds.map { from in
                guard let row = try Row.fetchOne(db, sql: """
                    SELECT COUNT(*) AS secs, TOTAL(passes) AS passes, TOTAL(approved) AS approved, TOTAL(denied) AS denied,
                        TOTAL(rejected) AS rejected, TOTAL(errors) AS errors, TOTAL(deadlettered) AS deadlettered,
                        TOTAL(failed) AS failed, TOTAL(timed) AS timed, TOTAL(over_latency_slo) AS over_latency_slo,
                        TOTAL(hrm_timed) AS hrm_timed, TOTAL(hrm_over_slo) AS hrm_over_slo
                    FROM rollup_1s WHERE second >= ?
                    """, arguments: [from]) else { return RollupTotals() }
                var t = RollupTotals()
                func n(_ column: String) -> Int { Int((row[column] as Double?) ?? 0) }
                t.activeSeconds = row["secs"]
                t.passes = n("passes")
                t.approved = n("approved")
                t.denied = n("denied")
                t.rejected = n("rejected")
                t.errors = n("errors")
                t.deadlettered = n("deadlettered")
                t.failed = n("failed")
                t.timed = n("timed")
                t.overLatencySLO = n("over_latency_slo")
                t.hrmTimed = n("hrm_timed")
                t.hrmOverSLO = n("hrm_over_slo")
                return t
            }
        }
    }

    /// The latency, HRM and per-stage histograms of every second since `fromSecond`, merged.
    public func rollupHistograms(since fromSecond: Int64) throws -> RollupHistograms {
        try pool.read { db in
            var out = RollupHistograms()
            let rows = try Row.fetchCursor(db, sql: "SELECT latency_hist, hrm_hist, stage_hists FROM rollup_1s WHERE second >= ?", arguments: [fromSecond])
            while let row = try rows.next() {
                out.latency.merge(LogHistogram(encoded: [UInt8](row["latency_hist"] as Data)))
                out.hrm.merge(LogHistogram(encoded: [UInt8](row["hrm_hist"] as Data)))
                out.stages.merge(StageHistograms(encoded: [UInt8](row["stage_hists"] as Data)))
            }
            return out
        }
    }

    /// Whether the store answers a query, and its journal mode (must be `wal`).
    public func probe() throws -> String {
        try pool.read { db in
            _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_1s WHERE second > 0 LIMIT 1")
            return try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? ""
        }
    }
}
