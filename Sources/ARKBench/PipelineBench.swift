// `ark bench`: the whole pipeline run against a private Redis and measured.

import ARKBus
import ARKProcess
import ARKCore
import ARKState
import Graveyard
import ARKRisk
import Foundation

/// What `ark bench` runs: the five stages as separate processes (`instances` of each) over a
/// Redis of their own, signals sent at `rate` per second (nil: as fast as the pipeline takes
/// them, with at most `maxInFlight` unrecorded) for `durationSeconds`, then drained.
public struct PipelineBenchPlan: Sendable {
    public var rate: Int?
    public var durationSeconds: Double
    public var instances: Int
    public var arkExecutable: String
    public var graveyardDir: String
    /// nil: a private `redis-server` on a unix socket in the work directory.
    public var redisURL: String?
    /// ARK_SHARDS for the agents (nil: the untagged single shard); signals are spread over
    /// four accounts per shard. Required when `redisURL` names a cluster.
    public var shards: Int?
    /// Extra settings for the agents (`ARK_BATCH_SIZE`, …).
    public var agentEnvironment: [String: String] = [:]
    public var maxInFlight = 50_000
    /// Every `violationEvery`-th signal breaks a Graveyard rule (leverage 5×): 5 %.
    public var violationEvery = 20
    public var keepWorkDirectory = false

    public init(rate: Int?, durationSeconds: Double, instances: Int, arkExecutable: String, graveyardDir: String, redisURL: String? = nil) {
        self.rate = rate
        self.durationSeconds = durationSeconds
        self.instances = instances
        self.arkExecutable = arkExecutable
        self.graveyardDir = graveyardDir
        self.redisURL = redisURL
    }
}

/// CPU and memory of one process over the measured run.
public struct BenchProcessFigures: Sendable, Equatable {
    public var name: String
    public var pid: Int32
    public var cpuSeconds: Double
    public var cpuMicrosPerSignal: Double
    public var rssKB: Int
    /// The part of `rssKB` that is the process's own (heap, stacks, SQLite's cache): the rest
    /// is file pages, the binary and shared libraries every ARK process maps alike.
    public var anonKB: Int
    public var peakRSSKB: Int
    /// RSS once warmed up (a fifth of the run, at most a minute in): the end's RSS minus this
    /// is the growth over the run.
    public var rssWarmKB: Int
}

public struct PipelineBenchResult: Sendable, Equatable {
    public var rate: String
    public var instances: Int
    public var sent: Int
    public var recorded: Int
    public var lost: Int
    /// Recorded passes over the time from the first producer stamp to the last record.
    public var signalsPerSecond: Double
    public var seconds: Double
    public var latencyMs: [String: Double]
    public var violationsInjected: Int
    public var violationsDenied: Int
    /// Compliant signals denied for a portfolio limit, and for anything else (false denials).
    public var limitDenials: Int
    public var falseDenials: Int
    /// Portfolio limits the filled book broke at the end (must be none).
    public var limitBreaches: [String]
    public var verdicts: [String: Int]
    public var processes: [BenchProcessFigures]
}

extension BenchProcessFigures {
    public var json: [String: Any] {
        ["name": name, "pid": pid, "cpu_seconds": cpuSeconds, "cpu_micros_per_signal": cpuMicrosPerSignal, "rss_kb": rssKB, "anon_kb": anonKB,
         "peak_rss_kb": peakRSSKB, "rss_warm_kb": rssWarmKB]
    }
}

extension PipelineBenchResult {
    /// What `ark bench --json` writes.
    public var json: [String: Any] {
        ["rate": rate, "instances": instances, "sent": sent, "recorded": recorded, "lost": lost, "signals_per_second": signalsPerSecond,
         "seconds": seconds, "latency_ms": latencyMs, "violations_injected": violationsInjected, "violations_denied": violationsDenied,
         "limit_denials": limitDenials, "false_denials": falseDenials, "limit_breaches": limitBreaches, "verdicts": verdicts,
         "processes": processes.map(\.json)]
    }
}

public struct PipelineBenchError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a pipeline benchmark end to end and reports what the issue asks of it.
public final class PipelineBench {
    let plan: PipelineBenchPlan
    public let workDirectory: String
    private var redis: ChildProcess?
    private var agents: [ChildProcess] = []
    /// RSS of each process (by pid) once warmed up.
    private var warmRSS: [Int32: Int] = [:]

