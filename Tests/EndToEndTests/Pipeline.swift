import ARKBus
import ARKCore
import ARKState
import ARKSynthetic
import ARKTestSupport
import Foundation
import Testing

/// The end-to-end suites' one fixture: a private Redis (one node, or a Redis Cluster of three
/// primaries with replicas on loopback), a temporary state store with its audit key, and
/// `ark-agent` processes, one per stage, as start_production.sh runs them.
final class Pipeline: @unchecked Sendable {
    enum Redis {
        /// One redis-server; `persistent: false` is the stock Debian server's effect (a restart
        /// after `kill9` comes back empty).
        case single(persistent: Bool = true)
        /// A Redis Cluster with `ARK_SHARDS=shards`, every agent serving every shard.
        case cluster(shards: Int = 4, replicas: Int = 1, host: String = "127.0.0.1")
    }

    let kind: Redis
    private let server: RedisServer?
    private let clusterServer: RedisCluster?
    let dir: TempDir
    let auditKey: Ed25519.PrivateKey
    var agents: [Stage: ArkProcess] = [:]
    /// Other processes (a second instance, a metrics server), stopped with the agents.
    var others: [ArkProcess] = []
    /// Agents on "other hosts": in network namespaces, each with a host name of its own.
    var remoteAgents: [ArkProcess] = []
    /// Settings over the defaults below.
    var extraEnvironment: [String: String] = [:]

    /// The one redis-server (single only).
    var redis: RedisServer {
        guard let server else { preconditionFailure("a cluster pipeline has no single Redis: use cluster or client()") }
        return server
    }

    /// The Redis Cluster (cluster only).
    var cluster: RedisCluster {
        guard let clusterServer else { preconditionFailure("a single-node pipeline has no cluster: use redis or client()") }
        return clusterServer
    }

    var isCluster: Bool { clusterServer != nil }
    var shards: Int { layout.shards.count }
    let layout: ShardLayout
    var redisURL: RedisURL { get throws { try server?.url ?? cluster.url } }
    var redisURLString: String { server?.urlString ?? cluster.urlString }
    var statePath: String { dir.path + "/ark_state.db" }
    var auditKeyPath: String { dir.path + "/audit_ed25519.pem" }
    var checkpointFile: String { environment["ARK_AUDIT_CHECKPOINTS"] ?? ((environment["ARK_LOG_DIR"] ?? dir.path) + "/audit_checkpoints.jsonl") }

    var environment: [String: String] {
        var base = [
            "REDIS_URL": redisURLString, "ARK_STATE_DB": statePath, "ARK_GRAVEYARD_DIR": Repo.graveyard,
            "ARK_CLAIM_IDLE_MS": "1000", "ARK_BLOCK_MS": "50", "ARK_LOG_LEVEL": "info", "ARK_ENV": "test",
            "ARK_AUDIT_KEY": auditKeyPath, "ARK_LOG_DIR": dir.path,
        ]
        if isCluster {
            base["ARK_SHARDS"] = String(shards)
        } else {
            // The single-node suites send the same order again and again on purpose (bursts,
            // redeliveries, exact counts of fills): the throttles are off unless a test sets
            // them (RiskEngineEndToEndTests does, with the defaults).
            base.merge(["ARK_DUPLICATE_WINDOW_MS": "0", "ARK_MAX_ORDERS_PER_SECOND": "0", "ARK_MAX_SYMBOL_ORDERS_PER_SECOND": "0"]) { $1 }
        }
        return base.merging(extraEnvironment) { $1 }
    }

    init(_ kind: Redis = .single()) throws {
        self.kind = kind
        switch kind {
        case .single(let persistent):
            server = try RedisServer(persistent: persistent)
            clusterServer = nil
            layout = .single
        case .cluster(let shards, let replicas, let host):
            server = nil
            clusterServer = try RedisCluster(replicas: replicas, host: host)
            layout = ShardLayout(count: shards)
        }
        dir = try TempDir(clusterServer == nil ? "ark-e2e" : "ark-cluster-e2e")
        auditKey = try Ed25519.PrivateKey.generate()
        guard FileManager.default.createFile(atPath: auditKeyPath, contents: Data(auditKey.pem), attributes: [.posixPermissions: 0o600]) else {
            throw TestSetupError("cannot write the audit key")
        }
        // Agents trim what every group has acknowledged; this group never reads, so each
        // shard's `aletheia` stream keeps everything Kenny wrote, for `tracesFilledTwice`.
        let c = try client()
        for s in layout.shards {
            _ = try c.command(["XGROUP", "CREATE", .text(s.stream(.aletheia)), "test-tap", "0", "MKSTREAM"])
        }
    }

