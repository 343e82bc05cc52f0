// What a canary run did, step by step, and its summary for people.

import ARKCore
import ARKProcess
import ARKState
import Foundation

/// What a canary run did, step by step and at its end; kept as JSON in `canary_runs.report`
/// and printed by `ark canary status`.
public struct CanaryReport: Sendable, Equatable {
    public struct Step: Sendable, Equatable {
        public var percent: Double
        public var startedNs: Int64
        public var endedNs: Int64?
        public var extensions: Int
        /// passed, inconclusive (held), tripped, or aborted.
        public var outcome: String?
    }

    public var release: String
    public var baselineRelease: String
    public var snapshot: String
    public var canaryPIDs: [ChildProcess] = []
    public var baselinePIDs: [ChildProcess] = []
    public var steps: [Step] = []
    public var checks = 0
    public var inconclusiveChecks = 0
    public var tripwire: Tripwire?
    public var tripwireDetail: String?
    public var tripwireNs: Int64?
    public var canaryStoppedNs: Int64?
    public var handedBack: [String: Int] = [:]
    public var schemaRestored: [String] = []
    public var releaseRestored: String?
    public var baselineHealthyNs: Int64?
    public var verification: String?
    public var promotedNs: Int64?
    public var outcome: String?

    /// Seconds from the tripwire to a baseline proven healthy by its synthetic loop.
    public var secondsToHealthyBaseline: Double? {
        guard let t = tripwireNs, let h = baselineHealthyNs else { return nil }
        return Double(h - t) / 1e9
    }
}

extension CanaryRunRecord {
    /// The run for people, with its report: status, steps, checks, tripwire and timings.
    public func summary(report: CanaryReport?) -> String {
        let run = self
        var lines = ["Canary \(run.runID): \(run.status.rawValue.uppercased())"]
        lines.append("  release      \(run.release)")
        lines.append("  baseline     \(run.baselineRelease)")
        // Once the run is over the route is closed (rolled back) or the release is the
        // baseline (promoted): the share in the record is the last one it ran at.
        switch run.status {
        case .rolledBack: lines.append("  share now    0% (was \(run.percent)%)")
        case .promoted: lines.append("  share now    100% (the baseline)")
        default: lines.append("  share now    \(run.percent)%")
        }
        guard let r = report else { return lines.joined(separator: "\n") }
        lines.append("  snapshot     \(r.snapshot)")
        for (i, s) in r.steps.enumerated() {
            let ext = s.extensions > 0 ? ", extended \(s.extensions)×" : ""
            lines.append("  step \(i + 1)       \(s.percent)%: \(s.outcome ?? "in progress")\(ext)")
        }
        lines.append("  checks       \(r.checks) (\(r.inconclusiveChecks) inconclusive)")
        if let t = r.tripwire {
            lines.append("  tripwire     \(t.rawValue): \(r.tripwireDetail ?? "")")
            let handed = r.handedBack.values.reduce(0, +)
            lines.append("  handed back  \(handed) unfinished canary entries to the baseline")
            if !r.schemaRestored.isEmpty { lines.append("  schema       restored from the snapshot: \(r.schemaRestored.joined(separator: "; "))") }
            if let v = r.verification { lines.append("  verification \(v)") }
            if let s = r.secondsToHealthyBaseline { lines.append(String(format: "  recovery     %.1f s from tripwire to a baseline proven healthy", s)) }
        }
        if r.promotedNs != nil { lines.append("  promoted     the release is current; the old one is previous") }
        if let o = r.outcome { lines.append("  outcome      \(o)") }
        return lines.joined(separator: "\n")
    }
}
