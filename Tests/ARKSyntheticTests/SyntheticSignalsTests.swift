import ARKCore
import ARKStoreWriter
@testable import ARKState
import ARKTestSupport
import Graveyard
import Testing

@testable import ARKSynthetic

/// The synthetic loop's signals and its judgement of each pass, against the real Graveyard
/// rules, without Redis.
@Suite struct SyntheticSignalsTests {
    func rules() throws -> RuleSet {
        guard case .intact(let r) = Graveyard.check(directory: Repo.graveyard) else { throw TestSetupError("the repository's graveyard is not intact") }
        return r
    }

    func decide(_ e: Event, _ rules: RuleSet) -> Decision {
        var batch = BatchApprovals()
        return rules.evaluate(Proposal(e), book: PortfolioSnapshot(equity: 100_000), batch: &batch)
    }

    @Test func aSeedReplaysTheSameSignals() {
        var a = SyntheticSignals(runID: "r", seed: 7), b = SyntheticSignals(runID: "r", seed: 7), c = SyntheticSignals(runID: "r", seed: 8)
        let one = (1...200).map { a.make($0, nowNs: 1).event }
        #expect(one == (1...200).map { b.make($0, nowNs: 1).event })
        #expect(one != (1...200).map { c.make($0, nowNs: 1).event })
    }

    @Test func everyInjectedViolationIsDeniedForItsRuleAndTheRestIsCompliant() throws {
        let rules = try rules()
        var signals = SyntheticSignals(runID: "r", seed: 42, violationEvery: 10)
        var broken: [String] = []
        for i in 1...600 {
            let (e, expectation) = signals.make(i, nowNs: Int64(i) * 1_000_000_000)
            let d = decide(e, rules)
            switch expectation {
            case .violation(let rule):
                #expect(i % 10 == 5, "violations sit mid-cycle")
                #expect(!d.approved && d.violations.contains { $0.rule == rule }, "\(i) \(rule): \(d.violations.map(\.rule))")
                broken.append(rule)
            case .compliant:
                #expect(d.approved, "\(i): \(d.violations.map(\.rule))")
            }
        }
        // Every rule the loop knows how to break is broken, in turn.
        #expect(Set(broken) == Set(SyntheticSignals.injectedViolations.map(\.rule)) && broken.count == 60)
    }

    /// Any two quotes of a symbol stay inside the ±10 % price band, so a quote delayed behind a
    /// hung instance is still trusted.
    @Test func pricesWalkWithinAFewPercentOfWhereTheyBegan() {
        var signals = SyntheticSignals(runID: "r", seed: 3, violationEvery: 0, prices: ["AAPL": 190])
        var seen: [String: (lo: Double, hi: Double)] = [:]
        for i in 1...20_000 {
            let e = signals.make(i, nowNs: 0).event
            let r = seen[e.symbol] ?? (e.price, e.price)
            seen[e.symbol] = (min(r.lo, e.price), max(r.hi, e.price))
        }
        for (symbol, r) in seen { #expect(r.hi / r.lo < 1.10, "\(symbol) \(r)") }
        #expect(seen["AAPL"].map { $0.lo > 180 && $0.hi < 200 } == true)
    }
}

/// The loop's verdict on one recorded pass.
@Suite struct SyntheticJudgeTests {
    func pass(_ verdict: Verdict, reasons: [String] = [], continuous: Bool = true) -> StoredPass {
        StoredPass(seq: 1, traceID: "t", verdict: verdict, reasons: reasons, latencyMs: 1, doneNs: 1, continuityOK: continuous, orderID: nil, record: "{}", hash: "")
    }

    @Test func eachOutcomeIsJudgedAgainstWhatTheSignalWasBuiltFor() throws {
        let portfolio: Set<String> = ["max_symbol_exposure"]
        #expect(try judge(pass(.approved), expectation: .compliant, portfolioRules: portfolio).get() == .approved)
        #expect(try judge(pass(.denied, reasons: ["max_symbol_exposure [HIGH]: x"]), expectation: .compliant, portfolioRules: portfolio).get() == .portfolioLimited)
        #expect(try judge(pass(.denied, reasons: ["max_leverage [CRITICAL]: x"]), expectation: .violation(rule: "max_leverage"), portfolioRules: portfolio).get() == .violationDenied)
        for (p, e) in [(pass(.denied, reasons: ["max_leverage [CRITICAL]: x"]), Expectation.compliant),
                       (pass(.approved), .violation(rule: "max_leverage")),
                       (pass(.denied, reasons: ["stop_loss_required [HIGH]: x"]), .violation(rule: "max_leverage")),
                       (pass(.approved, continuous: false), .compliant),
                       (pass(.error), .compliant)] {
            guard case .failure = judge(p, expectation: e, portfolioRules: portfolio) else {
                Issue.record("\(p.verdict) for \(e) was not a failure")
                continue
            }
        }
    }
}
