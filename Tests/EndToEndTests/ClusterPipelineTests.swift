import ARKAuth
import ARKBus
import ARKCore
import ARKHTTPClient
import ARKState
import ARKStoreWriter
import ARKSynthetic
import ARKTestSupport
import Foundation
import Testing


@Suite("Pipeline on Redis Cluster", .serialized)
struct ClusterPipelineTests {
    @Test func fourShardsOverThreePrimaries() async throws {
        let f = try Pipeline(.cluster())
        defer { f.shutdown() }
        try f.startAll()
        let report = try await f.synthetic(count: 300, rate: 40)
        try f.expectConsistent(report)
        // Every shard's keys sit on the one primary serving its slot.
        let map = try f.cluster.slotMap()
        #expect(Set(f.layout.shards.compactMap { map.primary(of: $0.slot) }).count >= 2)
    }

    /// kill -9 of a primary under a steady load: its replica takes over, every signal the
    /// intake confirmed (after WAIT) is recorded once, no order is made twice, limits hold.
    /// The topology docs/scale-out.md ships (two replicas a primary): the primary serving a shard in use is
    /// killed during traffic through the API and comes back 5 s later, as systemd would bring
    /// it back. Its promoted replica still has a replica, so the shard's intake stays open; the
    /// synthetic loop passes with all its criteria (p95 included), nothing lost, nothing
    /// filled twice, and the books reconcile with the audit.
    @Test func aPrimaryKilledUnderAPITrafficKeepsItsShardTakingSignals() async throws {
        let f = try Pipeline(.cluster(replicas: 2))
        defer { f.shutdown() }
        let port = try freeTCPPort()
        let secret = "cluster-api-secret-0123456789abcdef0123"
        f.extraEnvironment = ["API_PORT": String(port), "JWT_SECRET": secret, "METRICS_PORT": String(try freeTCPPort()),
                              "API_RATE_LIMIT_PER_MINUTE": "100000"]
        try f.startAll()
        let api = try ArkProcess(["api"], environment: f.environment, logPath: f.dir.path + "/api.log")
        defer { api.terminate() }
        #expect(await waitForAsync(timeout: 30) { (try? await HTTPClient.request("GET", "http://127.0.0.1:\(port)/readyz", timeout: .seconds(2)))?.status == 200 })
        let token = try await JWTAuthority(secret: secret, issuer: "ark", maxTTLSeconds: 86_400).mint(subject: "failover", ttlSeconds: 600, nowSeconds: wallClockNanoseconds() / 1_000_000_000)
        // A primary serving exactly one shard in use when there is one (3 primaries, 4 shards).
        let owners = try f.layout.shards.map { try f.cluster.primary(for: $0.slotKey).port }
        let counts = Dictionary(owners.map { ($0, 1) }, uniquingKeysWith: +)
        let victimPort = counts.min { ($0.value, $0.key) < ($1.value, $1.key) }!.key
        let victim = try #require(f.cluster.nodes.first { $0.port == victimPort })
        let load = Task {
            var options = SyntheticOptions(duration: 40, rate: 20, redisURL: try f.cluster.url, statePath: f.statePath, graveyardDir: Repo.graveyard,
                                           passTimeoutMs: 30_000, sloP95LatencyMs: 400, seed: 7, violationEvery: 40)
            options.layout = f.layout
            options.accounts = (0..<(f.shards * 4)).map { "acct-\($0)" }
            options.api = APITarget(baseURL: "http://127.0.0.1:\(port)", token: token)
            return try await SyntheticLoop(options: options).run { _ in }
        }
        try await Task.sleep(for: .seconds(8))
        victim.kill9()
        try await Task.sleep(for: .seconds(5))
        try victim.restart()
        let report = try await load.value
        for check in report.checks where !check.name.hasPrefix("Throughput") {
            #expect(check.ok, "\(check.name)\n\(report.summary)\n\(String(api.output.suffix(2000)))\n\(f.logs())")
        }
        #expect(report.lost == 0)
        #expect(try f.tracesFilledTwice() == [])
        let reconcile = try runCommand(Repo.arkBinary, ["reconcile"], environment: f.environment)
        #expect(reconcile.code == 0 && reconcile.output.contains("0 differences"), "\(reconcile.output)")
        // The shard stalls for the cluster's failover (2 s node timeout, then the election) and
        // a few seconds more at most.
        #expect((report.latenciesMs.max() ?? 0) < 10_000, "the longest pass took \(report.latenciesMs.max() ?? 0) ms")
    }

