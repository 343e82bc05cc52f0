import ARKCore
import ARKState
import ARKStoreWriter
import Foundation
import Testing

@testable import ARKCanary

@Suite struct CanaryJudgeTests {
    var plan: CanaryPlan {
        var p = CanaryPlan()
        p.minSamples = 30
        p.minLatencySamples = 10
        p.latencySLOMs = 400
        p.latencyBreachSeconds = 60
        return p
    }

    func input(canary: TrackFigures, baseline: TrackFigures, window: TrackFigures? = nil, nowS: Int64 = 100, windowStartS: Int64 = 70,
               canaryBatches: (Int, Int) = (0, 100), baselineBatches: (Int, Int) = (0, 100), exited: [String] = [],
               quarantines: [WatchdogEventRecord] = []) -> CheckInput {
        CheckInput(canaryStep: canary, baselineStep: baseline, canaryWindow: window ?? canary, canaryBatches: canaryBatches, baselineBatches: baselineBatches,
                   quarantines: quarantines, exited: exited, nowNs: nowS * 1_000_000_000, windowStartNs: windowStartS * 1_000_000_000)
    }

    func figures(decided: Int, denied: Int, failed: Int = 0, p95: Double = 20) -> TrackFigures {
        TrackFigures(passes: decided + failed, decided: decided, denied: denied, failed: failed, latencyP95Ms: p95, latencySamples: decided)
    }

    @Test func sameDenialRateAsTheBaselinePasses() {
        var judge = CanaryJudge(plan: plan)
        let r = judge.check(input(canary: figures(decided: 100, denied: 3), baseline: figures(decided: 900, denied: 25)))
        #expect(r.verdict == .pass)
        #expect(r.stepConclusive)
        #expect(abs(r.denials.sigmas ?? 99) < 1)
    }

    @Test func aDenialSpikeTrips() {
        var judge = CanaryJudge(plan: plan)
        let r = judge.check(input(canary: figures(decided: 60, denied: 12), baseline: figures(decided: 600, denied: 15)))
        #expect(r.verdict == .tripwire)
        #expect(r.tripwire == .denialSpike)
        #expect((r.denials.sigmas ?? 0) > 3)
        #expect(r.detail.contains("12 of 60"))
    }

    @Test func aBaselineThatNeverDeniedDoesNotMakeOneCanaryDenialATripwire() {
        var judge = CanaryJudge(plan: plan)
        let r = judge.check(input(canary: figures(decided: 40, denied: 1), baseline: figures(decided: 400, denied: 0)))
        #expect(r.verdict == .pass, "\(r.detail)")
    }

    @Test func tooFewSamplesIsInconclusiveNeverAPassOrATrip() {
        var judge = CanaryJudge(plan: plan)
        // Every canary decision a denial, but only five of them.
        let r = judge.check(input(canary: figures(decided: 5, denied: 5), baseline: figures(decided: 500, denied: 10)))
        #expect(r.verdict == .inconclusive)
        #expect(r.tripwire == nil)
        #expect(!r.stepConclusive)
        #expect(r.detail.contains("canary 5, baseline 500, need 30 each"))
    }

    @Test func aStepWhoseP95IsOverTheSLOIsNotPassedEvenBeforeABreachTrips() {
        var judge = CanaryJudge(plan: plan)
        let r = judge.check(input(canary: figures(decided: 50, denied: 1, p95: 700), baseline: figures(decided: 500, denied: 10)))
        #expect(r.verdict == .pass)
        #expect(!r.stepConclusive)
    }

    @Test func latencyTripsOnlyAfterTheBreachTime() {
        var judge = CanaryJudge(plan: plan)
        let slow = figures(decided: 50, denied: 1, p95: 900)
        let base = figures(decided: 500, denied: 10)
        #expect(judge.check(input(canary: slow, baseline: base, nowS: 130, windowStartS: 100)).verdict == .pass)
        // A window without enough passes neither ends nor extends the breach.
        let thin = TrackFigures(passes: 3, decided: 3, denied: 0, latencyP95Ms: 10, latencySamples: 3)
        #expect(judge.check(input(canary: slow, baseline: base, window: thin, nowS: 140, windowStartS: 130)).latencyBreachSinceNs == 100_000_000_000)
        let r = judge.check(input(canary: slow, baseline: base, nowS: 160, windowStartS: 140))
        #expect(r.verdict == .tripwire)
        #expect(r.tripwire == .latencyBreach)
        // Back under the SLO: the breach ends.
        var recovered = CanaryJudge(plan: plan)
        _ = recovered.check(input(canary: slow, baseline: base, nowS: 130, windowStartS: 100))
        #expect(recovered.check(input(canary: figures(decided: 50, denied: 1), baseline: base, nowS: 150, windowStartS: 130)).latencyBreachSinceNs == nil)
    }

