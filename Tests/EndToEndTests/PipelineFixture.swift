import ARKBus
import ARKCore
import ARKState
import ARKSynthetic
import ARKTestSupport
import Foundation
import Testing

/// A private Redis, a temporary state store and `ark-agent` processes, one per stage, as
/// start_production.sh runs them.
final class PipelineFixture: @unchecked Sendable {
    let redis: RedisServer
    let dir: TempDir
    var agents: [Stage: ArkProcess] = [:]
    var others: [ArkProcess] = []
    /// Settings over the defaults below.
    var extraEnvironment: [String: String] = [:]

    var statePath: String { dir.path + "/ark_state.db" }

    var environment: [String: String] {
        [
            "REDIS_URL": redis.urlString, "ARK_STATE_DB": statePath, "ARK_GRAVEYARD_DIR": Repo.graveyard,
            "ARK_CLAIM_IDLE_MS": "1000", "ARK_BLOCK_MS": "50", "ARK_LOG_LEVEL": "info", "ARK_ENV": "test",
            "ARK_AUDIT_KEY": auditKeyPath, "ARK_LOG_DIR": dir.path,
            // The suites send the same order again and again on purpose (bursts, redeliveries,
            // exact counts of fills): the throttles are off unless a test sets them
            // (RiskEngineEndToEndTests does, with the defaults).
            "ARK_DUPLICATE_WINDOW_MS": "0", "ARK_MAX_ORDERS_PER_SECOND": "0", "ARK_MAX_SYMBOL_ORDERS_PER_SECOND": "0",
        ].merging(extraEnvironment) { $1 }
    }

    /// Aletheia's signing key (mode 600), and the checkpoint file it appends to.
    var auditKeyPath: String { dir.path + "/audit_ed25519.pem" }
    var checkpointFile: String { environment["ARK_AUDIT_CHECKPOINTS"] ?? ((environment["ARK_LOG_DIR"] ?? dir.path) + "/audit_checkpoints.jsonl") }
    let auditKey: Ed25519.PrivateKey

    init(persistentRedis: Bool = true) throws {
        redis = try RedisServer(persistent: persistentRedis)
        dir = try TempDir("ark-e2e")
        auditKey = try Ed25519.PrivateKey.generate()
        guard FileManager.default.createFile(atPath: dir.path + "/audit_ed25519.pem", contents: Data(auditKey.pem), attributes: [.posixPermissions: 0o600]) else {
            throw TestSetupError("cannot write the audit key")
        }
        // Agents trim what every group has acknowledged; this group never reads, so
        // `ark:aletheia` keeps everything Kenny wrote, for `tracesFilledTwice`.
        _ = try redis.client().command(["XGROUP", "CREATE", .text(Stage.aletheia.inputStream), "test-tap", "0", "MKSTREAM"])
    }

    func start(_ stage: Stage) throws {
        agents[stage] = try ArkProcess([stage.rawValue], executable: Repo.arkAgentBinary, environment: environment,
                                       logPath: dir.path + "/\(stage.rawValue.lowercased()).log")
    }

    func startAll() throws {
        for s in Stage.allCases { try start(s) }
    }

