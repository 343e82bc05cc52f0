import ARKAPI
import ARKBus
import ARKCore
import ARKTestSupport
import Testing

/// The API's way into `ark:kyle` against a real Redis: it refuses while Kyle's unread
/// backlog is over ARK_STREAM_MAXLEN, and a Redis out of memory refuses a whole request, so a
/// client is told and nothing half-lands.
@Suite struct SignalQueueTests {
    func payloads(_ n: Int) -> [[UInt8]] {
        (0..<n).map { Array("{\"trace_id\":\"q-\($0)\",\"symbol\":\"AAPL\",\"price\":1,\"volume\":1}".utf8) }
    }

    @Test func refusesWhileKylesBacklogIsOverItsBoundAndTakesAgainWhenKyleCatchesUp() async throws {
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let c = try redis.client()
        _ = try c.command(["XGROUP", "CREATE", .text(Stage.kyle.inputStream), .text(Stage.kyle.group), "0", "MKSTREAM"])
        let queue = SignalQueue(url: redis.url, size: 1, backlogBound: 1000)
        defer { Task { await queue.shutdown() } }
        #expect(try await queue.enqueue(payloads(1001)).count == 1001)
        await #expect(throws: EnqueueError.backlogFull(backlog: 1001, bound: 1000)) { try await queue.enqueue(payloads(1)) }
        #expect(try c.command(["XLEN", .text(Stage.kyle.inputStream)]) == .integer(1001))
        // Kyle reads 600 and acknowledges them: 401 left, under the bound.
        let read = try c.command(["XREADGROUP", "GROUP", .text(Stage.kyle.group), "k", "COUNT", "600", "STREAMS", .text(Stage.kyle.inputStream), ">"])
        let ids = read.array?.first?.array?[1].array?.compactMap { $0.array?.first?.string } ?? []
        #expect(ids.count == 600)
        _ = try c.command(["XACK", .text(Stage.kyle.inputStream), .text(Stage.kyle.group)] + ids.map { .text($0) })
        #expect(try await queue.enqueue(payloads(3)).count == 3)
    }

    @Test func aRedisOutOfMemoryRefusesTheWholeRequestAndWritesNothing() async throws {
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let c = try redis.client()
        let queue = SignalQueue(url: redis.url, size: 1, backlogBound: 1_000_000)
        defer { Task { await queue.shutdown() } }
        #expect(try await queue.enqueue(payloads(2)).count == 2)
        _ = try c.command(["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        _ = try c.command(["CONFIG", "SET", "maxmemory", "1"])
        do {
            _ = try await queue.enqueue(payloads(50))
            Issue.record("a Redis out of memory took the signals")
        } catch {
            guard case .redis(let r) = error else { Issue.record("\(error)"); return }
            #expect(r.isServerUnavailable, "\(r)")
        }
        _ = try c.command(["CONFIG", "SET", "maxmemory", "0"])
        #expect(try c.command(["XLEN", .text(Stage.kyle.inputStream)]) == .integer(2))
    }
}
