// The SLOs computed from the store's rollups: status, budget and burn rates.

import ARKCore
import ARKState
import ARKStoreWriter

/// What the SLOs are held to (DESIGN §5).
public struct SLOSettings: Sendable, Equatable {
    public var availabilityTarget: Double
    public var p95LatencyMs: Double
    public var hrmP95Ms: Double
    /// The window every SLO's `actual` and error budget are taken over.
    public var windowSeconds: Int64

    public init(availabilityTarget: Double = 0.995, p95LatencyMs: Double = 400, hrmP95Ms: Double = RollupThresholds.hrmEvaluationSLOMs, windowSeconds: Int64 = 300) {
        self.availabilityTarget = availabilityTarget
        self.p95LatencyMs = p95LatencyMs
        self.hrmP95Ms = hrmP95Ms
        self.windowSeconds = windowSeconds
    }

    public init(config: ARKConfig) {
        self.init(availabilityTarget: config.sloAvailabilityTarget, p95LatencyMs: config.sloP95LatencyMs)
    }
}

/// The burn-rate windows, in seconds, and the pairs alerted on (Google SRE workbook):
/// fast burn when both 5m and 1h burn faster than 14.4×, slow burn when 30m and 6h exceed 6×.
public enum BurnWindow: String, Sendable, CaseIterable {
    case m5 = "5m", h1 = "1h", m30 = "30m", h6 = "6h"

    public var seconds: Int64 {
        switch self {
        case .m5: 300
        case .h1: 3600
        case .m30: 1800
        case .h6: 21600
        }
    }

    public static let fastBurn = (short: BurnWindow.m5, long: BurnWindow.h1, factor: 14.4)
    public static let slowBurn = (short: BurnWindow.m30, long: BurnWindow.h6, factor: 6.0)
}

/// One SLO's state.
public struct SLOStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        case ok, violated
        case noData = "no_data"
    }

    public var name: String
    public var objective: String
    public var target: Double
    /// nil when there is no data in the window: never a made-up 100%.
    public var actual: Double?
    public var state: State
    /// Fraction of the window's error budget left (negative: overspent); nil without data.
    public var budgetRemaining: Double?
    /// Burn rate per window (1.0 spends the budget exactly); nil for a window without data.
    public var burnRates: [BurnWindow: Double?]
    public var events: Int
    public var badEvents: Int

    public var ok: Bool? { state == .noData ? nil : state == .ok }
}

/// Everything `/slos` shows.
public struct SLOReport: Sendable, Equatable {
    public var generatedNs: Int64
    public var windowSeconds: Int64
    public var slos: [SLOStatus]
    public var violations: [String]
    /// Signals in the pipeline longer than the pass timeout (nil: Redis could not be asked).
    public var inFlightOverdue: Int?
    public var notes: [String]

    public init(generatedNs: Int64, windowSeconds: Int64, slos: [SLOStatus], violations: [String], inFlightOverdue: Int?, notes: [String]) {
        self.generatedNs = generatedNs
        self.windowSeconds = windowSeconds
        self.slos = slos
        self.violations = violations
        self.inFlightOverdue = inFlightOverdue
        self.notes = notes
    }

    public func slo(_ name: String) -> SLOStatus? { slos.first { $0.name == name } }
}

/// What the engine reads: rollup totals for the SLO window and each burn window, the
/// window's histograms, what is overdue in Redis now, and the Graveyard's state.
public struct SLOInputs: Sendable {
    public var window: RollupTotals
    public var burn: [BurnWindow: RollupTotals]
    public var histograms: RollupHistograms
    public var inFlightOverdue: Int?
    public var ethicsDrift: Bool
    public var driftProblem: String?
    public var nowNs: Int64

    public init(window: RollupTotals, burn: [BurnWindow: RollupTotals], histograms: RollupHistograms, inFlightOverdue: Int?, ethicsDrift: Bool, driftProblem: String?, nowNs: Int64) {
        self.window = window
        self.burn = burn
        self.histograms = histograms
        self.inFlightOverdue = inFlightOverdue
        self.ethicsDrift = ethicsDrift
        self.driftProblem = driftProblem
        self.nowNs = nowNs
    }
}

/// Computes the SLOs from the state store's rollups (pure: the same inputs give the same
/// report in every process, and after a restart).
public struct SLOEngine: Sendable {
    public let settings: SLOSettings

    public init(settings: SLOSettings) {
        self.settings = settings
    }

    /// The window starts (Unix seconds) the inputs need: the SLO window, then each burn window.
    public func windowStarts(nowSeconds: Int64) -> (window: Int64, burn: [BurnWindow: Int64]) {
        (nowSeconds - settings.windowSeconds + 1, Dictionary(uniqueKeysWithValues: BurnWindow.allCases.map { ($0, nowSeconds - $0.seconds + 1) }))
    }

    /// The report from `store`'s rollups at `nowNs`, with what only the caller knows (Redis's
    /// overdue entries, the Graveyard's state). `/slos`, `ark bench slos` and the Benchmarks
    /// package all compute it here, so they time and serve the same thing.
    public func report(from store: StateStore, nowNs: Int64, inFlightOverdue: Int?, ethicsDrift: Bool, driftProblem: String?) throws -> SLOReport {
        let starts = windowStarts(nowSeconds: nowNs / 1_000_000_000)
        let order = BurnWindow.allCases
        let totals = try store.rollupTotals(since: [starts.window] + order.map { starts.burn[$0]! })
        let histograms = try store.rollupHistograms(since: starts.window, stages: false)
        return evaluate(SLOInputs(
            window: totals[0], burn: Dictionary(uniqueKeysWithValues: zip(order, totals.dropFirst())),
            histograms: histograms, inFlightOverdue: inFlightOverdue, ethicsDrift: ethicsDrift,
            driftProblem: driftProblem, nowNs: nowNs))
    }

