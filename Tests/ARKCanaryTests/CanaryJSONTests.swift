import ARKCore
import ARKProcess
import ARKState
import Foundation
import Testing

@testable import ARKCanary

/// The canary's plan, report and check figures as the store keeps them. The texts below were
/// written by the release before (Swift's synthesized Codable, `JSONEncoder` with sorted
/// keys): runs recorded then must read the same, and rows written now must hold the same
/// JSON (the texts differ only in key order, which JSONSerialization sorts without regard to
/// case, and in `/`, which the encoder wrote as `\/`).
@Suite struct CanaryJSONTests {
    static let fullReport = #"{"baselineHealthyNs":1795000712000000000,"baselinePIDs":[{"name":"Kyle","pid":100},{"name":"HRM","pid":101}],"baselineRelease":"\/srv\/ark\/releases\/r1","canaryPIDs":[{"name":"Joey","pid":4242}],"canaryStoppedNs":1795000700100000000,"checks":21,"handedBack":{"ark:joey":0,"ark:kenny":3},"inconclusiveChecks":3,"outcome":"rolled_back","release":"\/srv\/ark\/releases\/r2","releaseRestored":"\/srv\/ark\/releases\/r1","schemaRestored":["orders"],"snapshot":"\/srv\/ark\/backups\/ark_state_backup_20261202T100000Z.db","steps":[{"endedNs":1795000600000000000,"extensions":1,"outcome":"passed","percent":10,"startedNs":1795000000000000000},{"extensions":0,"percent":25.5,"startedNs":1795000600000000001}],"tripwire":"denial_spike","tripwireDetail":"canary denied 20.0% against 2.5%","tripwireNs":1795000700000000000,"verification":"PASSED 50\/50"}"#
    static let bareReport = #"{"baselinePIDs":[],"baselineRelease":"b","canaryPIDs":[],"checks":0,"handedBack":{},"inconclusiveChecks":0,"release":"a","schemaRestored":[],"snapshot":"c","steps":[]}"#
    static let plan = #"{"checkSeconds":30,"latencyBreachSeconds":180,"latencySLOMs":400,"maxExtensions":2,"minLatencySamples":10,"minSamples":30,"sigmas":3,"stepSeconds":120.5,"steps":[10,25,50,100],"verifyRate":2.5,"verifySeconds":10}"#
    static let check = #"{"canaryWindowP95Ms":512.25,"canaryWindowSamples":40,"denials":{"baselineHits":25,"baselineN":900,"canaryHits":3,"canaryN":100,"sigmas":0.12345678901},"detail":"p95 512 ms over 400 ms since 61 s","failedBatches":{"baselineHits":2,"baselineN":20,"canaryHits":1,"canaryN":10,"sigmas":-0.5},"failedPasses":{"baselineHits":0,"baselineN":900,"canaryHits":0,"canaryN":100},"latencyBreachSinceNs":1795000640000000000,"stepConclusive":false,"tripwire":"latency_breach","verdict":"tripwire"}"#

    /// The same JSON: same keys, same values, nothing more.
    static func same(_ object: [String: Any], _ old: String) throws -> Bool {
        let written = try #require(JSONDocument.object(try JSONDocument.text(object)))
        return written as NSDictionary == (try #require(JSONDocument.object(old))) as NSDictionary
    }

    @Test func aReportWrittenBeforeReadsWithEveryFieldAndIsWrittenAsItWas() throws {
        let r = try CanaryReport(text: Self.fullReport)
        #expect(r.release == "/srv/ark/releases/r2" && r.baselineRelease == "/srv/ark/releases/r1")
        #expect(r.snapshot == "/srv/ark/backups/ark_state_backup_20261202T100000Z.db")
        #expect(r.canaryPIDs == [ChildProcess(name: "Joey", pid: 4242)])
        #expect(r.baselinePIDs == [ChildProcess(name: "Kyle", pid: 100), ChildProcess(name: "HRM", pid: 101)])
        #expect(r.steps == [.init(percent: 10, startedNs: 1_795_000_000_000_000_000, endedNs: 1_795_000_600_000_000_000, extensions: 1, outcome: "passed"),
                            .init(percent: 25.5, startedNs: 1_795_000_600_000_000_001, endedNs: nil, extensions: 0, outcome: nil)])
        #expect(r.checks == 21 && r.inconclusiveChecks == 3)
        #expect(r.tripwire == .denialSpike && r.tripwireDetail == "canary denied 20.0% against 2.5%" && r.tripwireNs == 1_795_000_700_000_000_000)
        #expect(r.canaryStoppedNs == 1_795_000_700_100_000_000 && r.baselineHealthyNs == 1_795_000_712_000_000_000)
        #expect(r.handedBack == ["ark:kenny": 3, "ark:joey": 0] && r.schemaRestored == ["orders"])
        #expect(r.releaseRestored == "/srv/ark/releases/r1" && r.verification == "PASSED 50/50" && r.outcome == "rolled_back" && r.promotedNs == nil)
        #expect(try Self.same(r.json, Self.fullReport))