    /// A connected client of the pipeline's Redis (it follows a cluster's slots).
    func client() throws -> RedisConnection {
        if let server { return try server.client() }
        let c = RedisConnection(url: try cluster.url)
        try c.connect()
        return c
    }

    func start(_ stage: Stage) throws {
        agents[stage] = try ArkProcess([stage.rawValue], executable: Repo.arkAgentBinary, environment: environment,
                                       logPath: dir.path + "/\(stage.rawValue.lowercased()).log")
    }

    func startAll() throws {
        for s in Stage.allCases { try start(s) }
    }

    func start(_ stage: Stage, in namespace: NetworkNamespace, hostname: String) throws {
        let (executable, arguments) = namespace.wrap(Repo.arkAgentBinary, [stage.rawValue], hostname: hostname)
        remoteAgents.append(try ArkProcess(arguments, executable: executable, environment: environment,
                                           logPath: dir.path + "/\(hostname)-\(stage.rawValue.lowercased()).log"))
    }

    /// Every stage, with a second HRM and a second Kenny sharing their groups; returns once all
    /// seven send heartbeats.
    func startAllWithTwoHRMsAndTwoKennys() throws {
        try startAll()
        for stage in [Stage.hrm, .kenny] {
            others.append(try ArkProcess([stage.rawValue], executable: Repo.arkAgentBinary, environment: environment,
                                         logPath: dir.path + "/\(stage.rawValue.lowercased())-2.log"))
        }
        let control = ControlPlane(try client())
        guard waitFor(timeout: 30, { ((try? control.heartbeatCount()) ?? 0) == 7 }) else {
            throw TestSetupError("seven agents did not all send heartbeats within 30 s\n\(logs())")
        }
    }

    /// Starts another `ark` process (a metrics server, a second instance), stopped with the agents.
    @discardableResult
    func startProcess(_ arguments: [String], name: String, environment extra: [String: String] = [:]) throws -> ArkProcess {
        let p = try ArkProcess(arguments, environment: environment.merging(extra) { $1 }, logPath: dir.path + "/\(name).log")
        others.append(p)
        return p
    }

    func stopAll() {
        for (_, p) in agents { p.terminate(grace: 10) }
        for p in others + remoteAgents { p.terminate(grace: 10) }
        agents = [:]
        others = []
        remoteAgents = []
    }

    func shutdown() {
        stopAll()
        server?.shutdown()
        clusterServer?.shutdown()
        dir.remove()
    }

    func store() throws -> StateStore { try StateStore(path: statePath) }

    /// The synthetic loop against the pipeline (on a cluster, over four accounts a shard).
    func synthetic(count: Int, rate: Double, violationEvery: Int? = nil, passTimeoutMs: Double? = nil, accounts: [String]? = nil) async throws -> SyntheticReport {
        var options = SyntheticOptions(
            duration: Double(count) / rate, rate: rate, redisURL: try redisURL, statePath: statePath, graveyardDir: Repo.graveyard,
            passTimeoutMs: passTimeoutMs ?? (isCluster ? 60_000 : 30_000), sloP95LatencyMs: isCluster ? 120_000 : 60_000, seed: 42,
            violationEvery: violationEvery ?? (isCluster ? 40 : 60))
        if isCluster {
            options.layout = layout
            options.accounts = accounts ?? (0..<(shards * 4)).map { "acct-\($0)" }
        }
        return try await SyntheticLoop(options: options).run { _ in }
    }

    /// Traces for which Kenny reported more than one filled order, read from everything Kenny
    /// ever wrote to the `aletheia` streams of `shards` (kept for the `test-tap` group): must
    /// always be empty.
    func tracesFilledTwice(on shards: [Shard]? = nil) throws -> [String] {
        var fills: [String: Int] = [:]
        for s in shards ?? layout.shards {
            for payload in try eventsWritten(to: s.stream(.aletheia)) {
                guard let event = try? EventCodec.decode(payload), event.execution?.status == .filled else { continue }
                fills[event.traceID, default: 0] += 1
            }
        }
        return fills.filter { $0.value > 1 }.map(\.key)
    }

