// What a canary controller does next: wait, check, extend, hold, advance, promote or roll back.

import ARKCore

/// What a canary controller does next, decided from the clock, the judge's check, an
/// operator's request and the canary's processes: pure, so every path of a rollout (wait,
/// check, extend, hold, advance, promote, roll back) is a unit test (docs/canary.md).
public struct CanaryStepper: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Nothing is due: sleep a moment and ask again.
        case wait
        /// Judge the canary now over the step so far and the window since the last check,
        /// then ask again with the result.
        case check(step: Int, stepStartNs: Int64, windowStartNs: Int64)
        /// The step ended without a conclusion: it runs its length once more.
        case extend(step: Int, extensions: Int, detail: String)
        /// Still inconclusive after every extension: stay at this share, tripwires armed.
        case hold(step: Int, detail: String)
        /// The step passed: begin the next one.
        case advance(passed: Int, next: Int)
        /// The release becomes the baseline (after the last step, or by an operator).
        case promote(by: Promoter)
        case rollBack(Tripwire, detail: String)
    }

    public enum Promoter: String, Sendable, Equatable { case controller, `operator` }

    /// What an operator asked for with `ark canary abort | promote`.
    public enum Request: String, Sendable, Equatable { case abort, promote }

    public let plan: CanaryPlan
    public private(set) var step = 0
    public private(set) var stepStartNs: Int64
    public private(set) var extensions = 0
    public private(set) var lastCheckNs: Int64
    /// Whether the run holds at its share (said once; it goes on when a step is conclusive).
    public private(set) var holding = false
    /// Set once a promotion or rollback was decided: every later answer repeats it.
    public private(set) var ended: Action?

    public init(plan: CanaryPlan, startNs: Int64) {
        self.plan = plan
        stepStartNs = startNs
        lastCheckNs = startNs
    }

    /// When the current step ends, with its extensions.
    public var stepEndNs: Int64 { stepStartNs + Int64(plan.stepSeconds * Double(1 + extensions) * 1e9) }

    /// The next action at `nowNs`. `check` is the judge's result for an action `.check`
    /// asked for (nil otherwise); `exited` says a canary process has exited, which is
    /// checked at once rather than at the next check.
    public mutating func next(nowNs: Int64, check: CheckResult? = nil, request: Request? = nil, exited: Bool = false) -> Action {
        if let ended { return ended }
        switch request {
        case .abort: return end(.rollBack(.operatorAbort, detail: "ark canary abort by an operator"))
        case .promote: return end(.promote(by: .operator))
        case nil: break
        }
        guard let check else {
            let due = nowNs - lastCheckNs >= Int64(plan.checkSeconds * 1e9) || exited
            return due ? .check(step: step, stepStartNs: stepStartNs, windowStartNs: lastCheckNs) : .wait
        }
        lastCheckNs = nowNs
        if check.verdict == .tripwire, let t = check.tripwire { return end(.rollBack(t, detail: check.detail)) }
        guard nowNs >= stepEndNs else { return .wait }
        if check.stepConclusive {
            let passed = step
            if passed + 1 == plan.steps.count { return end(.promote(by: .controller)) }
            step += 1
            stepStartNs = nowNs
            extensions = 0
            holding = false
            return .advance(passed: passed, next: step)
        }
        if extensions < plan.maxExtensions {
            extensions += 1
            return .extend(step: step, extensions: extensions, detail: check.detail)
        }
        if !holding {
            holding = true
            return .hold(step: step, detail: check.detail)
        }
        return .wait
    }

    private mutating func end(_ action: Action) -> Action {
        ended = action
        return action
    }
}
