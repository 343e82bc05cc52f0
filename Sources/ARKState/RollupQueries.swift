// The SLOs' and the console's reads of the per-second rollups.

import ARKCore
import ARKStoreWriter
import Foundation
import GRDB

/// One bucket of a rollup series.
public struct RollupBucket: Sendable, Equatable {
    public var startSecond: Int64
    public var passes = 0
    /// Passes that count against availability.
    public var failed = 0
    public var latency = LogHistogram()

    public init(startSecond: Int64) { self.startSecond = startSecond }
}

extension StateStore {
    /// Totals for each window start. The windows all end now, so they nest: each second is
    /// read once, in disjoint segments between consecutive starts, and the totals are the
    /// running sums from the latest start back.
    public func rollupTotals(since fromSeconds: [Int64]) throws -> [RollupTotals] {
        let starts = Array(Set(fromSeconds)).sorted(by: >)  // latest (narrowest) first
        return try pool.read { db in
            var byStart: [Int64: RollupTotals] = [:]
            var running = RollupTotals()
            var upper = Int64.max
            for start in starts {
                guard let row = try Row.fetchOne(db, sql: """
                    SELECT TOTAL(passes), TOTAL(approved), TOTAL(denied), TOTAL(rejected), TOTAL(errors),
                        TOTAL(deadlettered), TOTAL(failed), TOTAL(timed), TOTAL(over_latency_slo), TOTAL(hrm_timed), TOTAL(hrm_over_slo), TOTAL(slow)
                    FROM rollup_1s WHERE second >= ? AND second < ?
                    """, arguments: [start, upper]) else { continue }
                func n(_ i: Int) -> Int { Int((row[i] as Double?) ?? 0) }
                var segment = RollupTotals()
                segment.passes = n(0)
                segment.approved = n(1)
                segment.denied = n(2)
                segment.rejected = n(3)
                segment.errors = n(4)
                segment.deadlettered = n(5)
                segment.failed = n(6)
                segment.timed = n(7)
                segment.overLatencySLO = n(8)
                segment.hrmTimed = n(9)
                segment.hrmOverSLO = n(10)
                segment.slow = n(11)
                running += segment
                byStart[start] = running
                upper = start
            }
            return fromSeconds.map { byStart[$0] ?? RollupTotals() }
        }
    }

    /// The latency and HRM histograms (and, with `stages`, the per-stage ones) of every
    /// second since `fromSecond`, merged.
    public func rollupHistograms(since fromSecond: Int64, stages: Bool = true) throws -> RollupHistograms {
        try pool.read { db in
            var out = RollupHistograms()
            let sql = "SELECT latency_hist, hrm_hist\(stages ? ", stage_hists" : "") FROM rollup_1s WHERE second >= ?"
            let rows = try Row.fetchCursor(db, sql: sql, arguments: [fromSecond])
            while let row = try rows.next() {
                out.latency.merge(LogHistogram(encoded: [UInt8](row[0] as Data)))
                out.hrm.merge(LogHistogram(encoded: [UInt8](row[1] as Data)))
                if stages { out.stages.merge(StageHistograms(encoded: [UInt8](row[2] as Data))) }
            }
            return out
        }
    }

    /// The rollups since `fromSecond` in buckets of `bucketSeconds` (each keyed by its first
    /// second, oldest first, empty buckets left out): the console's charts of the last hour.
    public func rollupSeries(since fromSecond: Int64, bucketSeconds: Int64) throws -> [RollupBucket] {
        precondition(bucketSeconds > 0)
        return try pool.read { db in
            var out: [RollupBucket] = []
            let rows = try Row.fetchCursor(db, sql: """
                SELECT second, passes, failed, latency_hist FROM rollup_1s WHERE second >= ? ORDER BY second
                """, arguments: [fromSecond])
            while let row = try rows.next() {
                let second: Int64 = row[0]
                let start = fromSecond + (second - fromSecond) / bucketSeconds * bucketSeconds
                if out.last?.startSecond != start { out.append(RollupBucket(startSecond: start)) }
                out[out.count - 1].passes += row[1] as Int
                out[out.count - 1].failed += row[2] as Int
                out[out.count - 1].latency.merge(LogHistogram(encoded: [UInt8](row[3] as Data)))
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

    /// Whether a writer gets the write lock within `timeoutMs` (nil) or not (the problem):
    /// another process holding a write transaction stops Aletheia recording outcomes. Takes
    /// the lock and rolls back at once, writing nothing.
    public func probeWriteLock(timeoutMs: Int = 2000) throws -> String? {
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA busy_timeout = \(timeoutMs)")
            defer { try? db.execute(sql: "PRAGMA busy_timeout = \(StoreFile.busyTimeoutMs)") }
            do {
                try db.execute(sql: "BEGIN IMMEDIATE")
                try db.execute(sql: "ROLLBACK")
                return nil
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                return "locked: the write lock was not granted within \(timeoutMs) ms, so outcomes cannot be recorded; another process holds a write transaction on \(path) (find it: fuser -v \(path))"
            }
        }
    }
}
