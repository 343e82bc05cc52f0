// The judgement of a canary against its baseline over one interval.

import ARKCore
import ARKState
import ARKStoreWriter
import Foundation

/// Why a canary is rolled back.
public enum Tripwire: String, Sendable, CaseIterable {
    /// HRM denied the canary's proposals at a rate more than `sigmas` above the baseline's.
    case denialSpike = "denial_spike"
    /// The watchdog quarantined a canary instance.
    case quarantine
    /// The canary's p95 pass latency stayed over the SLO for the breach time.
    case latencyBreach = "latency_breach"
    /// Failed passes (errors, dead letters) or failed batches above the baseline's.
    case errors
    /// A canary process exited on its own.
    case processExit = "process_exit"
    /// An operator ran `ark canary abort`.
    case operatorAbort = "operator_abort"
    /// The controller was stopped (SIGINT, SIGTERM) before the run ended: it rolls back
    /// rather than leave the run stranded.
    case controllerStopped = "controller_stopped"
}

/// One rate compared across the tracks: canary hits of n against baseline hits of n.
public struct RateComparison: Sendable, Equatable {
    public var canaryHits: Int
    public var canaryN: Int
    public var baselineHits: Int
    public var baselineN: Int
    /// The canary's excess over the baseline in standard errors (nil: too few samples).
    public var sigmas: Double?

    /// Conclusive when both tracks have `minSamples`. The standard error is the two-
    /// proportion test's, from both tracks' rate pooled (as if the canary changed nothing)
    /// and smoothed (hits + 1 over n + 2), so a baseline that never denied does not make one
    /// canary denial significant.
    public init(canaryHits: Int, canaryN: Int, baselineHits: Int, baselineN: Int, minSamples: Int) {
        self.canaryHits = canaryHits
        self.canaryN = canaryN
        self.baselineHits = baselineHits
        self.baselineN = baselineN
        guard canaryN >= minSamples, baselineN >= minSamples else { sigmas = nil; return }
        let pc = Double(canaryHits) / Double(canaryN)
        let pb = Double(baselineHits) / Double(baselineN)
        let smoothed = (Double(canaryHits + baselineHits) + 1) / (Double(canaryN + baselineN) + 2)
        let se = (smoothed * (1 - smoothed) * (1 / Double(canaryN) + 1 / Double(baselineN))).squareRoot()
        sigmas = (pc - pb) / se
    }

    public var canaryRate: Double { canaryN > 0 ? Double(canaryHits) / Double(canaryN) : 0 }
    public var baselineRate: Double { baselineN > 0 ? Double(baselineHits) / Double(baselineN) : 0 }
}

/// Everything one check looks at.
public struct CheckInput: Sendable {
    /// Both tracks' passes since the step began (denials, failures).
    public var canaryStep: TrackFigures
    public var baselineStep: TrackFigures
    /// The canary's passes in this check's window (latency).
    public var canaryWindow: TrackFigures
    /// Failed and total batches of each track's agents since the run began (heartbeats).
    public var canaryBatches: (failed: Int, total: Int)
    public var baselineBatches: (failed: Int, total: Int)
    public var quarantines: [WatchdogEventRecord]
    /// Canary processes that exited, with how.
    public var exited: [String]
    public var nowNs: Int64
    public var windowStartNs: Int64

    public init(canaryStep: TrackFigures, baselineStep: TrackFigures, canaryWindow: TrackFigures, canaryBatches: (failed: Int, total: Int),
                baselineBatches: (failed: Int, total: Int), quarantines: [WatchdogEventRecord], exited: [String], nowNs: Int64, windowStartNs: Int64) {
        self.canaryStep = canaryStep
        self.baselineStep = baselineStep
        self.canaryWindow = canaryWindow
        self.canaryBatches = canaryBatches
        self.baselineBatches = baselineBatches
        self.quarantines = quarantines
        self.exited = exited
        self.nowNs = nowNs
        self.windowStartNs = windowStartNs
    }
}

/// What one check found, as stored in `canary_checks.figures`.
public struct CheckResult: Sendable, Equatable {
    public enum Verdict: String, Sendable, CaseIterable { case pass, inconclusive, tripwire }

    public var verdict: Verdict
    public var tripwire: Tripwire?
    /// Why: the figures that tripped, or what was missing for a conclusion.
    public var detail: String
    public var denials: RateComparison
    public var failedPasses: RateComparison
    public var failedBatches: RateComparison
    public var canaryWindowP95Ms: Double?
    public var canaryWindowSamples: Int
    /// Since when the canary's p95 has been over the SLO (nil: it is not).
    public var latencyBreachSinceNs: Int64?
    /// Whether this step has the samples a promotion needs.
    public var stepConclusive: Bool
}

