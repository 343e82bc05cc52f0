import ARKCore
import ARKMonitoring
import ARKState
import ArgumentParser
import Foundation

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks of single components (the pipeline ones are Benchmarks/*.sh).",
        subcommands: [SLOBench.self])
}

/// Fills a state store with passes spread over the last hours, then times the SLO report
/// the way `/slos` computes it.
struct SLOBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slos",
        abstract: "Time /slos's computation over a state store holding --passes passes.",
        discussion: """
            Writes the passes through the real write path (hash chain, rollups) into a new store
            at --db, spread evenly over the last --hours, then computes the SLO report --runs times
            and prints the median and worst time. Redis is not asked (in-flight count 0).
            Examples:
              ark bench slos --passes 1000000 --db /tmp/slo-bench.db
            """)

    @Option(help: "Passes to write.") var passes = 1_000_000
    @Option(help: "Hours the passes are spread over (up to the 6 h burn window).") var hours = 6.0
    @Option(help: "Path of the new state store.") var db = "/tmp/ark-slo-bench.db"
    @Option(help: "Timed SLO computations.") var runs = 50

    func run() async throws {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
        let store = try StateStore(path: db)
        let now = wallClockNanoseconds()
        let span = Int64(hours * 3600e9)
        let started = monotonicNanoseconds()
        var batch: [PassRecord] = []
        batch.reserveCapacity(1000)
        for i in 0..<passes {
            let done = now - span + span / Int64(passes) * Int64(i)
            let verdict: Verdict = i % 200 == 0 ? .deadlettered : (i % 20 == 0 ? .denied : .approved)
            var p = PassRecord(traceID: "bench-\(i)", signalID: "b\(i)", symbol: "AAPL", source: "bench", verdict: verdict, reasons: [],
                               policyHash: "h", complianceScore: 1, t0Ns: done - Int64(1_000_000 + (i % 97) * 50_000), doneNs: done,
                               hrmEvalUs: 20 + Double(i % 13), continuityOK: true, injectedViolation: nil, orderID: nil,
                               event: Array("{\"trace_id\":\"bench-\(i)\",\"symbol\":\"AAPL\",\"price\":101.5}".utf8))
            p.stageTimes = [StageTime(stage: .kyle, micros: 20), StageTime(stage: .joey, micros: 15), StageTime(stage: .hrm, micros: 30), StageTime(stage: .kenny, micros: 40)]
            batch.append(p)
            if batch.count == 1000 || i == passes - 1 {
                try store.record(passes: batch)
                batch.removeAll(keepingCapacity: true)
            }
            if i % 100_000 == 99_999 { print("  written \(i + 1) passes") }
        }
        print("Wrote \(passes) passes in \(String(format: "%.1f", Double(monotonicNanoseconds() - started) / 1e9)) s; store \(db)")
        let engine = SLOEngine(settings: SLOSettings())
        var times: [Double] = []
        var last: SLOReport?
        for _ in 0..<runs {
            let t = monotonicNanoseconds()
            let nowNs = wallClockNanoseconds()
            let starts = engine.windowStarts(nowSeconds: nowNs / 1_000_000_000)
            let totals = try store.rollupTotals(since: [starts.window] + BurnWindow.allCases.map { starts.burn[$0]! })
            let histograms = try store.rollupHistograms(since: starts.window, stages: false)
            last = engine.evaluate(SLOInputs(window: totals[0], burn: Dictionary(uniqueKeysWithValues: zip(BurnWindow.allCases, totals.dropFirst())),
                                             histograms: histograms, inFlightOverdue: 0, ethicsDrift: false, driftProblem: nil, nowNs: nowNs))
            times.append(Double(monotonicNanoseconds() - t) / 1e6)
        }
        times.sort()
        print(String(format: "SLO report over %d passes: median %.2f ms, worst %.2f ms (%d runs; /slos target ≤ 50 ms)", passes, times[times.count / 2], times.last!, runs))
        if let a = last?.slo("availability") { print("  availability \(a.actual.map { String($0) } ?? "no data") over \(a.events) passes in the 5 min window") }
    }
}