    @Test func failuresQuarantinesAndExitsTrip() {
        var judge = CanaryJudge(plan: plan)
        let ok = figures(decided: 100, denied: 2)
        #expect(judge.check(input(canary: figures(decided: 100, denied: 2, failed: 10), baseline: figures(decided: 1000, denied: 20))).tripwire == .errors)
        #expect(judge.check(input(canary: ok, baseline: ok, canaryBatches: (50, 100), baselineBatches: (0, 400))).tripwire == .errors)
        let q = WatchdogEventRecord(instance: "Kenny-h-1", stage: "Kenny", action: "quarantine", reason: "latency", figures: "{}", by: "watchdog", tsNs: 1)
        #expect(judge.check(input(canary: ok, baseline: ok, quarantines: [q])).tripwire == .quarantine)
        #expect(judge.check(input(canary: ok, baseline: ok, exited: ["canary Kenny pid 9: exit 70"])).tripwire == .processExit)
    }

    @Test func planValidationNamesTheOption() {
        var p = CanaryPlan()
        p.steps = [50, 25]
        #expect(throws: CanaryPlan.Invalid.self) { try p.validate() }
        p.steps = [10, 25, 50, 100]
        #expect(throws: Never.self) { try p.validate() }
        p.steps = [0]
        #expect((try? p.validate()) == nil)
    }
}

@Suite struct CanaryRouteTests {
    @Test func theSplitIsStableAndNearTheShare() {
        let route = CanaryRoute(percent: 10, version: 1, runID: "r")
        let ids = (0..<20_000).map { "syn-run-\($0)" }
        let chosen = ids.filter(route.routesToCanary)
        #expect(chosen.count > 1_700 && chosen.count < 2_300, "\(chosen.count) of 20000")
        // Same ids, same answer; a bigger share keeps every trace that was on the canary.
        #expect(ids.filter(route.routesToCanary) == chosen)
        let wider = CanaryRoute(percent: 25, version: 2, runID: "r")
        #expect(chosen.allSatisfy(wider.routesToCanary))
        #expect(!ids.contains(where: CanaryRoute.off.routesToCanary))
        #expect(ids.allSatisfy(CanaryRoute(percent: 100, version: 3, runID: "r").routesToCanary))
    }

    @Test func routeFieldsRoundTripAndBadValuesMeanNoCanary() {
        let r = CanaryRoute(percent: 12.5, version: 7, runID: "canary-x")
        #expect(CanaryRoute(fields: Dictionary(uniqueKeysWithValues: r.fields)) == r)
        #expect(CanaryRoute(fields: ["percent": "nan"]).percent == 0)
        #expect(CanaryRoute(fields: ["percent": "250"]).percent == 100)
    }

    @Test func aCanaryEventSaysSoOnTheWireAndABaselineOneIsUnchanged() throws {
        var e = Event(traceID: "t-1", id: "1", symbol: "AAPL", price: 10, volume: 1, ts: 1, source: "s", t0Ns: 5)
        let baseline = EventCodec.encode(e)
        #expect(!String(decoding: baseline, as: UTF8.self).contains("track"))
        e.track = .canary
        let canary = EventCodec.encode(e)
        #expect(String(decoding: canary, as: UTF8.self).contains("\"track\":\"canary\""))
        #expect(try EventCodec.decode(canary).track == .canary)
        #expect(try EventCodec.decode(baseline).track == .baseline)
        let bad = Array(String(decoding: canary, as: UTF8.self).replacingOccurrences(of: "\"canary\"", with: "\"blue\"").utf8)
        #expect(throws: EventDecodingError.self) { try EventCodec.decode(bad) }
    }

    @Test func streamsPerTrack() {
        #expect(Stage.kenny.inputStream == "ark:kenny")
        #expect(Stage.kenny.inputStream(on: .canary) == "ark:canary:kenny")
        #expect(Track(stream: "ark:canary:joey") == .canary)
        #expect(Track(stream: "ark:joey") == .baseline)
        #expect(Track(stream: "ark:{s3}:canary:joey") == .canary)
        #expect(Track(stream: "ark:{s3}:joey") == .baseline)
    }
}
