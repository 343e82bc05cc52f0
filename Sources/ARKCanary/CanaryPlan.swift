// How a canary rollout proceeds and what trips it.

import ARKCore

/// How a canary rollout proceeds and what trips it. The defaults are the original
/// system's: one step of 10 % for 10 minutes, checked every 30 s.
public struct CanaryPlan: Sendable, Equatable {
    /// Shares of traffic for the canary, one per step, in order; promotion follows the last.
    public var steps: [Double] = [10]
    public var stepSeconds: Double = 600
    public var checkSeconds: Double = 30
    /// Decisions each track needs in a step before its denial and error rates are judged;
    /// fewer is "inconclusive", never a pass and never an abort.
    public var minSamples: Int = 30
    /// Times a step is extended by its own length for want of samples; after that the run
    /// holds at its share, tripwires still armed, until an operator promotes or aborts.
    public var maxExtensions: Int = 2
    /// A canary rate more than this many standard errors above the baseline's trips.
    public var sigmas: Double = 3
    /// The p95 pass latency SLO (SLO_P95_LATENCY_MS) and how long the canary may breach it.
    public var latencySLOMs: Double = 400
    public var latencyBreachSeconds: Double = 180
    /// Passes a check window needs before its p95 counts.
    public var minLatencySamples: Int = 10
    /// The synthetic loop that proves the baseline after a rollback: seconds and rate.
    public var verifySeconds: Int = 10
    public var verifyRate: Double = 5

    public init() {}

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Refuses a plan that cannot run, naming the option to fix.
    public func validate() throws(Invalid) {
        guard !steps.isEmpty else { throw Invalid(description: "--steps is empty: give shares such as 10,25,50,100") }
        var previous = 0.0
        for s in steps {
            guard s.isFinite, s > 0, s <= 100 else { throw Invalid(description: "--steps: \(s) is not a share in (0, 100]") }
            guard s > previous else { throw Invalid(description: "--steps must grow: \(s) follows \(previous)") }
            previous = s
        }
        guard stepSeconds >= 1 else { throw Invalid(description: "--step-minutes must be at least one second") }
        guard checkSeconds >= 0.2, checkSeconds <= stepSeconds else {
            throw Invalid(description: "--check-seconds must be between 0.2 and the step's length (\(stepSeconds) s)")
        }
        guard minSamples >= 1 else { throw Invalid(description: "--min-samples must be at least 1") }
        guard maxExtensions >= 0 else { throw Invalid(description: "--max-extensions must be 0 or more") }
        guard sigmas > 0 else { throw Invalid(description: "--sigmas must be above 0") }
        guard latencyBreachSeconds >= checkSeconds else { throw Invalid(description: "--latency-breach-seconds must be at least --check-seconds") }
    }
}