    @Test func aKilledPrimaryLosesNoConfirmedSignal() async throws {
        let f = try Pipeline(.cluster())
        defer { f.shutdown() }
        try f.startAll()
        let victim = try f.cluster.primary(for: Shard.tagged(1).slotKey)
        let load = Task { try await f.synthetic(count: 600, rate: 30) }
        try await Task.sleep(for: .seconds(5))
        victim.kill9()
        #expect(f.cluster.waitForNewPrimary(for: Shard.tagged(1).slotKey, replacing: victim) != nil)
        // As a supervisor would: the node comes back and rejoins as the new primary's replica,
        // so the shard's intake, which confirms only what a replica has, takes signals again.
        try victim.restart()
        let report = try await load.value
        try f.expectConsistent(report)
    }

    /// A manual failover (CLUSTER FAILOVER on a replica) in the middle of a run: nothing lost.
    @Test func aManualFailoverLosesNothing() async throws {
        let f = try Pipeline(.cluster())
        defer { f.shutdown() }
        try f.startAll()
        let shard = Shard.tagged(2)
        let replica = try f.cluster.replica(for: shard.slotKey)
        let load = Task { try await f.synthetic(count: 400, rate: 40) }
        try await Task.sleep(for: .seconds(4))
        #expect(try replica.ask(["CLUSTER", "FAILOVER"]) == .status("OK"))
        #expect(waitFor(timeout: 20, interval: 0.2) { (try? f.cluster.primary(for: shard.slotKey).port) == replica.port })
        let report = try await load.value
        try f.expectConsistent(report)
    }

    /// Agents killed and restarted while a primary fails over: they find the new primary and
    /// take over what their predecessors left pending.
    @Test func agentsRestartedDuringAFailover() async throws {
        let f = try Pipeline(.cluster())
        defer { f.shutdown() }
        try f.startAll()
        let victim = try f.cluster.primary(for: Shard.tagged(0).slotKey)
        let load = Task { try await f.synthetic(count: 500, rate: 25) }
        try await Task.sleep(for: .seconds(5))
        victim.kill9()
        f.agents[.kenny]?.kill9()
        f.agents[.joey]?.kill9()
        try await Task.sleep(for: .seconds(1))
        try f.start(.kenny)
        try f.start(.joey)
        #expect(f.cluster.waitForNewPrimary(for: Shard.tagged(0).slotKey, replacing: victim) != nil)
        try victim.restart()
        let report = try await load.value
        try f.expectConsistent(report)
    }

