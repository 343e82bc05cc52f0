import ARKBus
import ARKCore
import ARKSLO
import ARKState
import ARKStoreWriter
import ARKTestSupport
import Foundation
import Testing

func pass(_ id: String, verdict: Verdict = .approved, doneNs: Int64, latencyMs: Double = 2, hrmUs: Double? = 50) -> PassRecord {
    var p = auditedPass(id, verdict: verdict, t0Ns: doneNs - Int64(latencyMs * 1e6), doneNs: doneNs, hrmEvalUs: hrmUs)
    p.stageTimes = [StageTime(stage: .kyle, micros: 100), StageTime(stage: .hrm, micros: 300)]
    return p
}

/// The SLO engine over a real SQLite state store.
@Suite final class SLOEngineTests {
    let dir: TempDir
    let store: StateStore
    let engine = SLOEngine(settings: SLOSettings(availabilityTarget: 0.995, p95LatencyMs: 400))
    let nowNs = wallClockNanoseconds()

    init() throws {
        dir = try TempDir("ark-slo")
        store = try StateStore(path: dir.path + "/ark_state.db")
    }
    deinit { dir.remove() }

    func report(overdue: Int? = 0, drift: Bool = false) throws -> SLOReport {
        let starts = engine.windowStarts(nowSeconds: nowNs / 1_000_000_000)
        let totals = try store.rollupTotals(since: [starts.window] + BurnWindow.allCases.map { starts.burn[$0]! })
        return engine.evaluate(SLOInputs(
            window: totals[0], burn: Dictionary(uniqueKeysWithValues: zip(BurnWindow.allCases, totals.dropFirst())),
            histograms: try store.rollupHistograms(since: starts.window), inFlightOverdue: overdue,
            ethicsDrift: drift, driftProblem: drift ? "rule file changed" : nil, nowNs: nowNs))
    }

    @Test func withoutTrafficEverySLOSaysNoDataNeverAFake100Percent() throws {
        let r = try report()
        for name in ["availability", "latency_p95", "hrm_evaluation_p95"] {
            let s = try #require(r.slo(name))
            #expect(s.state == .noData && s.actual == nil && s.ok == nil && s.budgetRemaining == nil)
        }
        #expect(r.slo("ethics_drift")?.state == .ok)
        #expect(r.violations.isEmpty)
    }

    @Test func onePercentDeadLetteredIsAvailability99AndAViolation() throws {
        // 990 good passes and 10 dead-lettered, spread over the last 100 seconds.
        var passes: [PassRecord] = []
        for i in 0..<1000 {
            let verdict: Verdict = i % 100 == 7 ? .deadlettered : (i % 3 == 0 ? .rejected : .approved)
            let done: Int64 = nowNs - Int64(i % 100) * 1_000_000_000
            passes.append(pass("t\(i)", verdict: verdict, doneNs: done, latencyMs: Double(1 + i % 50)))
        }
        try store.record(passes: passes)
        let r = try report()
        let a = try #require(r.slo("availability"))
        #expect(a.events == 1000 && a.badEvents == 10)
        #expect(abs(a.actual! - 0.99) < 1e-9)
        #expect(a.state == .violated)
        // 1% failed against a 0.5% budget: burning at 2×, the window's budget overspent by 100%.
        #expect(abs((a.burnRates[.m5] ?? nil)! - 2.0) < 1e-9)
        #expect(abs(a.budgetRemaining! - (-1.0)) < 1e-9)
        #expect(r.violations.contains { $0.hasPrefix("availability: 0.99 < target 0.995") })
        // Correct rejections are successes; latency p95 of 1...50 ms is about 48 ms.
        let l = try #require(r.slo("latency_p95"))
        #expect(l.state == .ok && abs(l.actual! - 48) < 48 * 0.01)
        #expect(l.events == 990)
    }