/// The judgement of a canary against its baseline over the same interval. Pure: the
/// controller gathers the figures, this decides; tested without processes.
public struct CanaryJudge: Sendable {
    public let plan: CanaryPlan
    /// Carried from check to check: since when the canary's p95 is over the SLO.
    public private(set) var latencyBreachSinceNs: Int64?

    public init(plan: CanaryPlan) { self.plan = plan }

    public mutating func check(_ i: CheckInput) -> CheckResult {
        let denials = RateComparison(canaryHits: i.canaryStep.denied, canaryN: i.canaryStep.decided,
                                     baselineHits: i.baselineStep.denied, baselineN: i.baselineStep.decided, minSamples: plan.minSamples)
        let failedPasses = RateComparison(canaryHits: i.canaryStep.failed, canaryN: i.canaryStep.passes,
                                          baselineHits: i.baselineStep.failed, baselineN: i.baselineStep.passes, minSamples: plan.minSamples)
        let failedBatches = RateComparison(canaryHits: i.canaryBatches.failed, canaryN: i.canaryBatches.total,
                                           baselineHits: i.baselineBatches.failed, baselineN: i.baselineBatches.total, minSamples: plan.minSamples)
        var p95: Double?
        if i.canaryWindow.latencySamples >= plan.minLatencySamples, let w = i.canaryWindow.latencyP95Ms {
            p95 = w
            if w > plan.latencySLOMs {
                latencyBreachSinceNs = latencyBreachSinceNs ?? i.windowStartNs
            } else {
                latencyBreachSinceNs = nil
            }
        }
        // A window without enough passes neither starts, extends nor ends a breach.
        // A step passes only with its rates judged and its own p95 within the SLO.
        let stepLatencyOK = i.canaryStep.latencySamples >= plan.minLatencySamples && (i.canaryStep.latencyP95Ms ?? .infinity) <= plan.latencySLOMs
        let stepConclusive = denials.sigmas != nil && stepLatencyOK
        var result = CheckResult(verdict: .pass, tripwire: nil, detail: "", denials: denials, failedPasses: failedPasses, failedBatches: failedBatches,
                                 canaryWindowP95Ms: p95, canaryWindowSamples: i.canaryWindow.latencySamples,
                                 latencyBreachSinceNs: latencyBreachSinceNs, stepConclusive: stepConclusive)
        func trip(_ t: Tripwire, _ detail: String) -> CheckResult {
            result.verdict = .tripwire
            result.tripwire = t
            result.detail = detail
            return result
        }
        if let e = i.exited.first {
            return trip(.processExit, "canary process exited: \(e)")
        }
        if let q = i.quarantines.first {
            return trip(.quarantine, "watchdog quarantined canary instance \(q.instance): \(q.reason)")
        }
        if let s = denials.sigmas, s > plan.sigmas {
            return trip(.denialSpike, String(format: "canary denial rate %.1f%% (%d of %d) vs baseline %.1f%% (%d of %d): %.1fσ above, limit %.1fσ",
                                             denials.canaryRate * 100, denials.canaryHits, denials.canaryN,
                                             denials.baselineRate * 100, denials.baselineHits, denials.baselineN, s, plan.sigmas))
        }
        for (name, c) in [("failed passes", failedPasses), ("failed batches", failedBatches)] {
            if let s = c.sigmas, s > plan.sigmas {
                return trip(.errors, String(format: "canary %@ %.1f%% (%d of %d) vs baseline %.1f%% (%d of %d): %.1fσ above",
                                            name, c.canaryRate * 100, c.canaryHits, c.canaryN, c.baselineRate * 100, c.baselineHits, c.baselineN, s))
            }
        }
        if let since = latencyBreachSinceNs, Double(i.nowNs - since) / 1e9 >= plan.latencyBreachSeconds {
            return trip(.latencyBreach, String(format: "canary p95 %.0f ms over the %.0f ms SLO for %.0f s (limit %.0f s)",
                                               p95 ?? 0, plan.latencySLOMs, Double(i.nowNs - since) / 1e9, plan.latencyBreachSeconds))
        }
        let latency = p95.map { String(format: "window p95 %.0f ms", $0) }
            ?? "window p95 n/a (\(i.canaryWindow.latencySamples) canary passes, need \(plan.minLatencySamples))"
        let stepLatency = i.canaryStep.latencyP95Ms.map { String(format: "step p95 %.0f ms", $0) } ?? "step p95 n/a"
        if denials.sigmas == nil {
            result.verdict = .inconclusive
            result.detail = "too little traffic to judge: decisions this step: canary \(denials.canaryN), baseline \(denials.baselineN), need \(plan.minSamples) each; \(latency)"
            return result
        }
        result.detail = String(format: "denials %.1f%% vs %.1f%%, ", denials.canaryRate * 100, denials.baselineRate * 100) + latency + ", " + stepLatency
        return result
    }
}
