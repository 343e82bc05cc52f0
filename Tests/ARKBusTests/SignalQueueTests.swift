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

    /// A claimed trace id is queued once per content: the same digest again is queued (a
    /// retry), another digest is a conflict and writes nothing, and of many requests racing
    /// with one trace id and different contents exactly one is queued.
    @Test func aClaimedTraceIDIsQueuedOncePerContent() async throws {
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let c = try redis.client()
        let queue = SignalQueue(url: redis.url, size: 4, backlogBound: 1_000_000)
        defer { Task { await queue.shutdown() } }
        let p = payloads(3)
        let first = try await queue.enqueue([p[0], p[1]], claims: [TraceClaim(traceID: "q-0", digest: "d0"), nil])
        #expect(first.allSatisfy { if case .queued = $0 { true } else { false } })
        #expect(try await queue.enqueue([p[0]], claims: [TraceClaim(traceID: "q-0", digest: "d0")]).count == 1)
        let other = try await queue.enqueue([p[2], p[1]], claims: [TraceClaim(traceID: "q-0", digest: "other"), nil])
        #expect(other[0] == .conflict(traceID: "q-0"))
        if case .queued = other[1] {} else { Issue.record("the unclaimed payload was not queued: \(other)") }
        #expect(try c.command(["XLEN", .text(Stage.kyle.inputStream)]) == .integer(4))
        let day = String(iso8601(wallClockNanoseconds()).prefix(10))
        #expect(try c.command(["HGET", .text(Shard.untagged.intake(day: day)), "q-0"]).string == "d0")
        #expect((try c.command(["TTL", .text(Shard.untagged.intake(day: day))]).integer ?? 0) > 86_400)

        let results = try await withThrowingTaskGroup(of: Enqueued.self) { group in
            for i in 0..<20 {
                group.addTask { try await queue.enqueue([p[1]], claims: [TraceClaim(traceID: "race", digest: "d\(i)")])[0] }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { if case .queued = $0 { true } else { false } }.count == 1, "\(results)")
        #expect(try c.command(["XLEN", .text(Stage.kyle.inputStream)]) == .integer(5))
    }
}
