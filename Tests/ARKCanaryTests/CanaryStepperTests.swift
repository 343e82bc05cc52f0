import Testing

@testable import ARKCanary

/// Every path of a rollout through the pure stepper, on a made-up clock: no processes, no
/// Redis, no store.
@Suite struct CanaryStepperTests {
    static let s: Int64 = 1_000_000_000

    var plan: CanaryPlan {
        var p = CanaryPlan()
        p.steps = [10, 50, 100]
        p.stepSeconds = 60
        p.checkSeconds = 10
        p.maxExtensions = 1
        return p
    }

    func result(_ verdict: CheckResult.Verdict, conclusive: Bool = true, tripwire: Tripwire? = nil, detail: String = "d") -> CheckResult {
        let none = RateComparison(canaryHits: 0, canaryN: 0, baselineHits: 0, baselineN: 0, minSamples: 1)
        return CheckResult(verdict: verdict, tripwire: tripwire, detail: detail, denials: none, failedPasses: none, failedBatches: none,
                           canaryWindowP95Ms: nil, canaryWindowSamples: 0, latencyBreachSinceNs: nil, stepConclusive: conclusive)
    }

    /// Asks at `t` seconds; when a check is due, answers it with `check`.
    func step(_ st: inout CanaryStepper, at t: Int64, _ check: CheckResult) -> CanaryStepper.Action {
        let action = st.next(nowNs: t * Self.s)
        guard case .check = action else { return action }
        return st.next(nowNs: t * Self.s, check: check)
    }

    @Test func checksEveryCheckIntervalAndWaitsBetween() {
        var st = CanaryStepper(plan: plan, startNs: 0)
        #expect(st.next(nowNs: 5 * Self.s) == .wait)
        #expect(st.next(nowNs: 10 * Self.s) == .check(step: 0, stepStartNs: 0, windowStartNs: 0))
        #expect(st.next(nowNs: 10 * Self.s, check: result(.pass)) == .wait)  // the step is not over
        #expect(st.next(nowNs: 15 * Self.s) == .wait)
        #expect(st.next(nowNs: 20 * Self.s) == .check(step: 0, stepStartNs: 0, windowStartNs: 10 * Self.s))
    }

    @Test func anExitedProcessIsCheckedAtOnce() {
        var st = CanaryStepper(plan: plan, startNs: 0)
        #expect(st.next(nowNs: 1 * Self.s, exited: true) == .check(step: 0, stepStartNs: 0, windowStartNs: 0))
        #expect(st.next(nowNs: 1 * Self.s, check: result(.tripwire, tripwire: .processExit, detail: "Kyle exit 1"), exited: true)
            == .rollBack(.processExit, detail: "Kyle exit 1"))
    }

    @Test func conclusiveStepsAdvanceThenPromote() {
        var st = CanaryStepper(plan: plan, startNs: 0)
        #expect(step(&st, at: 60, result(.pass)) == .advance(passed: 0, next: 1))
        #expect(st.step == 1 && st.stepStartNs == 60 * Self.s)
        #expect(step(&st, at: 90, result(.pass)) == .wait)
        #expect(step(&st, at: 120, result(.pass)) == .advance(passed: 1, next: 2))
        #expect(step(&st, at: 180, result(.pass)) == .promote(by: .controller))
        // An end is final: whatever comes after, the answer is the same.
        #expect(st.next(nowNs: 999 * Self.s, request: .abort) == .promote(by: .controller))
    }

    @Test func aTripwireRollsBackAtAnyTimeEvenWhileHolding() {
        var st = CanaryStepper(plan: plan, startNs: 0)
        #expect(step(&st, at: 30, result(.tripwire, tripwire: .denialSpike, detail: "4.1σ")) == .rollBack(.denialSpike, detail: "4.1σ"))
        var holding = CanaryStepper(plan: plan, startNs: 0)
        _ = step(&holding, at: 60, result(.inconclusive, conclusive: false))
        _ = step(&holding, at: 120, result(.inconclusive, conclusive: false))
        #expect(holding.holding)
        #expect(step(&holding, at: 130, result(.tripwire, tripwire: .quarantine)) == .rollBack(.quarantine, detail: "d"))
    }

    @Test func anInconclusiveStepIsExtendedThenHoldsThenGoesOnByItself() {
        var st = CanaryStepper(plan: plan, startNs: 0)
        #expect(step(&st, at: 60, result(.inconclusive, conclusive: false, detail: "12 of 30")) == .extend(step: 0, extensions: 1, detail: "12 of 30"))
        #expect(st.stepEndNs == 120 * Self.s)
        #expect(step(&st, at: 70, result(.inconclusive, conclusive: false)) == .wait)
        #expect(step(&st, at: 120, result(.inconclusive, conclusive: false, detail: "20 of 30")) == .hold(step: 0, detail: "20 of 30"))
        // Held: said once, then quiet until a step is conclusive.
        #expect(step(&st, at: 130, result(.inconclusive, conclusive: false)) == .wait)
        #expect(step(&st, at: 140, result(.pass)) == .advance(passed: 0, next: 1))
        #expect(!st.holding && st.extensions == 0)
    }

    @Test func aPassingCheckOfAnUnconclusiveStepIsNotAPromotion() {
        // A pass verdict on the window does not make the step conclusive (too few samples).
        var st = CanaryStepper(plan: plan, startNs: 0)
        #expect(step(&st, at: 60, result(.pass, conclusive: false)) == .extend(step: 0, extensions: 1, detail: "d"))
    }

    @Test func anOperatorRequestWinsOverEverything() {
        var abort = CanaryStepper(plan: plan, startNs: 0)
        #expect(abort.next(nowNs: 1, request: .abort, exited: true) == .rollBack(.operatorAbort, detail: "ark canary abort by an operator"))
        var promote = CanaryStepper(plan: plan, startNs: 0)
        #expect(promote.next(nowNs: 1, request: .promote) == .promote(by: .operator))
        #expect(promote.ended == .promote(by: .operator))
    }

    @Test func noExtensionsMeansHoldingAtOnce() {
        var p = plan
        p.maxExtensions = 0
        var st = CanaryStepper(plan: p, startNs: 0)
        #expect(step(&st, at: 60, result(.inconclusive, conclusive: false)) == .hold(step: 0, detail: "d"))
    }
}