    /// A whole shard down (its primary and its replica killed; `cluster-require-full-coverage
    /// no`): the other shards' signals flow, the intake refuses the dead shard's with a clear
    /// error, and /healthz names the shard.
    @Test func aShardDownLeavesTheOthersFlowing() async throws {
        let f = try Pipeline(.cluster())
        defer { f.shutdown() }
        let port = try freeTCPPort()
        try f.startAll()
        let metrics = try ArkProcess(["metrics-server"], environment: f.environment.merging(["METRICS_PORT": String(port)]) { $1 },
                                     logPath: f.dir.path + "/metrics.log")
        defer { metrics.terminate() }
        let map = try f.cluster.slotMap()
        // The primary of shard 3 (alone on its node, by the slots of the tags) and its replica.
        let dead = Shard.tagged(3)
        let primary = try f.cluster.primary(for: dead.slotKey)
        let onIt = f.layout.shards.filter { map.primary(of: $0.slot) == primary.endpoint }
        #expect(onIt == [dead], "shards on the victim: \(onIt)")
        let replica = try f.cluster.replica(for: dead.slotKey)
        replica.kill9()
        primary.kill9()
        let alive = (0..<40).map { "acct-\($0)" }.filter { f.layout.shard(forAccount: $0) != dead }
        let report = try await f.synthetic(count: 150, rate: 30, accounts: alive)
        try f.expectConsistent(report, skipping: [dead])
        // A signal of the dead shard's accounts is refused, not confirmed.
        let deadAccount = (0..<40).map { "acct-\($0)" }.first { f.layout.shard(forAccount: $0) == dead }!
        let queue = SignalQueue(url: try f.cluster.url, size: 1, backlogBound: 1_000_000, layout: f.layout)
        do {
            _ = try await queue.enqueue([Array("{\"account\":\"\(deadAccount)\",\"symbol\":\"AAPL\",\"price\":1,\"volume\":1}".utf8)])
            Issue.record("a signal of a dead shard was confirmed")
        } catch {
            guard case .redis = error else { Issue.record("unexpected \(error)"); return }
        }
        await queue.shutdown()
        var health = ""
        _ = try waitFor(timeout: 30, interval: 0.5) {
            health = try httpGet("http://127.0.0.1:\(port)/healthz").body
            return health.contains("shard_s3")
        }
        #expect(health.contains("shard s3 is down"), "\(health)")
        #expect(!health.contains("shard_s0") && !health.contains("shard_s1") && !health.contains("shard_s2"), "\(health)")
        // /metrics still merges what the live primaries hold, with a gauge per stage and shard.
        let exposition = try httpGet("http://127.0.0.1:\(port)/metrics")
        #expect(exposition.status == 200)
        #expect(exposition.body.contains("stage=\"Kyle\",shard=\"s0\"}"), "\(exposition.body.prefix(3000))")
        #expect(exposition.body.contains("ark_stage_processed_total{"), "the agents' own expositions, from the live primaries")
    }

    /// Agents as separate hosts: two network namespaces (veth pairs to this host), each with a
    /// host name of its own, run a Kyle, Joey, HRM and Kenny each (one also Aletheia) against
    /// the cluster, sharing every shard's consumer groups: both take work, nothing is lost or
    /// filled twice.
    @Test(.enabled(if: NetworkNamespace.available, "needs root and iproute2 for ip netns"))
    func agentsOnTwoHostsShareTheShards() async throws {
        let first = try NetworkNamespace(subnet: 71)
        defer { first.remove() }
        let second = try NetworkNamespace(subnet: 72)
        defer { second.remove() }
        let f = try Pipeline(.cluster(host: first.hostAddress))
        defer { f.shutdown() }
        for stage in Stage.allCases { try f.start(stage, in: first, hostname: "arkhost1") }
        for stage in Stage.allCases where stage != .aletheia { try f.start(stage, in: second, hostname: "arkhost2") }
        let report = try await f.synthetic(count: 400, rate: 40)
        try f.expectConsistent(report)
        let processed = try f.processedByHost()
        for stage in Stage.allCases where stage != .aletheia {
            for host in ["arkhost1", "arkhost2"] {
                #expect((processed["\(host)/\(stage.rawValue)"] ?? 0) > 0, "\(processed)")
            }
        }
        #expect(processed.keys.allSatisfy { $0.hasPrefix("arkhost") }, "\(processed)")
    }

    /// A canary rollout on a sharded pipeline: the baseline Kyle of every shard routes a share
    /// of its traces to that shard's canary streams, the good release is promoted, and the
    /// canary streams of every shard end empty with nothing lost.
    /// Starts a sharded pipeline from a release and a canary of another release with `steps`.
    func startShardedCanary(_ f: Pipeline, steps: [String]) throws -> ArkProcess {
        let releases = f.dir.path + "/releases"
        f.extraEnvironment = ["ARK_RELEASES_DIR": releases, "ARK_RUN_DIR": f.dir.path + "/run", "ARK_BACKUP_DIR": f.dir.path + "/backups"]
        for d in ["releases", "run", "backups"] { try FileManager.default.createDirectory(atPath: f.dir.path + "/" + d, withIntermediateDirectories: true) }
        try FileManager.default.createSymbolicLink(atPath: releases + "/current", withDestinationPath: try makeTestRelease(in: releases, "base"))
        try f.startAll()
        for (stage, p) in f.agents { try "\(p.pid)\n".write(toFile: f.dir.path + "/run/\(stage.rawValue.lowercased()).pid", atomically: true, encoding: .utf8) }
        let next = try makeTestRelease(in: releases, "next")
        return try ArkProcess(["canary", "start", "--release", next, "--check-seconds", "1", "--min-samples", "20", "--verify-seconds", "3"] + steps,
                              environment: f.environment, logPath: f.dir.path + "/canary.log")
    }