    public func evaluate(_ input: SLOInputs) -> SLOReport {
        let overdue = input.inFlightOverdue ?? 0
        var slos: [SLOStatus] = []
        var violations: [String] = []
        var notes: [String] = []
        if input.inFlightOverdue == nil {
            notes.append("Redis unreachable: signals still in the pipeline past the pass timeout are not counted")
        }
        let window = settings.windowSeconds % 60 == 0 ? "\(settings.windowSeconds / 60)m" : "\(settings.windowSeconds)s"

        // Availability: good passes over all passes, where a pass still in flight past the
        // pass timeout counts as failed now.
        let availabilityBudget = 1 - settings.availabilityTarget
        slos.append(ratioSLO(
            name: "availability", objective: "passes completed without error, dead letter or timeout ≥ \(settings.availabilityTarget) over \(window)",
            target: settings.availabilityTarget, budget: availabilityBudget,
            events: { $0.passes + overdue }, bad: { $0.failed + overdue },
            actual: { t in
                let n = t.passes + overdue
                return n == 0 ? nil : Double(n - t.failed - overdue) / Double(n)
            }, meets: { $0 >= settings.availabilityTarget }, input: input))

        // Latency and HRM p95: the p95 of the window's merged histogram; the budget is the 5%
        // of events allowed over the threshold.
        func p95SLO(_ name: String, _ what: String, _ histogram: LogHistogram, target: Double,
                    events: @escaping (RollupTotals) -> Int, bad: @escaping (RollupTotals) -> Int) -> SLOStatus {
            let p95 = histogram.quantile(0.95).map { $0 / 1000 }
            return ratioSLO(name: name, objective: "p95 \(what) ≤ \(format(target)) ms over \(window)", target: target, budget: 0.05,
                            events: events, bad: bad, actual: { _ in p95 }, meets: { $0 <= target }, input: input)
        }
        slos.append(p95SLO("latency_p95", "pass latency", input.histograms.latency, target: settings.p95LatencyMs,
                           events: { $0.timed }, bad: { $0.overLatencySLO }))
        slos.append(p95SLO("hrm_evaluation_p95", "HRM evaluation", input.histograms.hrm, target: settings.hrmP95Ms,
                           events: { $0.hrmTimed }, bad: { $0.hrmOverSLO }))

        // Ethics drift has no budget: any drift is a violation, and it always has data.
        let drifted = input.ethicsDrift
        slos.append(SLOStatus(
            name: "ethics_drift", objective: "Graveyard rule file matches its pinned SHA-256 (drift = 0)",
            target: 0, actual: drifted ? 1 : 0, state: drifted ? .violated : .ok,
            budgetRemaining: drifted ? 0 : 1, burnRates: [:], events: 1, badEvents: drifted ? 1 : 0))

        for s in slos where s.state == .violated {
            switch s.name {
            case "ethics_drift": violations.append("ethics_drift: \(input.driftProblem ?? "the Graveyard drifted"); HRM denies every proposal")
            case "availability": violations.append("availability: \(format(s.actual ?? 0, digits: 4)) < target \(s.target) over \(window) (\(s.badEvents) of \(s.events) passes failed)")
            default: violations.append("\(s.name): \(format(s.actual ?? 0)) ms > target \(format(s.target)) ms over \(window)")
            }
        }
        for s in slos {
            for (label, pair) in [("fast burn", BurnWindow.fastBurn), ("slow burn", BurnWindow.slowBurn)] {
                if let a = s.burnRates[pair.short] ?? nil, let b = s.burnRates[pair.long] ?? nil, a > pair.factor, b > pair.factor {
                    violations.append("\(s.name): \(label): error budget burning \(format(a))× over \(pair.short.rawValue) and \(format(b))× over \(pair.long.rawValue) (threshold \(pair.factor)×)")
                }
            }
        }
        return SLOReport(generatedNs: input.nowNs, windowSeconds: settings.windowSeconds, slos: slos, violations: violations,
                         inFlightOverdue: input.inFlightOverdue, notes: notes)
    }

    private func ratioSLO(name: String, objective: String, target: Double, budget: Double,
                          events: (RollupTotals) -> Int, bad: (RollupTotals) -> Int,
                          actual: (RollupTotals) -> Double?, meets: (Double) -> Bool, input: SLOInputs) -> SLOStatus {
        let n = events(input.window)
        let value = n == 0 ? nil : actual(input.window)
        let badN = bad(input.window)
        var burns: [BurnWindow: Double?] = [:]
        for w in BurnWindow.allCases {
            let t = input.burn[w] ?? RollupTotals()
            let e = events(t)
            burns[w] = e == 0 ? nil : (Double(bad(t)) / Double(e)) / budget
        }
        let state: SLOStatus.State = value.map { meets($0) ? .ok : .violated } ?? .noData
        let remaining = n == 0 ? nil : 1 - (Double(badN) / Double(n)) / budget
        return SLOStatus(name: name, objective: objective, target: target, actual: value, state: state,
                         budgetRemaining: remaining, burnRates: burns, events: n, badEvents: badN)
    }
}

func format(_ v: Double, digits: Int = 2) -> String {
    let m = pow10(digits)
    let r = (v * m).rounded() / m
    return r == r.rounded() ? String(Int64(r)) : String(r)
}

private func pow10(_ n: Int) -> Double { (0..<n).reduce(1.0) { r, _ in r * 10 } }
