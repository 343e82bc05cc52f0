// `ark bench`: the pipeline benchmark, and `ark bench slos`.

import ARKBench
import ARKCore
import ARKMonitoring
import ARKProcess
import ARKSLO
import ARKState
import ArgumentParser
import Foundation
import Graveyard

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: the whole pipeline (the default), or the SLO computation.",
        subcommands: [PipelineBenchCommand.self, SLOBench.self],
        defaultSubcommand: PipelineBenchCommand.self)
}

/// `ark bench [--rate N|max] [--duration S] [--instances K] [--json FILE]`.
struct PipelineBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Runs the five stages as separate processes over a private Redis and measures them end to end.",
        discussion: """
            Starts a private redis-server (unless --redis-url), K processes of each stage with a
            store of their own in a temp dir, sends signals (every 20th breaks a Graveyard rule)
            at --rate per second or as fast as the pipeline takes them (max, with at most 50,000
            unrecorded), for --duration seconds, drains, and prints: throughput, p50/p95/p99/max
            end-to-end latency (producer XADD to Aletheia's record), signals lost, violations
            denied, and CPU µs per signal and RSS of each process and of redis-server. Exits 1
            when a signal was lost or a violation not denied.
            Examples:
              ark bench --rate max --duration 10
              ark bench --rate 1000 --duration 30 --json /tmp/bench.json
              ark bench --rate max --instances 2
            """)

    @Option(help: "Signals per second, or max.") var rate = "max"
    @Option(help: "Seconds of sending.") var duration = 10.0
    @Option(help: "Processes of each stage.") var instances = 1
    @Option(help: "Write the result as JSON to this file.") var json: String?
    @Option(help: "Use this (empty) Redis instead of a private one; a Redis Cluster's seed nodes need --shards.") var redisURL: String?
    @Option(help: "ARK_SHARDS for the agents: signals are spread over 4 accounts per shard (default: the single untagged shard).") var shards: Int?
    @Option(help: "ARK_BATCH_SIZE for the agents.") var batchSize: Int?
    @Option(help: "The Graveyard rule directory.") var graveyard = "graveyard"
    @Flag(help: "Keep the work directory (logs, store).") var keep = false

    func validate() throws {
        guard rate == "max" || (Int(rate).map { $0 > 0 } ?? false) else { throw ValidationError("--rate must be a positive whole number or max, got '\(rate)'") }
        guard duration > 0, duration <= 86_400 else { throw ValidationError("--duration must be in (0, 86400] seconds") }
        guard (1...16).contains(instances) else { throw ValidationError("--instances must be 1...16") }
        if let shards, !(1...64).contains(shards) { throw ValidationError("--shards must be 1...64") }
        guard Graveyard.check(directory: graveyard).isIntact else {
            throw ValidationError("--graveyard \(graveyard): \(Graveyard.check(directory: graveyard).problem ?? "unreadable"). Fix: run from the repository root or name the rule directory")
        }
    }

    func run() throws {
        var plan = PipelineBenchPlan(rate: Int(rate), durationSeconds: duration, instances: instances,
                                     arkExecutable: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0],
                                     graveyardDir: URL(fileURLWithPath: graveyard).standardizedFileURL.path, redisURL: redisURL)
        plan.keepWorkDirectory = keep
        plan.shards = shards
        if let batchSize { plan.agentEnvironment["ARK_BATCH_SIZE"] = String(batchSize) }
        let bench = try PipelineBench(plan: plan)
        print("ARK pipeline benchmark: rate \(rate), \(duration) s, \(instances) process\(instances == 1 ? "" : "es") per stage, \(redisURL ?? "a private redis-server")\(keep ? ", work directory \(bench.workDirectory)" : "")")
        print("Agents run as \(ChildProcess.leanAgentBinary(besideArk: plan.arkExecutable) ?? plan.arkExecutable + " agent") STAGE")
        let r = try bench.run { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        func ms(_ key: String) -> String { r.latencyMs[key].map { String(format: "%.2f", $0) } ?? "-" }
        print(String(format: "Throughput   %.0f signals/s (%d recorded of %d sent, first send to last record %.2f s)", r.signalsPerSecond, r.recorded, r.sent, r.seconds))
        print("Lost         \(r.lost)\(r.lost == 0 ? "" : "  ✗")")
        print("Violations   \(r.violationsInjected) injected, \(r.violationsDenied) denied\(r.violationsDenied == r.violationsInjected ? "" : "  ✗")")
        print("Denials      \(r.limitDenials) for a portfolio limit, \(r.falseDenials) false\(r.falseDenials == 0 ? "" : "  ✗")")
        print("Limits       " + (r.limitBreaches.isEmpty ? "every portfolio limit holds on the filled book" : "BREACHED: " + r.limitBreaches.joined(separator: "; ") + "  ✗"))
        print("Latency ms   p50 \(ms("p50"))  p95 \(ms("p95"))  p99 \(ms("p99"))  max \(ms("max"))")
        print("Verdicts     " + r.verdicts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print("PROCESS       CPU s   µs/signal   RSS MB   of it anon MB   peak MB   growth since warm MB")
        for p in r.processes {
            print(p.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                  + String(format: " %6.2f   %9.1f   %6.1f   %13.1f   %7.1f   %+6.1f", p.cpuSeconds, p.cpuMicrosPerSignal, Double(p.rssKB) / 1024,
                           Double(p.anonKB) / 1024, Double(p.peakRSSKB) / 1024, Double(p.rssKB - p.rssWarmKB) / 1024))
        }
        if let json {
            try JSONDocument.data(r.json, .pretty).write(to: URL(fileURLWithPath: json))
            print("Result written to \(json)")
        }
        if r.lost > 0 || r.violationsDenied != r.violationsInjected || r.falseDenials > 0 || !r.limitBreaches.isEmpty { throw ExitCode(1) }
    }
}

/// Fills a state store with passes spread over the last hours, then times the SLO report
/// the way `/slos` computes it.
struct SLOBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slos",
        abstract: "Time /slos's computation over a state store holding --passes passes.",
        discussion: """
            Writes the passes through the real write path (audit tree, rollups) into a new store
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
        let started = monotonicNanoseconds()
        try store.writeSyntheticHistory(passes: passes, hours: hours, endingAtNs: wallClockNanoseconds()) { written in
            if written % 100_000 == 0 { print("  written \(written) passes") }
        }
        print("Wrote \(passes) passes in \(String(format: "%.1f", Double(monotonicNanoseconds() - started) / 1e9)) s; store \(db)")
        let engine = SLOEngine(settings: SLOSettings())
        var times: [Double] = []
        var last: SLOReport?
        for _ in 0..<runs {
            let t = monotonicNanoseconds()
            last = try engine.report(from: store, nowNs: wallClockNanoseconds(), inFlightOverdue: 0, ethicsDrift: false, driftProblem: nil)
            times.append(Double(monotonicNanoseconds() - t) / 1e6)
        }
        times.sort()
        print(String(format: "SLO report over %d passes: median %.2f ms, worst %.2f ms (%d runs; /slos target ≤ 50 ms)", passes, times[times.count / 2], times.last!, runs))
        if let a = last?.slo("availability") { print("  availability \(a.actual.map { String($0) } ?? "no data") over \(a.events) passes in the 5 min window") }
    }
}