    /// Every event still in `stream`, in order: an entry's `event`, or each of its envelope's
    /// `events`. A control entry (a trading state change) has neither.
    func eventsWritten(to stream: String) throws -> [[UInt8]] {
        let c = try client()
        var out: [[UInt8]] = []
        var cursor = "-"
        while true {
            let reply = try c.command(["XRANGE", .text(stream), .text(cursor), "+", "COUNT", "1000"])
            let entries = reply.array ?? []
            for e in entries {
                guard let pair = e.array, pair.count == 2, let fields = pair[1].array, fields.count == 2, case .bulk(let payload) = fields[1] else { continue }
                switch fields[0].string {
                case "event": out.append(payload)
                case Envelope.field: out += payload.withUnsafeBytes { Envelope.split($0) }
                default: break
                }
            }
            guard entries.count == 1000, let last = entries.last?.array?[0].string else { break }
            cursor = "(" + last
        }
        return out
    }

    /// Everything that should hold after any run: every pass recorded and none lost, each
    /// approved pass with exactly one order, no trace filled twice, the audit log verified
    /// with its signed checkpoints, and the books the audit's. On a cluster, the send rate
    /// (a timing) is the benchmarks' to measure, a book may drift past `max_symbol_exposure`
    /// only by a later loss elsewhere (`isDriftOnly`), and the shards in `down` are not read.
    func expectConsistent(_ report: SyntheticReport, skipping down: [Shard] = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
        if isCluster {
            for check in report.checks where !check.name.hasPrefix("Portfolio limits") && !check.name.hasPrefix("Throughput") {
                #expect(check.ok, "\(check.name)\n\(report.summary)\n\(logs())", sourceLocation: sourceLocation)
            }
            for breach in report.limitBreaches ?? [] {
                let unread = down.contains { breach.hasPrefix("the book of shard \($0) was not checked") }
                #expect(unread || Self.isDriftOnly(breach), "\(breach)", sourceLocation: sourceLocation)
            }
            #expect(report.limitBreaches != nil, sourceLocation: sourceLocation)
        } else {
            #expect(report.passed, "\(report.summary)", sourceLocation: sourceLocation)
        }
        #expect(report.lost == 0, sourceLocation: sourceLocation)
        #expect(try tracesFilledTwice(on: layout.shards.filter { !down.contains($0) }) == [], sourceLocation: sourceLocation)
        let store = try store()
        if isCluster { #expect(try store.passCount() == report.sent, sourceLocation: sourceLocation) }
        #expect(try store.verdictCounts()[.error] == nil, sourceLocation: sourceLocation)
        // A head is signed within ARK_AUDIT_CHECKPOINT_MS of its leaves; a run whose passes
        // all landed in its last moments (agents starved on two cores) may end before that.
        var audit = try verifyAudit(store)
        let signedBy = monotonicNanoseconds() + 5_000_000_000
        while audit.ok && audit.checkpointsVerified == 0 && monotonicNanoseconds() < signedBy {
            usleep(200_000)
            audit = try verifyAudit(store)
        }
        let broken = audit.ok ? "" : ((try? rows(of: audit.firstBroken?.traceID)) ?? "")
        #expect(audit.ok && audit.checkpointsVerified > 0, "\(audit)\n\(broken)", sourceLocation: sourceLocation)
        #expect(try store.orderCount() > 0, sourceLocation: sourceLocation)
        guard down.isEmpty else { return }
        if isCluster { #expect(try entriesPerShard().allSatisfy { $0 > 0 }, sourceLocation: sourceLocation) }
        // Whatever the sequence did (stages killed, Redis restarted or failed over, traces
        // resent), the books on every shard are the audit's.
        let reconcile = try runCommand(Repo.arkBinary, ["reconcile"], environment: environment)
        #expect(reconcile.code == 0 && reconcile.output.contains("0 differences"), "\(reconcile.output)", sourceLocation: sourceLocation)
    }

    /// A `max_symbol_exposure` breach of at most 0.5 % of the limit: the equity fell (a stop
    /// hit elsewhere) under a position filled within the limit; any extra fill would be a whole
    /// order (0.5 % of equity or more) past it. The exact invariant, checked after every fill,
    /// is `PortfolioInvariantTests`' and `PortfolioLimitTests`'.
    static func isDriftOnly(_ breach: String) -> Bool {
        guard breach.contains("max_symbol_exposure"), let r = breach.range(of: "exposure "),
              let exposure = Double(breach[r.upperBound...].prefix { $0 != " " }),
              let e = breach.range(of: "of equity "), let equity = Double(breach[e.upperBound...].prefix { $0 != "," }) else { return false }
        return exposure <= 0.10 * equity * 1.005
    }

    /// The audit verified as `ark verify-audit` does: with the public key, against the
    /// checkpoint file too.
    func verifyAudit(_ store: StateStore) throws -> AuditReport {
        let file = CheckpointSource.file(checkpointFile)
        return try store.verifyAudit(publicKey: auditKey.publicKey, outside: file.map { [$0] } ?? [])
    }

    /// A trace's pass and order rows, for a failure message.
    func rows(of traceID: String?) throws -> String {
        guard let traceID else { return "" }
        let r = try runCommand("/usr/bin/sqlite3", [statePath,
            "SELECT 'pass', leaf, verdict, order_id, substr(record, instr(record, '\"execution\"'), 160) FROM passes WHERE trace_id = '\(traceID)'; SELECT 'order', leaf, order_id, quantity, ts_ns FROM orders WHERE trace_id = '\(traceID)';"])
        return r.output + "\n" + logs().split(separator: "\n").filter { $0.contains(traceID) }.joined(separator: "\n")
    }

    func logs() -> String {
        (agents.map { "--- \($0.key.rawValue)\n" + String($0.value.output.suffix(3000)) }
            + (others + remoteAgents).map { "--- \($0.arguments.joined(separator: " "))\n" + String($0.output.suffix(3000)) }).joined(separator: "\n")
    }

    /// Entries Kenny wrote on each shard: every shard must have carried signals.
    func entriesPerShard() throws -> [Int] {
        let c = try client()
        return try layout.shards.map { Int(try c.command(["XLEN", .text($0.stream(.aletheia))]).integer ?? 0) }
    }

    /// Entries processed by each (host, stage), from the heartbeats.
    func processedByHost() throws -> [String: Int] {
        var out: [String: Int] = [:]
        for beat in try ControlPlane(try client()).heartbeats() {
            out["\(beat.host)/\(beat.stage)", default: 0] += beat.processed
        }
        return out
    }

    /// Queues producer signals in ark:kyle one at a time, `perSecond` of them a second.
    func trickleSignals(_ count: Int, prefix: String, perSecond: Double) async throws {
        for i in 0..<count {
            try queueSignals(1, prefix: prefix, first: i)
            try await Task.sleep(for: .milliseconds(Int(1000 / perSecond)))
        }
    }

    /// Queues producer signals in the first shard's Kyle stream, as a Python producer writes them.
    func queueSignals(_ count: Int, prefix: String, first: Int = 0, t0Ns: Int64? = nil) throws {
        let c = try client()
        var commands: [[RedisArg]] = []
        for i in first..<(first + count) {
            var json = "{\"trace_id\": \"\(prefix)-\(i)\", \"id\": \"\(prefix)\(i)\", \"symbol\": \"AAPL\", \"price\": 101.5, \"volume\": 100, \"ts\": \(Double(wallClockNanoseconds()) / 1e9), "
            json += "\"source\": \"test\", \"action\": \"\(i % 2 == 0 ? "buy" : "sell")\", \"position_size_pct\": 0.001, \"leverage\": 1.0, \"stop_loss\": \(i % 2 == 0 ? 99.0 : 104.0), \"risk_reward_ratio\": 2.0"
            if let t0Ns { json += ", \"t0_ns\": \(t0Ns)" }
            json += "}"
            commands.append(["XADD", .text(layout.shards[0].stream(.kyle)), "*", "event", .text(json)])
        }
        _ = try c.pipeline(commands)
    }
}
