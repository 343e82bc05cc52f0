// The per-second rollups' counts and histograms, one definition for the writer and the queries.

import ARKCore

/// Counts of passes by outcome and against each SLO, for one second's rollup row or summed
/// over a window: the one definition the writer adds to and the SLO queries sum.
public struct RollupTotals: Sendable, Equatable {
    public var passes = 0
    public var approved = 0
    public var denied = 0
    public var rejected = 0
    public var errors = 0
    public var deadlettered = 0
    /// Passes later than the pass timeout.
    public var slow = 0
    /// Passes that count against availability: errored, dead-lettered or later than the pass timeout.
    public var failed = 0
    /// Passes with a latency (all but dead letters).
    public var timed = 0
    public var overLatencySLO = 0
    public var hrmTimed = 0
    public var hrmOverSLO = 0

    public init() {}

    /// Counts one pass by its verdict and its times against `t`.
    public mutating func add(_ p: PassRecord, _ t: RollupThresholds) {
        passes += 1
        switch p.verdict {
        case .approved: approved += 1
        case .denied: denied += 1
        case .rejected: rejected += 1
        case .error: errors += 1
        case .deadlettered: deadlettered += 1
        }
        guard p.verdict != .deadlettered else { failed += 1; return }
        let ms = p.latencyMs
        if ms > t.passTimeoutMs { slow += 1 }
        if p.verdict.isFailure || ms > t.passTimeoutMs { failed += 1 }
        timed += 1
        if ms > t.latencySLOMs { overLatencySLO += 1 }
        if let us = p.hrmEvalUs {
            hrmTimed += 1
            if us / 1000 > t.hrmSLOMs { hrmOverSLO += 1 }
        }
    }

    /// A dead letter with no trace: it failed a pass, which must not vanish from availability.
    public mutating func addUntracedDeadLetter() {
        passes += 1
        deadlettered += 1
        failed += 1
    }

    public static func += (a: inout RollupTotals, b: RollupTotals) {
        a.passes += b.passes
        a.approved += b.approved
        a.denied += b.denied
        a.rejected += b.rejected
        a.errors += b.errors
        a.deadlettered += b.deadlettered
        a.slow += b.slow
        a.failed += b.failed
        a.timed += b.timed
        a.overLatencySLO += b.overLatencySLO
        a.hrmTimed += b.hrmTimed
        a.hrmOverSLO += b.hrmOverSLO
    }
}

/// The latency histograms of a rollup row, or of a window merged.
public struct RollupHistograms: Sendable, Equatable {
    public var latency = LogHistogram()
    public var hrm = LogHistogram()
    public var stages = StageHistograms()

    public init() {}

    public mutating func merge(_ other: RollupHistograms) {
        latency.merge(other.latency)
        hrm.merge(other.hrm)
        stages.merge(other.stages)
    }
}

/// What one batch adds to one second's rollup row: the counts, the latency sum and maximum,
/// and the histograms. Pure; the writer merges it into the row (`OutcomeStatements.mergeRollup`).
public struct RollupAccumulator: Sendable, Equatable {
    public var totals = RollupTotals()
    public var latencySumMs = 0.0
    public var latencyMaxMs = 0.0
    public var histograms = RollupHistograms()

    public init() {}

    public mutating func add(_ p: PassRecord, _ t: RollupThresholds) {
        totals.add(p, t)
        guard p.verdict != .deadlettered else { return }
        let ms = p.latencyMs
        latencySumMs += ms
        latencyMaxMs = max(latencyMaxMs, ms)
        histograms.latency.record(micros: ms * 1000)
        if let us = p.hrmEvalUs { histograms.hrm.record(micros: us) }
        for s in p.stageTimes { histograms.stages.record(s.stage, micros: s.micros) }
    }

    public mutating func addUntracedDeadLetter() {
        totals.addUntracedDeadLetter()
    }
}
