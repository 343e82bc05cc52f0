// The canary's plan, report and check figures as JSON, written and read back.

import ARKCore
import ARKProcess
import ARKState
import Foundation

// The canary's plan, report and check figures as the store keeps them (`canary_runs.plan`,
// `canary_runs.report`, `canary_checks.figures`). The keys are the properties' names, as
// Swift's synthesized Codable wrote them before, and an absent optional is left out, so runs
// recorded by earlier releases read the same and new rows look like old ones.

extension Tripwire: JSONFieldValue {}
extension CheckResult.Verdict: JSONFieldValue {}

/// Sets `object[key]` only when there is a value.
private func put(_ object: inout [String: Any], _ key: String, _ value: Any?) {
    if let value { object[key] = value }
}

extension CanaryPlan {
    public var json: [String: Any] {
        ["steps": steps, "stepSeconds": stepSeconds, "checkSeconds": checkSeconds, "minSamples": minSamples, "maxExtensions": maxExtensions,
         "sigmas": sigmas, "latencySLOMs": latencySLOMs, "latencyBreachSeconds": latencyBreachSeconds, "minLatencySamples": minLatencySamples,
         "verifySeconds": verifySeconds, "verifyRate": verifyRate]
    }

    /// A field left out keeps its default (plans of earlier releases lack later fields).
    public init(json f: JSONFields) throws(JSONFields.Mismatch) {
        self.init()
        steps = try f.optional("steps") ?? steps
        stepSeconds = try f.optional("stepSeconds") ?? stepSeconds
        checkSeconds = try f.optional("checkSeconds") ?? checkSeconds
        minSamples = try f.optional("minSamples") ?? minSamples
        maxExtensions = try f.optional("maxExtensions") ?? maxExtensions
        sigmas = try f.optional("sigmas") ?? sigmas
        latencySLOMs = try f.optional("latencySLOMs") ?? latencySLOMs
        latencyBreachSeconds = try f.optional("latencyBreachSeconds") ?? latencyBreachSeconds
        minLatencySamples = try f.optional("minLatencySamples") ?? minLatencySamples
        verifySeconds = try f.optional("verifySeconds") ?? verifySeconds
        verifyRate = try f.optional("verifyRate") ?? verifyRate
    }
}

extension ChildProcess {
    public var json: [String: Any] { ["name": name, "pid": pid] }

    public init(json f: JSONFields) throws(JSONFields.Mismatch) {
        self.init(name: try f.required("name"), pid: try f.required("pid"))
    }
}

extension CanaryReport.Step {
    public var json: [String: Any] {
        var o: [String: Any] = ["percent": percent, "startedNs": startedNs, "extensions": extensions]
        put(&o, "endedNs", endedNs)
        put(&o, "outcome", outcome)
        return o
    }

    public init(json f: JSONFields) throws(JSONFields.Mismatch) {
        self.init(percent: try f.required("percent"), startedNs: try f.required("startedNs"), endedNs: try f.optional("endedNs"),
                  extensions: try f.optional("extensions") ?? 0, outcome: try f.optional("outcome"))
    }
}

extension CanaryReport {
    public var json: [String: Any] {
        var o: [String: Any] = [
            "release": release, "baselineRelease": baselineRelease, "snapshot": snapshot,
            "canaryPIDs": canaryPIDs.map(\.json), "baselinePIDs": baselinePIDs.map(\.json), "steps": steps.map(\.json),
            "checks": checks, "inconclusiveChecks": inconclusiveChecks, "handedBack": handedBack, "schemaRestored": schemaRestored,
        ]
        put(&o, "tripwire", tripwire?.rawValue)
        put(&o, "tripwireDetail", tripwireDetail)
        put(&o, "tripwireNs", tripwireNs)
        put(&o, "canaryStoppedNs", canaryStoppedNs)
        put(&o, "releaseRestored", releaseRestored)
        put(&o, "baselineHealthyNs", baselineHealthyNs)
        put(&o, "verification", verification)
        put(&o, "promotedNs", promotedNs)
        put(&o, "outcome", outcome)
        return o
    }

    /// The report kept in `canary_runs.report`.
    public init(text: String) throws(JSONFields.Mismatch) {
        try self.init(json: JSONFields(text: text, "canary report"))
    }

    public init(json f: JSONFields) throws(JSONFields.Mismatch) {
        self.init(release: try f.required("release"), baselineRelease: try f.required("baselineRelease"), snapshot: try f.required("snapshot"))
        canaryPIDs = try (f.objects("canaryPIDs") ?? []).map { p throws(JSONFields.Mismatch) in try ChildProcess(json: p) }
        baselinePIDs = try (f.objects("baselinePIDs") ?? []).map { p throws(JSONFields.Mismatch) in try ChildProcess(json: p) }
        steps = try (f.objects("steps") ?? []).map { s throws(JSONFields.Mismatch) in try Step(json: s) }
        checks = try f.optional("checks") ?? 0
        inconclusiveChecks = try f.optional("inconclusiveChecks") ?? 0
        tripwire = try f.optional("tripwire")
        tripwireDetail = try f.optional("tripwireDetail")
        tripwireNs = try f.optional("tripwireNs")
        canaryStoppedNs = try f.optional("canaryStoppedNs")
        handedBack = try f.optional("handedBack") ?? [:]
        schemaRestored = try f.optional("schemaRestored") ?? []
        releaseRestored = try f.optional("releaseRestored")
        baselineHealthyNs = try f.optional("baselineHealthyNs")
        verification = try f.optional("verification")
        promotedNs = try f.optional("promotedNs")
        outcome = try f.optional("outcome")
    }
}

extension RateComparison {
    public var json: [String: Any] {
        var o: [String: Any] = ["canaryHits": canaryHits, "canaryN": canaryN, "baselineHits": baselineHits, "baselineN": baselineN]
        put(&o, "sigmas", sigmas)
        return o
    }
}

extension CheckResult {
    /// What `canary_checks.figures` holds.
    public var json: [String: Any] {
        var o: [String: Any] = [
            "verdict": verdict.rawValue, "detail": detail, "denials": denials.json, "failedPasses": failedPasses.json,
            "failedBatches": failedBatches.json, "canaryWindowSamples": canaryWindowSamples, "stepConclusive": stepConclusive,
        ]
        put(&o, "tripwire", tripwire?.rawValue)
        put(&o, "canaryWindowP95Ms", canaryWindowP95Ms)
        put(&o, "latencyBreachSinceNs", latencyBreachSinceNs)
        return o
    }
}