    public init(plan: PipelineBenchPlan) throws {
        self.plan = plan
        workDirectory = try makeBenchDirectory("ark-bench")
    }

    /// Starts everything, sends, drains, measures, stops everything. `progress` gets a line
    /// about once a second.
    public func run(progress: (String) -> Void) throws -> PipelineBenchResult {
        defer { tearDown() }
        let url = try plan.redisURL ?? startRedis()
        let connection = RedisConnection(url: try RedisURL(parsing: url), commandTimeout: .seconds(10))
        try connection.connect()
        let layout = ShardLayout(count: plan.shards)
        if plan.redisURL != nil, case .integer(let n) = try connection.command(["EXISTS", .text(layout.shards[0].stream(.kyle))]), n > 0 {
            throw PipelineBenchError("\(url) already holds ARK streams: the benchmark needs an empty Redis. Fix: leave out --redis-url (a private one is started) or point it at an empty server")
        }
        let storePath = workDirectory + "/bench.db"
        try startAgents(redisURL: url, storePath: storePath)
        try waitForHeartbeats(connection)
        let store = try StateStore(path: storePath, readOnly: true)

        let cpuBefore = processes().map { cpuSeconds($0.pid) }
        let producerBefore = cpuSeconds(getpid())
        let sent = try send(connection, store: store, progress: progress)
        let producerAfter = cpuSeconds(getpid())
        let recorded = try drain(sent: sent, store: store, progress: progress)
        let cpuAfter = processes().map { cpuSeconds($0.pid) }

        guard case .intact(let rules) = Graveyard.check(directory: plan.graveyardDir) else {
            throw PipelineBenchError("the Graveyard in \(plan.graveyardDir) is not intact: the passes cannot be judged")
        }
        let f = try store.benchFigures(traceIDPrefix: "bench-", portfolioRules: RiskLimits.limitRules(.intact(rules)))
        var breaches: [String] = []
        for shard in layout.shards {
            breaches += PortfolioHash.breaches(try connection.hashEntries(shard.portfolio), rules: rules).map { layout.isTagged ? "shard \(shard): " + $0 : $0 }
        }
        let seconds = Double(f.lastDoneNs - f.firstT0Ns) / 1e9
        var latency: [String: Double] = [:]
        for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)] {
            latency[name] = f.latencyNs(quantile: q).map { Double($0) / 1e6 }
        }
        func figures(_ name: String, _ pid: Int32, _ cpu: Double) -> BenchProcessFigures {
            let memory = memoryKB(pid)
            return BenchProcessFigures(name: name, pid: pid, cpuSeconds: cpu, cpuMicrosPerSignal: sent > 0 ? cpu * 1e6 / Double(sent) : 0,
                                       rssKB: memory.rss, anonKB: memory.anon, peakRSSKB: memory.peak, rssWarmKB: warmRSS[pid] ?? memory.rss)
        }
        // The producer (this process, while sending) shares the cores with the pipeline.
        let measured = zip(processes(), zip(cpuBefore, cpuAfter)).map { p, cpu in figures(p.name, p.pid, cpu.1 - cpu.0) }
            + [figures("producer", getpid(), producerAfter - producerBefore)]
        return PipelineBenchResult(
            rate: plan.rate.map(String.init) ?? "max", instances: plan.instances, sent: sent, recorded: recorded, lost: sent - recorded,
            signalsPerSecond: seconds > 0 ? Double(f.passes) / seconds : 0, seconds: seconds, latencyMs: latency,
            violationsInjected: f.violations, violationsDenied: f.violationsDenied, limitDenials: f.limitDenials, falseDenials: f.falseDenials,
            limitBreaches: breaches, verdicts: f.verdicts, processes: measured)
    }

    /// The agents, then Redis when it is ours.
    private func processes() -> [ChildProcess] { agents + (redis.map { [$0] } ?? []) }

    private func startRedis() throws -> String {
        let server = try PrivateRedis.start(in: workDirectory)
        redis = server.process
        return server.url
    }

    private func startAgents(redisURL: String, storePath: String) throws {
        var env = ProcessInfo.processInfo.environment
        for key in env.keys where key.hasPrefix("ARK_") || key.hasPrefix("WATCHDOG_") || key.hasPrefix("METRICS_") { env[key] = nil }
        env["REDIS_URL"] = redisURL
        env["ARK_ENV"] = "local"
        env["ARK_STATE_DB"] = storePath
        env["ARK_LOG_DIR"] = workDirectory
        env["ARK_GRAVEYARD_DIR"] = plan.graveyardDir
        env["ARK_LOG_FORMAT"] = "json"
        // Aletheia signs the audit tree as in production, so its figures include the signing.
        env["ARK_AUDIT_KEY"] = try writeAuditKey()
        if let shards = plan.shards { env["ARK_SHARDS"] = String(shards) }
        for (k, v) in plan.agentEnvironment { env[k] = v }
        for stage in Stage.allCases {
            for i in 1...plan.instances {
                let name = "\(stage.rawValue)-\(i)"
                agents.append(try ChildProcess.spawnAgent(stage, ark: plan.arkExecutable, name: name,
                                                          environment: env, log: "\(workDirectory)/\(name).log"))
            }
        }
    }

    /// A new Ed25519 key in the work directory (mode 600), as `ark audit-key generate` makes.
    private func writeAuditKey() throws -> String {
        let path = workDirectory + "/audit_ed25519.pem"
        let pem = try Ed25519.PrivateKey.generate().pem
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw PipelineBenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard pem.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == pem.count else { throw PipelineBenchError("cannot write \(path)") }
        return path
    }

    private func waitForHeartbeats(_ connection: RedisConnection) throws {
        let want = Stage.allCases.count * plan.instances * (plan.shards ?? 1)
        for _ in 0..<300 {
            if let dead = agents.first(where: { !$0.isRunning }) {
                throw PipelineBenchError("\(dead.name) exited at start: see \(workDirectory)/\(dead.name).log")
            }
            if try ControlPlane(connection).heartbeatCount() >= want { return }
            usleep(100_000)
        }
        throw PipelineBenchError("not every agent sent a heartbeat within 30 s: see the logs in \(workDirectory)")
    }

    /// Sends for the planned duration; returns how many signals went out.
    private func send(_ connection: RedisConnection, store: StateStore, progress: (String) -> Void) throws -> Int {
        let symbols = ["AAPL", "MSFT", "NVDA", "SPY", "AMZN", "META", "TSLA", "JPM"]
        let startNs = monotonicNanoseconds()
        let endNs = startNs + Int64(plan.durationSeconds * 1e9)
        var sent = 0
        var recorded = 0
        var nextReportNs = startNs + 1_000_000_000
        var nextCountNs = startNs
        let warmNs = startNs + min(60_000_000_000, Int64(plan.durationSeconds * 0.2e9))
        let layout = ShardLayout(count: plan.shards)
        let accounts = layout.isTagged ? (0..<(layout.shards.count * 4)).map { "acct-\($0)" } : []
        // Each shard's signals on a connection to its own node, in one pipeline per round.
        var shardConnections: [Shard: RedisConnection] = [:]
        for shard in layout.shards where shard.tagged {
            let c = RedisConnection(url: connection.url, commandTimeout: .seconds(10), slotKey: shard.slotKey)
            try c.connect()
            shardConnections[shard] = c
        }
        defer { for c in shardConnections.values { c.close() } }
        var commands: [Shard: [[RedisArg]]] = [:]
        while true {
            let now = monotonicNanoseconds()
            if now >= endNs { break }
            if now >= nextCountNs {
                recorded = try store.recordedPassCount()
                nextCountNs = now + 100_000_000
            }
            if warmRSS.isEmpty && now >= warmNs {
                for pid in processes().map(\.pid) + [getpid()] { warmRSS[pid] = memoryKB(pid).rss }
            }
            if now >= nextReportNs {
                progress(String(format: "  %5.1f s  sent %d  recorded %d  in flight %d", Double(now - startNs) / 1e9, sent, recorded, sent - recorded))
                nextReportNs += 1_000_000_000
            }
            let due = plan.rate.map { Int(Double(now - startNs) / 1e9 * Double($0)) } ?? (sent + 500)
            let room = plan.maxInFlight - (sent - recorded)
            let n = min(due - sent, 1000, room)
            if n <= 0 {
                usleep(1000)
                continue
            }
            commands.removeAll(keepingCapacity: true)
            let t0 = wallClockNanoseconds()
            for i in sent..<(sent + n) {
                // Up and down a triangle of 97 steps of 0.37 (about 0.3 %), one step every 128
                // signals: a symbol crosses its 2 % stops every thousand signals or so, so
                // positions close and reopen, and batches that several Kenny instances take out
                // of order (a step every 32 signals let two instances of each stage see 54 of
                // 56,000 compliant signals quote outside the band of a batch taken earlier)
                // still quote within the price band of each other.
                let step = (i / 128) % 194
                let price = 100.0 + Double(step < 97 ? step : 194 - step) * 0.37
                let buy = (i / symbols.count) % 2 == 0
                let violating = i % plan.violationEvery == 0
                let account = accounts.isEmpty ? nil : accounts[i % accounts.count]
                var event = (account.map { "{\"account\":\"\($0)\"," } ?? "{") + "\"trace_id\":\"bench-\(i)\",\"id\":\"b\(i)\",\"symbol\":\"\(symbols[i % symbols.count])\",\"price\":\(price),\"volume\":\(100 + i % 900),"
                event += "\"source\":\"bench\",\"action\":\"\(buy ? "buy" : "sell")\",\"position_size_pct\":0.01,\"leverage\":\(violating ? 5.0 : 1.0),"
                event += "\"stop_loss\":\(buy ? price * 0.98 : price * 1.02),\"risk_reward_ratio\":2.0,\"t0_ns\":\(t0)"
                if violating { event += ",\"injected_violation\":\"leverage\"" }
                event += "}"
                let shard = account.map(layout.shard(forAccount:)) ?? layout.shards[0]
                commands[shard, default: []].append(["XADD", .text(shard.stream(.kyle)), "*", "event", .text(event)])
            }
            for (shard, batch) in commands {
                for reply in try (shardConnections[shard] ?? connection).pipeline(batch) {
                    if case .error(let e) = reply { throw PipelineBenchError("XADD refused: \(e)") }
                }
            }
            sent += n
        }
        return sent
    }

    /// Waits until every sent signal is recorded, or nothing moved for 30 s; returns the count.
    private func drain(sent: Int, store: StateStore, progress: (String) -> Void) throws -> Int {
        var recorded = try store.recordedPassCount()
        var lastMoveNs = monotonicNanoseconds()
        var nextReportNs = lastMoveNs + 1_000_000_000
        while recorded < sent && monotonicNanoseconds() - lastMoveNs < 30_000_000_000 {
            usleep(20_000)
            let now = try store.recordedPassCount()
            if now > recorded { lastMoveNs = monotonicNanoseconds() }
            recorded = now
            if monotonicNanoseconds() >= nextReportNs {
                progress("  draining: recorded \(recorded) of \(sent)")
                nextReportNs += 1_000_000_000
            }
        }
        return recorded
    }

    private func tearDown() {
        _ = ChildProcess.stopAll(agents, timeout: .seconds(10))
        redis?.stop(timeout: .seconds(5))
        if !plan.keepWorkDirectory { try? FileManager.default.removeItem(atPath: workDirectory) }
    }
}

/// User plus system CPU seconds of `pid` so far (0 once it is gone).
func cpuSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let nameEnd = stat.lastIndex(of: ")") else { return 0 }
    // Fields after the name: state is field 3, utime 14 and stime 15.
    let fields = stat[stat.index(after: nameEnd)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Resident, resident anonymous and peak resident memory of `pid`, in KB.
func memoryKB(_ pid: Int32) -> (rss: Int, anon: Int, peak: Int) {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0, 0) }
    func field(_ name: String) -> Int {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    return (field("VmRSS"), field("RssAnon"), field("VmHWM"))
}

/// A new directory under the temp dir, for a benchmark's files.
public func makeBenchDirectory(_ prefix: String) throws -> String {
    var template = Array("\(NSTemporaryDirectory())/\(prefix)-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { throw PipelineBenchError("cannot make a work directory in \(NSTemporaryDirectory())") }
    return String(cString: p)
}
