@testable import ARKAgents
import ARKBus
import ARKCore
import ARKTestSupport
import Logging
import Testing

/// Kyle on a real Redis with an envelope on its input: a producer may write several signals in
/// one entry's `events`, and each must stay a trace of its own.
@Suite struct KyleEnvelopeTests {
    @Test func eachSignalOfAProducersEnvelopeGetsATraceOfItsOwn() throws {
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let connection = try redis.client()
        let bus = StreamBus(connection: connection, group: Stage.kyle.group, consumer: "Kyle-test-1")
        try bus.ensureGroups([Stage.kyle.inputStream])
        let signal = #"{"symbol":"AAPL","price":101.5,"volume":10,"source":"test","action":"buy","position_size_pct":0.01,"leverage":1,"stop_loss":99,"risk_reward_ratio":2}"#
        let named = #"{"trace_id":"named-1","symbol":"MSFT","price":50,"volume":1,"source":"test"}"#
        let id = try #require(try connection.command(["XADD", .text(Stage.kyle.inputStream), "*", "events", .text([signal, #"{"price":"#, signal, named].joined(separator: "\n"))]).string)
        let batch = try bus.read([Stage.kyle.inputStream], count: 10, blockMs: nil)
        #expect(batch.count == 4)
        let kyle = Kyle(config: ARKConfig())
        let result = try kyle.handle(batch, context: BatchContext(bus: bus, instance: "Kyle-test-1", readNs: wallClockNanoseconds(), logger: Logger(label: "test")))
        #expect(result == BatchResult(processed: 3, failed: 0))
        func traces(_ stream: String) throws -> [String] {
            let entries = try connection.command(["XRANGE", .text(stream), "-", "+"]).array ?? []
            return try entries.flatMap { entry -> [String] in
                let fields = entry.array?.last?.array ?? []
                guard fields.count == 2, case .bulk(let bytes) = fields[1] else { return [] }
                let events = fields[0].string == Envelope.field ? bytes.withUnsafeBytes { Envelope.split($0) } : [bytes]
                return try events.map { try EventCodec.decode($0).traceID }
            }
        }
        #expect(try traces(Stage.joey.inputStream) == ["ark-\(id)-0", "ark-\(id)-2", "named-1"])
        #expect(try traces(Stage.aletheia.inputStream) == ["ark-\(id)-1"])
        #expect(try bus.pendingCount(Stage.kyle.inputStream) == 0)
    }
}