    @Test func latePassesAndOverdueSignalsInFlightCountAsFailures() throws {
        var passes = (0..<200).map { pass("ok\($0)", doneNs: nowNs - 1_000_000_000, latencyMs: 5) }
        passes.append(pass("late", doneNs: nowNs - 1_000_000_000, latencyMs: 6_000))  // over the 5 s pass timeout
        try store.record(passes: passes)
        let r = try report(overdue: 4)
        let a = try #require(r.slo("availability"))
        #expect(a.events == 205 && a.badEvents == 5)
        #expect(abs(a.actual! - 200.0 / 205.0) < 1e-9)
        #expect(r.inFlightOverdue == 4)
        #expect(try report(overdue: nil).notes.contains { $0.contains("Redis unreachable") })
    }

    @Test func latencyAndHRMThresholdsAndBurnWindows() throws {
        // 100 passes now, 10% of them over 400 ms; HRM at 200 ms for 10% too.
        let passes = (0..<100).map { i in
            pass("p\(i)", doneNs: nowNs, latencyMs: i < 10 ? 900 : 10, hrmUs: i < 10 ? 200_000 : 40)
        }
        // and an hour-old batch, outside the 5m window but inside 1h and 6h.
        let old = (0..<100).map { pass("o\($0)", doneNs: nowNs - 3_000 * 1_000_000_000, latencyMs: 10) }
        try store.record(passes: passes + old)
        let r = try report()
        let l = try #require(r.slo("latency_p95"))
        #expect(l.state == .violated && l.actual! > 400)
        #expect(abs((l.burnRates[.m5] ?? nil)! - 2.0) < 1e-9)  // 10% over, 5% allowed
        #expect(abs((l.burnRates[.h1] ?? nil)! - 1.0) < 1e-9)  // 10 of 200
        let h = try #require(r.slo("hrm_evaluation_p95"))
        #expect(h.state == .violated && abs(h.actual! - 200) < 2)
        #expect(r.violations.contains { $0.hasPrefix("hrm_evaluation_p95") })
    }

    @Test func fastBurnIsReportedWhenBothWindowsBurn() throws {
        let passes = (0..<100).map { i in pass("f\(i)", verdict: i < 20 ? .error : .approved, doneNs: nowNs) }
        try store.record(passes: passes)
        let r = try report()
        #expect(r.violations.contains { $0.contains("availability: fast burn") })
        #expect(r.violations.contains { $0.contains("availability: slow burn") })
    }

    @Test func driftIsAViolationWithoutBudget() throws {
        let r = try report(drift: true)
        #expect(r.slo("ethics_drift")?.state == .violated)
        #expect(r.violations.contains { $0.hasPrefix("ethics_drift: rule file changed") })
    }

    @Test func deadLettersWithoutATraceStillCountAgainstAvailability() throws {
        let dead = DeadLetterRecord(deadLetterID: "1-1", stream: "ark:joey", entryID: "5-0", group: "Joey", consumer: "c", reason: "cannot decode",
                                    payload: [1, 2], deliveries: 1, traceID: nil, tsNs: nowNs)
        try store.record(passes: [pass("a", doneNs: nowNs)], deadLetters: [dead])
        try store.record(passes: [], deadLetters: [dead])  // recorded once
        let a = try #require(try report().slo("availability"))
        #expect(a.events == 2 && a.badEvents == 1)
    }

    @Test func perStageHistogramsComeFromTheHops() throws {
        try store.record(passes: (0..<10).map { pass("s\($0)", doneNs: nowNs) })
        let h = try store.rollupHistograms(since: nowNs / 1_000_000_000 - 10)
        #expect(h.stages[.kyle].total == 10 && abs(h.stages[.kyle].quantile(0.5)! - 100) < 1)
        #expect(h.stages[.hrm].total == 10 && h.stages[.joey].total == 0)
        #expect(StageHistograms(encoded: h.stages.encoded()) == h.stages)
    }
}

/// Aletheia keeps rollups at least as long as the slowest burn-rate window reads them.
@Suite struct RollupRetentionFloorTests {
    @Test func theRetentionFloorIsTheLongestBurnWindow() {
        #expect(BurnWindow.allCases.map(\.seconds).max() == Int64(ARKConfig.longestSLOWindowSeconds))
        var c = ARKConfig()
        c.metricsRetentionSeconds = 1800
        #expect(c.rollupRetentionSeconds == ARKConfig.longestSLOWindowSeconds)
        c.metricsRetentionSeconds = 86_400
        #expect(c.rollupRetentionSeconds == 86_400)
    }
}