        let bare = try CanaryReport(text: Self.bareReport)
        #expect(bare == CanaryReport(release: "a", baselineRelease: "b", snapshot: "c"))
        #expect(try Self.same(bare.json, Self.bareReport))
    }

    @Test func aPlanReadsAsWrittenAndFieldsItLacksKeepTheirDefaults() throws {
        let p = try CanaryPlan(json: JSONFields(text: Self.plan, "canary plan"))
        var expected = CanaryPlan()
        expected.steps = [10, 25, 50, 100]
        expected.stepSeconds = 120.5
        expected.verifyRate = 2.5
        #expect(p == expected)
        #expect(try Self.same(p.json, Self.plan))
        // A plan of a release that had fewer settings: the rest are the defaults.
        var short = CanaryPlan()
        short.steps = [50]
        #expect(try CanaryPlan(json: JSONFields(text: #"{"steps":[50]}"#, "canary plan")) == short)
    }

    @Test func checkFiguresAreWrittenAsTheyWere() throws {
        var denials = RateComparison(canaryHits: 3, canaryN: 100, baselineHits: 25, baselineN: 900, minSamples: 1)
        denials.sigmas = 0.12345678901
        let failedPasses = RateComparison(canaryHits: 0, canaryN: 100, baselineHits: 0, baselineN: 900, minSamples: 1000)
        var failedBatches = RateComparison(canaryHits: 1, canaryN: 10, baselineHits: 2, baselineN: 20, minSamples: 1)
        failedBatches.sigmas = -0.5
        let c = CheckResult(verdict: .tripwire, tripwire: .latencyBreach, detail: "p95 512 ms over 400 ms since 61 s", denials: denials,
                            failedPasses: failedPasses, failedBatches: failedBatches, canaryWindowP95Ms: 512.25, canaryWindowSamples: 40,
                            latencyBreachSinceNs: 1_795_000_640_000_000_000, stepConclusive: false)
        #expect(try Self.same(c.json, Self.check))
    }

    @Test func aDamagedReportIsRefusedNamingTheField() {
        func problem(_ text: String) -> String {
            do { _ = try CanaryReport(text: text) } catch { return error.description }
            return "read"
        }
        #expect(problem("{}") == "canary report.release is missing")
        #expect(problem(#"{"release":"a","baselineRelease":"b","snapshot":"c","tripwire":"meteor"}"#)
            == "canary report.tripwire: expected one of denial_spike, quarantine, latency_breach, errors, process_exit, operator_abort, controller_stopped, found string")
        #expect(problem(#"{"release":"a","baselineRelease":"b","snapshot":"c","canaryPIDs":[{"name":"Joey","pid":"42"}]}"#)
            == "canary report.canaryPIDs[0].pid: expected 32-bit integer, found string")
        #expect(problem(#"{"release":"a","baselineRelease":"b","snapshot":"c","steps":[{"percent":10}]}"#) == "canary report.steps[0].startedNs is missing")
        #expect(problem("not json") == "canary report is not JSON")
    }

    /// Every prefix and many single-byte changes of a real report: each reads or is refused,
    /// none crashes (what a torn or altered row in the store would give).
    @Test func damagedReportsNeverCrash() {
        let bytes = Array(Self.fullReport.utf8)
        var read = 0
        for n in 0...bytes.count where (try? CanaryReport(text: String(decoding: bytes.prefix(n), as: UTF8.self))) != nil { read += 1 }
        #expect(read == 1)
        var random = SplitMix64(seed: 28)
        let alphabet = Array(#"{}[]":,0123456789.-eE truefalsn\"#.utf8)
        for _ in 0..<5000 {
            var b = bytes
            for _ in 0...Int.random(in: 0...3, using: &random) {
                b[Int.random(in: 0..<b.count, using: &random)] = alphabet.randomElement(using: &random)!
            }
            _ = try? CanaryReport(text: String(decoding: b, as: UTF8.self))
        }
    }
}
