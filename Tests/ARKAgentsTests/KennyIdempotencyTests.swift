@testable import ARKAgents
import ARKBus
import ARKCore
import ARKTestSupport
import Logging
import Synchronization
import Testing

/// Kenny's idempotency across the UTC day roll and up to the end of its order records, on a
/// real Redis with a clock the test moves: a redelivered trace never makes a second order,
/// and one older than the records are kept is refused rather than filled again.
@Suite struct KennyIdempotencyTests {
    final class TestClock: @unchecked Sendable {
        let now = Atomic<Int64>(0)
    }

    /// 2026-12-02T23:59:59.900Z.
    static let lateEvening: Int64 = 1_796_255_999_900_000_000
    static let hour: Int64 = 3_600_000_000_000

    func approvedBuy(_ traceID: String, t0: Int64) -> [UInt8] {
        var e = Event(traceID: traceID, id: traceID, symbol: "AAPL", price: 100, volume: 1, ts: Double(t0) / 1e9, source: "test", t0Ns: t0,
                      action: "buy", positionSizePct: 0.01, leverage: 1, stopLoss: 98, riskRewardRatio: 2)
        e.decision = Decision(approved: true, violations: [], warnings: [], rulesChecked: 11, complianceScore: 1, policyHash: "h", evalNs: 1)
        e.hops = [Hop(stage: .kyle, instance: "k", inNs: t0, outNs: t0 + 1)]
        return EventCodec.encode(e)
    }

    @Test func aRedeliveredTraceNeverFillsTwiceAcrossTheDayRollAndTooOldIsRefused() throws {
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let clock = TestClock()
        clock.now.store(Self.lateEvening + 50_000_000, ordering: .relaxed)  // 23:59:59.950
        var config = ARKConfig()
        config.graveyardDir = Repo.graveyard
        let kenny = Kenny(config: config) { clock.now.load(ordering: .relaxed) }
        let connection = try redis.client()
        let bus = StreamBus(connection: connection, group: Stage.kenny.group, consumer: "Kenny-test-1")
        try bus.ensureGroups([Stage.kenny.inputStream])
        let payload = approvedBuy("trace-1", t0: Self.lateEvening)
        // The shard's books are proven against the audit (Aletheia's marker, as on a running ARK).
        _ = try connection.command(["HSET", .text(Shard.untagged.ledger), "restored_ns", "0"])

        /// Queues the trace again (as a redelivery would bring it), runs Kenny's batch, and
        /// says what Kenny made of it.
        func deliver() throws -> Execution {
            _ = try connection.command(["XADD", .text(Stage.kenny.inputStream), "*", "event", .bytes(payload)])
            let batch = try bus.read([Stage.kenny.inputStream], count: 10, blockMs: nil)
            #expect(batch.count == 1)
            _ = try kenny.handle(batch, context: BatchContext(bus: bus, instance: "Kenny-test-1", readNs: clock.now.load(ordering: .relaxed), logger: Logger(label: "test")))
            let out = try connection.command(["XREVRANGE", .text(Stage.aletheia.inputStream), "+", "-", "COUNT", "1"])
            guard case .bulk(let bytes)? = out.array?.first?.array?[1].array?[1] else { throw TestSetupError("no output: \(out)") }
            return try #require(try EventCodec.decode(bytes).execution)
        }

        #expect(try deliver().status == .filled)
        // Past midnight UTC: a new day, the same trace.
        clock.now.store(Self.lateEvening + 1_100_000_000, ordering: .relaxed)  // 00:00:01 the next day
        #expect(try deliver().status == .duplicate)
        // 46 h later: the record (kept 48 h after its last write) still answers.
        clock.now.store(Self.lateEvening + 46 * Self.hour, ordering: .relaxed)
        #expect(try deliver().status == .duplicate)
        // The record is in the hash of the trace's own day, living 48 h.
        let ttl = try connection.command(["TTL", "ark:orders:2026-12-02"]).integer ?? -1
        #expect(ttl > 47 * 3600 && ttl <= 48 * 3600)
        // Past the window the record is not trusted to be there: refused, never filled again.
        _ = try connection.command(["DEL", "ark:orders:2026-12-02"])  // as if it had expired
        clock.now.store(Self.lateEvening + 47 * Self.hour + 1_000_000_000, ordering: .relaxed)
        let late = try deliver()
        #expect(late.status == .limited && late.violations.map(\.rule) == ["idempotency_window"], "\(late)")
        // The refusal is the trace's outcome now: it comes back as it, never as a fill.
        let kept = try connection.command(["HGET", "ark:orders:2026-12-02", "trace-1"])
        guard case .bulk(let bytes) = kept else { Issue.record("the refusal was not recorded: \(kept)"); return }
        #expect(try EventCodec.decodeExecution(bytes).violations.map(\.rule) == ["idempotency_window"])
        #expect(try deliver().status == .duplicate)
    }
}