    func stopShardedCanary(_ f: Pipeline, _ canary: ArkProcess) {
        canary.terminate()
        for name in ["kyle", "joey", "hrm", "kenny", "aletheia"] {
            if let t = try? String(contentsOfFile: f.dir.path + "/run/\(name).pid", encoding: .utf8), let pid = pid_t(t.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(pid, SIGTERM) }
        }
    }

    @Test func aCanaryRolloutOverFourShards() async throws {
        let f = try Pipeline(.cluster())
        defer { f.shutdown() }
        let canary = try startShardedCanary(f, steps: ["--steps", "30,100", "--step-seconds", "5"])
        defer { stopShardedCanary(f, canary) }
        let traffic = try await f.synthetic(count: 800, rate: 40)
        #expect(waitFor(timeout: 90, interval: 0.2) { !canary.isRunning }, "\(canary.output.suffix(3000))")
        let run = try #require(try StateStore(path: f.statePath).canaryRun())
        #expect(run.status == .promoted, "\(canary.output.suffix(3000))")
        #expect(try StateStore(path: f.statePath).trackFigures(.canary, fromNs: 0, toNs: Int64.max).passes > 100)
        try f.expectConsistent(traffic)
        let c = RedisConnection(url: try f.cluster.url)
        try c.connect()
        for shard in f.layout.shards {
            for stage in Stage.allCases {
                let stream = shard.stream(stage, on: .canary)
                #expect(try c.command(["XLEN", .text(stream)]).integer ?? 0 == 0, "\(stream) still holds entries")
            }
        }
    }

    /// The tripwire sees a quarantined canary instance by its sharded name (`kenny-host-pid@s2`):
    /// the watchdog names instances with their shard, and a tripwire that left the suffix off
    /// never saw one.
    @Test func aQuarantinedCanaryInstanceOnAShardRollsTheRunBack() async throws {
        let f = try Pipeline(.cluster())
        defer { f.shutdown() }
        let canary = try startShardedCanary(f, steps: ["--steps", "30,100", "--step-seconds", "60"])
        defer { stopShardedCanary(f, canary) }
        let store = try StateStore(path: f.statePath)
        var pid: Int32?
        #expect(waitFor(timeout: 60, interval: 0.2) {
            pid = (try? store.canaryRun()).flatMap { $0?.status == .running ? $0 : nil }.flatMap { try? JSONSerialization.jsonObject(with: Data($0.report.utf8)) as? [String: Any] }
                .flatMap { ($0["canaryPIDs"] as? [[String: Any]])?.first { ($0["name"] as? String)?.hasSuffix("Kenny") == true }?["pid"] as? Int }.map(Int32.init)
            return pid != nil
        }, "\(canary.output.suffix(3000))")
        let instance = Shard.tagged(2).instanceName(stage: .kenny, host: ProcessInfo.processInfo.hostName, pid: try #require(pid))
        try store.updateWatchdog { _ in
            (WatchdogChanges(events: [WatchdogEventRecord(instance: instance, stage: "Kenny", action: "quarantine", reason: "test: quarantined as the watchdog would",
                                                          figures: "{}", by: "watchdog", tsNs: wallClockNanoseconds())]), ())
        }
        #expect(waitFor(timeout: 90, interval: 0.2) { !canary.isRunning }, "\(canary.output.suffix(3000))")
        let run = try #require(try store.canaryRun())
        #expect(run.status == .rolledBack && run.tripwire == "quarantine", "\(run.status) \(run.tripwire ?? "-"): \(canary.output.suffix(3000))")
    }
}
