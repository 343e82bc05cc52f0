import ARKBench
import ARKBus
import ARKCore
import ARKProcess
import ARKState
import ARKStoreWriter
import Foundation
import Graveyard

/// A signal as Python producers write it (`Tests/Data/kyle_inputs.jsonl`, "python_default").
let producerSignal: [UInt8] = Array(#"{"id": "sig-1", "symbol": " aapl", "price": 190.25, "volume": 1200, "ts": 1732330000.123, "source": "feed", "position_size_pct": 0.05, "leverage": 1.0, "stop_loss": 185.0, "risk_reward_ratio": 2.0}"#.utf8)

/// An event as Kenny hands it to Aletheia: taken from a pass a real pipeline recorded
/// (the synthetic loop), without Aletheia's own hop.
let kennyEvent: [UInt8] = Array(#"""
{"trace_id":"syn-2cz26h-29","id":"syn-2cz26h-29","symbol":"MSFT","price":149.28,"volume":129.0,"ts":1795456164.151732,"source":"synthetic","t0_ns":1795456164151732058,"action":"sell","position_size_pct":0.02,"leverage":1.0,"stop_loss":152.27,"risk_reward_ratio":2.0,"hops":[{"stage":"Kyle","instance":"Kyle-vm-30805","in_ns":1795456164154572265,"out_ns":1795456164154632648},{"stage":"Joey","instance":"Joey-vm-30809","in_ns":1795456164155280363,"out_ns":1795456164155314638},{"stage":"HRM","instance":"HRM-vm-30813","in_ns":1795456164155630210,"out_ns":1795456164155809516},{"stage":"Kenny","instance":"Kenny-vm-30819","in_ns":1795456164156180542,"out_ns":1795456164156523986}],"decision":{"approved":true,"violations":[],"warnings":[],"rules_checked":8,"compliance_score":1.0,"policy_hash":"d95bf4b9111e1f13695bf479e254eedccb798a9ab7ef6124581c0435ca1aabed","eval_ns":13205},"execution":{"status":"filled","order_id":"ord-syn-2cz26h-29","side":"sell","quantity":13.394343999632992,"price":149.28,"notional":1999.5076722652132,"position_after":0.021157274065391363,"realized_pnl":-0.13482600644932724}}
"""#.utf8)

/// Fixtures are the runner's setup state, which it never hands to teardown: each one is
/// kept here and torn down (Redis stopped, files removed) when its benchmark ends.
final class FixtureCleanup: @unchecked Sendable {
    static let shared = FixtureCleanup()
    private let lock = NSLock()
    private var pending: [() -> Void] = []

    func keep<F: TearsDown>(_ fixture: F) -> F {
        lock.withLock { pending.append(fixture.tearDown) }
        return fixture
    }

    func run() {
        let all = lock.withLock { () -> [() -> Void] in
            defer { pending.removeAll() }
            return pending
        }
        for tearDown in all { tearDown() }
    }
}

protocol TearsDown: AnyObject {
    func tearDown()
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

/// The repository's `graveyard/`, found from this file's place in the tree.
func graveyardRules() throws -> RuleSet {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    let check = Graveyard.check(directory: root.path + "/graveyard")
    guard case .intact(let rules) = check else { throw FixtureError(description: "graveyard: \(check.problem ?? "not intact")") }
    return rules
}

/// A private redis-server and one stage's bus on it, for the batch round trip. The classes
/// are used by one benchmark at a time (the runner is sequential).
final class BusFixture: TearsDown, @unchecked Sendable {
    let directory: String
    let redis: PrivateRedis
    let producer: RedisConnection
    let bus: StreamBus
    static let input = "bench:in"
    static let output = "bench:out"

    init() throws {
        directory = try makeBenchDirectory("ark-benchmarks-bus")
        redis = try PrivateRedis.start(in: directory)
        let url = try RedisURL(parsing: redis.url)
        producer = RedisConnection(url: url)
        try producer.connect()
        let connection = RedisConnection(url: url)
        try connection.connect()
        // Streams capped near 10,000 entries, as ARK_STREAM_MAXLEN caps the real ones.
        bus = StreamBus(connection: connection, group: "bench", consumer: "bench-1")
        try bus.ensureGroups([Self.input])
    }

    func tearDown() {
        redis.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A state store in a temp directory.
final class StoreFixture: TearsDown, @unchecked Sendable {
    let directory: String
    /// The store as the readers open it.
    let store: StateStore
    /// The store's writer of outcomes.
    let writer: OutcomeWriter
    var nextTrace = 0

    /// `aletheia`: the writer opened as Aletheia opens it (`OutcomeWriter.aletheia`).
    init(prefix: String, aletheia: Bool = false) throws {
        directory = try makeBenchDirectory(prefix)
        let path = directory + "/ark_state.db"
        // As Aletheia runs in production: the audit tree signed once a second.
        let signer = AuditSigner(key: try Ed25519.PrivateKey.generate(), checkpointFile: directory + "/audit_checkpoints.jsonl")
        writer = try aletheia ? .aletheia(path: path, checkpointInterval: .seconds(300), signer: signer) : OutcomeWriter(path: path)
        store = try StateStore(path: path)
    }

    /// `count` passes as Aletheia builds them from `kennyEvent`, each with a new trace id.
    func passes(_ count: Int) -> [PassRecord] {
        let nowNs = wallClockNanoseconds()
        var out: [PassRecord] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            nextTrace += 1
            var p = PassRecord(
                traceID: "bench-\(nextTrace)", signalID: "sig-\(nextTrace)", symbol: "MSFT", source: "synthetic", verdict: .approved,
                reasons: [], policyHash: Graveyard.pinnedSHA256, complianceScore: 1, t0Ns: nowNs - 2_000_000, doneNs: nowNs,
                hrmEvalUs: 13.2, continuityOK: true, injectedViolation: nil, orderID: "ord-\(nextTrace)", event: kennyEvent)
            p.stageTimes = [StageTime(stage: .kyle, micros: 60), StageTime(stage: .joey, micros: 34), StageTime(stage: .hrm, micros: 179),
                            StageTime(stage: .kenny, micros: 343), StageTime(stage: .aletheia, micros: 46)]
            out.append(p)
        }
        return out
    }

    func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