    /// Every stage, with a second HRM and a second Kenny sharing their groups; returns once all
    /// seven send heartbeats.
    func startAllWithTwoHRMsAndTwoKennys() throws {
        try startAll()
        for stage in [Stage.hrm, .kenny] {
            others.append(try ArkProcess([stage.rawValue], executable: Repo.arkAgentBinary, environment: environment,
                                         logPath: dir.path + "/\(stage.rawValue.lowercased())-2.log"))
        }
        let c = try redis.client()
        guard waitFor(timeout: 30, { ((try? c.command(["HLEN", .text(Streams.heartbeats)]))?.integer ?? 0) == 7 }) else {
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
        for p in others { p.terminate(grace: 10) }
        agents = [:]
        others = []
    }

    func shutdown() {
        stopAll()
        redis.shutdown()
        dir.remove()
    }

    func store() throws -> StateStore { try StateStore(path: statePath) }

    func synthetic(count: Int, rate: Double, violationEvery: Int = 60, passTimeoutMs: Double = 30_000) async throws -> SyntheticReport {
        let options = SyntheticOptions(
            duration: Double(count) / rate, rate: rate, redisURL: redis.url, statePath: statePath, graveyardDir: Repo.graveyard,
            passTimeoutMs: passTimeoutMs, sloP95LatencyMs: 60_000, seed: 42, violationEvery: violationEvery)
        return try await SyntheticLoop(options: options).run { _ in }
    }

    /// Traces for which Kenny reported more than one filled order, read from everything Kenny
    /// ever wrote to `ark:aletheia` (kept for the `test-tap` group): must always be empty.
    func tracesFilledTwice() throws -> [String] {
        let c = try redis.client()
        var fills: [String: Int] = [:]
        var cursor = "-"
        while true {
            let reply = try c.command(["XRANGE", .text(Stage.aletheia.inputStream), .text(cursor), "+", "COUNT", "1000"])
            let entries = reply.array ?? []
            for e in entries {
                guard let pair = e.array, pair.count == 2, let fields = pair[1].array, fields.count >= 2, case .bulk(let payload) = fields[1],
                      let event = try? EventCodec.decode(payload), event.execution?.status == .filled else { continue }
                fills[event.traceID, default: 0] += 1
            }
            guard entries.count == 1000, let last = entries.last?.array?[0].string else { break }
            cursor = "(" + last
        }
        return fills.filter { $0.value > 1 }.map(\.key)
    }

    /// Everything that should hold after any run: each approved pass has exactly one order,
    /// no trace was filled twice, and the audit log verifies with its signed checkpoints.
    func expectConsistent(_ report: SyntheticReport, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(report.passed, "\(report.summary)", sourceLocation: sourceLocation)
        #expect(report.lost == 0, sourceLocation: sourceLocation)
        #expect(try tracesFilledTwice() == [], sourceLocation: sourceLocation)
        let store = try store()
        let audit = try verifyAudit(store)
        #expect(audit.ok && audit.checkpointsVerified > 0, "\(audit)", sourceLocation: sourceLocation)
        let filled = try store.orderCount()
        #expect(filled > 0, sourceLocation: sourceLocation)
        #expect(try store.verdictCounts()[.error] == nil, sourceLocation: sourceLocation)
        // Whatever the sequence did (stages killed, Redis restarted, traces resent), the books
        // are the audit's.
        let reconcile = try runCommand(Repo.arkBinary, ["reconcile"], environment: environment)
        #expect(reconcile.code == 0 && reconcile.output.contains("0 differences"), "\(reconcile.output)", sourceLocation: sourceLocation)
    }

    /// The audit verified as `ark verify-audit` does: with the public key, against the
    /// checkpoint file too.
    func verifyAudit(_ store: StateStore) throws -> AuditReport {
        let file = CheckpointSource.file(checkpointFile)
        return try store.verifyAudit(publicKey: auditKey.publicKey, outside: file.map { [$0] } ?? [])
    }

    func logs() -> String {
        (agents.map { "--- \($0.key.rawValue)\n" + String($0.value.output.suffix(3000)) }
            + others.map { "--- \($0.arguments.joined(separator: " "))\n" + String($0.output.suffix(3000)) }).joined(separator: "\n")
    }

    /// Queues producer signals in ark:kyle one at a time, `perSecond` of them a second.
    func trickleSignals(_ count: Int, prefix: String, perSecond: Double) async throws {
        for i in 0..<count {
            try queueSignals(1, prefix: prefix, first: i)
            try await Task.sleep(for: .milliseconds(Int(1000 / perSecond)))
        }
    }

    /// Queues producer signals in ark:kyle, as a Python producer writes them.
    func queueSignals(_ count: Int, prefix: String, first: Int = 0, t0Ns: Int64? = nil) throws {
        let c = try redis.client()
        var commands: [[RedisArg]] = []
        for i in first..<(first + count) {
            var json = "{\"trace_id\": \"\(prefix)-\(i)\", \"id\": \"\(prefix)\(i)\", \"symbol\": \"AAPL\", \"price\": 101.5, \"volume\": 100, \"ts\": \(Double(wallClockNanoseconds()) / 1e9), "
            json += "\"source\": \"test\", \"action\": \"\(i % 2 == 0 ? "buy" : "sell")\", \"position_size_pct\": 0.001, \"leverage\": 1.0, \"stop_loss\": \(i % 2 == 0 ? 99.0 : 104.0), \"risk_reward_ratio\": 2.0"
            if let t0Ns { json += ", \"t0_ns\": \(t0Ns)" }
            json += "}"
            commands.append(["XADD", .text(Stage.kyle.inputStream), "*", "event", .text(json)])
        }
        _ = try c.pipeline(commands)
    }
}
