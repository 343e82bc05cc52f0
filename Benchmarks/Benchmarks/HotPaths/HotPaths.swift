import ARKBus
import ARKCore
import ARKSLO
import ARKState
import ARKStoreWriter
import Benchmark
import Graveyard

// Tolerances for `./check.sh` against the p90 figures saved in Thresholds/. Time on this
// 2-core machine swings by a third between runs (its p90 more than its median), so time may
// grow by half before it counts as a regression: that catches a lost optimisation, not a
// small drift. Allocation counts are exact and catch the small ones: 5 % more is a regression.
// (Throughput is the same figure as time, and noisier at p90: not checked.)
func configuration(seconds: Int, iterations: Int = 1_000_000, timeTolerance: Double = 50) -> Benchmark.Configuration {
    let tolerances: [BenchmarkMetric: BenchmarkThresholds] = [
        .wallClock: .init(relative: [.p90: timeTolerance]),
        .mallocCountTotal: .init(relative: [.p90: 5]),
    ]
    return .init(metrics: [.wallClock, .mallocCountTotal], warmupIterations: 10, maxDuration: .seconds(seconds),
                 maxIterations: iterations, thresholds: tolerances)
}

// Names have no spaces: this version of the tool saves thresholds under names with spaces
// replaced, then looks them up under the original name.
let benchmarks: @Sendable () -> Void = {
    // MARK: codec, validation, rules: one signal each
    Benchmark("CodecDecodeEvent", configuration: configuration(seconds: 2)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? EventCodec.decode(kennyEvent)) }
    }

    let event = try! EventCodec.decode(kennyEvent)
    Benchmark("CodecEncodeEvent", configuration: configuration(seconds: 2)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(EventCodec.encode(event)) }
    }

    // What Kenny does with an entry since the splice (issue 26), where it decoded the whole
    // event and encoded it again (the two benchmarks above): read the proposal and HRM's
    // verdict, splice the execution and the hop into the bytes it received.
    var hrmOutput = event
    hrmOutput.execution = nil
    let kennyHop = hrmOutput.hops.removeLast()
    let kennyInput = EventCodec.encode(hrmOutput)
    let execution = EventCodec.encode(event.execution!)
    Benchmark("KennySpliceForward", configuration: configuration(seconds: 2)) { benchmark in
        for _ in benchmark.scaledIterations {
            var layout = EventLayout()
            blackHole(try? EventCodec.decode(kennyInput, keeping: .decision, layout: &layout))
            blackHole(layout.splice(kennyInput, setting: [(.execution, execution)], appending: kennyHop))
        }
    }
    precondition({
        var layout = EventLayout()
        _ = try? EventCodec.decode(kennyInput, keeping: .decision, layout: &layout)
        return layout.splice(kennyInput, setting: [(.execution, execution)], appending: kennyHop) == EventCodec.encode(event)
    }(), "the splice must give Kenny's canonical output")

    Benchmark("KyleValidateSignal", configuration: configuration(seconds: 2)) { benchmark in
        let validator = SignalValidator()
        for _ in benchmark.scaledIterations {
            blackHole(validator.validate(producerSignal, fallbackTraceID: "ark-1-0", nowNs: 1_795_456_164_151_732_058))
        }
    }

    let rules = try! graveyardRules()
    let book = PortfolioSnapshot(equity: 100_000, exposure: ["AAPL": 0.02])
    Benchmark("HRMRuleEvaluation", configuration: configuration(seconds: 2)) { benchmark in
        let proposal = Proposal(event)
        for _ in benchmark.scaledIterations {
            var approvals = BatchApprovals()
            blackHole(rules.evaluate(proposal, book: book, batch: &approvals))
        }
    }

    // MARK: Redis: one stage's work on a batch of 100

    // Its time is two processes' (this one and redis-server) and its p90 is when redis-server
    // gets a core: 2.0 to 3.9 ms between runs of the same code. Time is checked only against a
    // tripling here; the exact allocation count checks the client side.
    Benchmark("BusRoundTrip100", configuration: configuration(seconds: 4, iterations: 5_000, timeTolerance: 200)) { (benchmark: Benchmark, fixture: BusFixture) in
        // One sample per run of the closure: the producer's XADDs are outside the measurement.
        let produce = (0..<100).map { _ in fixture.bus.addCommand(stream: BusFixture.input, payload: kennyEvent) }
        _ = try! fixture.producer.pipeline(produce)
        benchmark.startMeasurement()
        // What a stage does: read the batch, then forward and acknowledge it in one MULTI/EXEC.
        let batch = try! fixture.bus.read([BusFixture.input], count: 100, blockMs: nil)
        let outputs = batch.map { (stream: BusFixture.output, payload: $0.payload!) }
        try! fixture.bus.commit(outputs: outputs, deadLetters: [], acks: batch)
        benchmark.stopMeasurement()
        precondition(batch.count == 100, "read \(batch.count) of 100")
    } setup: {
        try FixtureCleanup.shared.keep(BusFixture())
    } teardown: {
        FixtureCleanup.shared.run()
    }

    // MARK: the state store

    Benchmark("AletheiaWrite500Passes", configuration: configuration(seconds: 5, iterations: 2_000)) { (benchmark: Benchmark, fixture: StoreFixture) in
        let passes = fixture.passes(500)
        benchmark.startMeasurement()
        blackHole(try! fixture.writer.record(passes: passes))
        benchmark.stopMeasurement()
    } setup: {
        try FixtureCleanup.shared.keep(StoreFixture(prefix: "ark-benchmarks-store", aletheia: true))
    } teardown: {
        FixtureCleanup.shared.run()
    }

    Benchmark("SLOReport1MPasses", configuration: configuration(seconds: 5, iterations: 500)) { (benchmark: Benchmark, fixture: StoreFixture) in
        let engine = SLOEngine(settings: SLOSettings())
        for _ in benchmark.scaledIterations {
            blackHole(try! engine.report(from: fixture.store, nowNs: wallClockNanoseconds(), inFlightOverdue: 0, ethicsDrift: false, driftProblem: nil))
        }
    } setup: {
        let fixture = try FixtureCleanup.shared.keep(StoreFixture(prefix: "ark-benchmarks-slo"))
        try fixture.store.writeSyntheticHistory(passes: 1_000_000, hours: 6, endingAtNs: wallClockNanoseconds())
        return fixture
    } teardown: {
        FixtureCleanup.shared.run()
    }
}
