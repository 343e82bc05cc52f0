// What `ark bench` reads back about the passes it sent.

import ARKCore
import ARKStoreWriter
import Foundation
import GRDB

/// What `ark bench` reads back about the passes it sent (trace ids with one prefix).
public struct BenchPassFigures: Sendable, Equatable {
    public var passes = 0
    /// Producer stamp of the first pass and record time of the last (wall clock).
    public var firstT0Ns: Int64 = 0
    public var lastDoneNs: Int64 = 0
    /// End-to-end latency of every pass, sorted ascending.
    public var latenciesNs: [Int64] = []
    public var violations = 0
    public var violationsDenied = 0
    /// Compliant signals denied only for a portfolio limit (by HRM or by Kenny at execution).
    public var limitDenials = 0
    /// Compliant signals denied for anything else: a false denial.
    public var falseDenials = 0
    public var verdicts: [String: Int] = [:]

    /// The latency below which `q` (0...1) of the passes fall; nil without passes.
    public func latencyNs(quantile q: Double) -> Int64? {
        guard !latenciesNs.isEmpty else { return nil }
        // Nearest rank: the smallest value with at least q of the passes at or below it.
        let rank = Int((Double(latenciesNs.count) * q).rounded(.up))
        return latenciesNs[min(latenciesNs.count, max(1, rank)) - 1]
    }
}

extension StateStore {
    /// Passes recorded with trace ids starting `prefix`, so far.
    public func passCount(traceIDPrefix prefix: String) throws -> Int {
        try pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM passes WHERE trace_id >= ? AND trace_id < ?", arguments: [prefix, prefix + "\u{10FFFF}"]) ?? 0
        }
    }

    /// `portfolioRules`: the ids of the Graveyard's portfolio rules, which tell a limit reached
    /// from a false denial.
    public func benchFigures(traceIDPrefix prefix: String, portfolioRules: Set<String> = []) throws -> BenchPassFigures {
        try pool.read { db in
            var f = BenchPassFigures()
            let range: StatementArguments = [prefix, prefix + "\u{10FFFF}"]
            let rows = try Row.fetchCursor(db, sql: """
                SELECT t0_ns, done_ns, verdict, injected_violation IS NOT NULL AS violating, \(PassColumns.reasons)
                FROM passes WHERE trace_id >= ? AND trace_id < ?
                """, arguments: range)
            f.firstT0Ns = .max
            while let row = try rows.next() {
                let t0: Int64 = row[0], done: Int64 = row[1], verdict: String = row[2], violating: Bool = row[3]
                f.passes += 1
                f.firstT0Ns = min(f.firstT0Ns, t0)
                f.lastDoneNs = max(f.lastDoneNs, done)
                f.latenciesNs.append(done - t0)
                f.verdicts[verdict, default: 0] += 1
                if violating {
                    f.violations += 1
                    if verdict == "denied" { f.violationsDenied += 1 }
                } else if verdict == "denied" {
                    let reasons = JSONDocument.parse(row[4] as String) as? [String] ?? []
                    let rules = StoredPass.ruleIDs(in: reasons)
                    if !rules.isEmpty && rules.allSatisfy(portfolioRules.contains) { f.limitDenials += 1 } else { f.falseDenials += 1 }
                }
            }
            if f.passes == 0 { f.firstT0Ns = 0 }
            f.latenciesNs.sort()
            return f
        }
    }
}

extension StateStore {
    /// Passes recorded so far, cheaply (the largest sequence number): right for a store that
    /// holds nothing else, as the benchmark's does.
    public func recordedPassCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM passes") ?? 0 }
    }
}

extension StateStore {
    /// Writes `passes` passes spread evenly over the `hours` before `endingAtNs`, through the
    /// real write path (rollups, hash chain) in batches of 1,000: every 20th denied, every
    /// 200th dead-lettered. A store of known size for timing the SLO report (`ark bench slos`
    /// and the Benchmarks package). `progress` gets the count written after each batch.
    public func writeSyntheticHistory(passes: Int, hours: Double, endingAtNs now: Int64, progress: (Int) -> Void = { _ in }) throws {
        let span = Int64(hours * 3600e9)
        var batch: [PassRecord] = []
        batch.reserveCapacity(1000)
        for i in 0..<passes {
            let done = now - span + span / Int64(passes) * Int64(i)
            let verdict: Verdict = i % 200 == 0 ? .deadlettered : (i % 20 == 0 ? .denied : .approved)
            let t0 = done - Int64(1_000_000 + (i % 97) * 50_000)
            var e = Event(traceID: "bench-\(i)", id: "b\(i)", symbol: "AAPL", price: 101.5, volume: 1, ts: Double(t0) / 1e9, source: "bench", t0Ns: t0)
            e.decision = Decision(approved: verdict == .approved, violations: [], warnings: [], rulesChecked: 11, complianceScore: 1, policyHash: "h",
                                  evalNs: Int64(20_000 + (i % 13) * 1000))
            let reasons = verdict == .denied ? ["max_leverage [CRITICAL]: bench"] : verdict == .deadlettered ? ["dead-lettered from ark:joey (Joey): bench"] : []
            var p = PassRecord(auditing: e, verdict: verdict, reasons: reasons, t0Ns: t0, doneNs: done)
            p.stageTimes = [StageTime(stage: .kyle, micros: 20), StageTime(stage: .joey, micros: 15), StageTime(stage: .hrm, micros: 30), StageTime(stage: .kenny, micros: 40)]
            batch.append(p)
            if batch.count == 1000 || i == passes - 1 {
                try record(passes: batch)
                batch.removeAll(keepingCapacity: true)
                progress(i + 1)
            }
        }
    }
}
