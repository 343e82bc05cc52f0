import ARKBus
import ARKCore
import ARKTestSupport
import Foundation
import Testing

/// Against a private redis-server (unix socket in a temp dir), started for this suite and
/// stopped by its pid.
@Suite(.serialized) final class StreamBusTests {
    let redis: RedisServer

    init() throws { redis = try RedisServer() }
    deinit { redis.shutdown() }

    func bus(_ consumer: String, group: String = "G", client: RedisConnection? = nil) throws -> StreamBus {
        StreamBus(connection: try client ?? redis.client(), group: group, consumer: consumer)
    }

    @Test func argvIsBinarySafe() throws {
        let c = try redis.client()
        let tricky: [UInt8] = Array("a b\r\n*3\r\n$3\r\nSET".utf8) + [0, 255, 10]
        #expect(try c.command(["SET", "k", .bytes(tricky)]) == .status("OK"))
        #expect(try c.command(["GET", "k"]) == .bulk(tricky))
        #expect(try c.command(["SET", "empty", .bytes([])]) == .status("OK"))
        #expect(try c.command(["GET", "empty"]) == .bulk([]))
        if case .error(let e) = try c.command(["NOSUCHCOMMAND"]) { #expect(e.contains("unknown command")) } else { Issue.record("expected an error reply") }
    }

    @Test func pipelineIsOneRoundTripOfManyCommands() throws {
        let c = try redis.client()
        let replies = try c.pipeline((0..<500).map { ["RPUSH", "list", .int($0)] })
        #expect(replies.count == 500 && replies.last == .integer(500))
    }

    @Test func publishConsumeAcknowledge() throws {
        let producer = try bus("p")
        let consumer = try bus("c1")
        try consumer.ensureGroups(["s1"])
        try consumer.ensureGroups(["s1"])  // idempotent
        try producer.commit(outputs: (0..<10).map { ("s1", Array("{\"n\":\($0)}".utf8)) }, deadLetters: [], acks: [])
        let batch = try consumer.read(["s1"], count: 100, blockMs: 100)
        #expect(batch.count == 10 && batch[3].payload == Array("{\"n\":3}".utf8))
        // One entry: the ten events went in one envelope.
        #expect(try consumer.pendingCount("s1") == 1)
        try consumer.commit(outputs: [("s2", [1])], deadLetters: [], acks: batch)
        #expect(try consumer.pendingCount("s1") == 0)
        #expect(try consumer.read(["s1"], count: 100, blockMs: 10).isEmpty)
        #expect(try redis.client().command(["XLEN", "s2"]) == .integer(1))
    }

    /// The commands read along with a blocking read run when the entry arrives, not when the
    /// read was sent: HRM's book is as fresh as a request made after the read.
    @Test func commandsReadAlongRunWhenTheBlockingReadReturns() throws {
        _ = try redis.client().command(["SET", "book", "before"])
        let consumer = try bus("c")
        try consumer.ensureGroups(["along"])
        // Another thread changes the book and adds the entry once the read is blocked.
        let redis = self.redis
        let writer = Thread {
            usleep(300_000)
            _ = try? redis.client().pipeline([["SET", "book", "after"], ["XADD", "along", "*", "event", "x"]])
        }
        writer.start()
        let (entries, along) = try consumer.read(["along"], count: 10, blockMs: 5_000, along: [["GET", "book"], ["GET", "nothing"]])
        #expect(entries.count == 1 && entries[0].payload == Array("x".utf8))
        #expect(along == [.bulk(Array("after".utf8)), .null])
        // A read that times out still answers the commands read along.
        let idle = try consumer.read(["along"], count: 10, blockMs: 10, along: [["GET", "book"]])
        #expect(idle.entries.isEmpty && idle.along == [.bulk(Array("after".utf8))])
    }

    @Test func entriesWrittenBeforeTheGroupExistAreProcessed() throws {
        let c = try redis.client()
        _ = try c.command(["XADD", "early", "*", "event", "x"])
        let consumer = try bus("c")
        try consumer.ensureGroups(["early"])
        #expect(try consumer.read(["early"], count: 10, blockMs: 10).count == 1)
    }

    @Test func idleEntriesOfADeadConsumerAreClaimedWithDeliveryCounts() throws {
        let dead = try bus("dead")
        try dead.ensureGroups(["s3"])
        try dead.commit(outputs: (0..<5).map { ("s3", [UInt8($0)]) }, deadLetters: [], acks: [])
        #expect(try dead.read(["s3"], count: 100, blockMs: 10).count == 5)  // delivered, never acked
        let healthy = try bus("healthy")
        #expect(try healthy.claim("s3", minIdleMs: 60_000, count: 100).isEmpty)  // not idle long enough
        usleep(150_000)
        let claimed = try healthy.claim("s3", minIdleMs: 100, count: 100)
        #expect(claimed.count == 5)
        #expect(claimed.allSatisfy { $0.deliveries == 2 })
        // Own pending entries can be re-read after a reconnect.
        let again = try healthy.read(["s3"], count: 100, blockMs: nil, history: true)
        #expect(again.map(\.id) == claimed.map(\.id))
        try healthy.commit(outputs: [], deadLetters: [DeadLetter(entry: claimed[0], reason: "test reason")], acks: claimed)
        #expect(try healthy.pendingCount("s3") == 0)
        let dl = try redis.client().command(["XRANGE", .text(Streams.deadLetter), "-", "+"])
        let fields = dl.array?.last?.array?[1].array?.compactMap { (v: RedisValue) in v.string } ?? []
        #expect(fields.contains("test reason") && fields.contains("s3") && fields.contains(claimed[0].id))
    }

    @Test func aTrimmedPendingEntryComesBackWithoutPayload() throws {
        let a = try bus("a")
        try a.ensureGroups(["s4"])
        try a.commit(outputs: [("s4", [1])], deadLetters: [], acks: [])
        let got = try a.read(["s4"], count: 1, blockMs: 10)
        _ = try redis.client().command(["XDEL", "s4", .text(got[0].id)])
        usleep(50_000)
        let claimed = try bus("b").claim("s4", minIdleMs: 10, count: 10)
        #expect(claimed.count == 1 && claimed[0].payload == nil && claimed[0].fieldNames.isEmpty)
    }

    @Test func acknowledgedEntriesAreTrimmedAndEveryEntryAGroupStillNeedsIsKept() throws {
        let c = try redis.client()
        _ = try c.pipeline((1...1000).map { ["XADD", "s5", .text("\($0)-0"), "event", .text("e\($0)")] })
        let g = try bus("g1", group: "G")
        let h = try bus("h1", group: "H")
        try g.ensureGroups(["s5"])
        try h.ensureGroups(["s5"])
        let gotG = try g.read(["s5"], count: 1000, blockMs: nil)
        try g.commit(outputs: [], deadLetters: [], acks: Array(gotG.prefix(800)))  // 801…1000 pending on G
        let gotH = try h.read(["s5"], count: 500, blockMs: nil)
        try h.commit(outputs: [], deadLetters: [], acks: gotH)  // 501…1000 not yet delivered to H
        try g.trimAcknowledged("s5")
        // H still needs 501 on; approximate trimming frees whole 100-entry nodes only.
        let left = try c.command(["XLEN", "s5"]).integer ?? -1
        #expect(left >= 500 && left <= 600, "XLEN \(left)")
        #expect(try c.command(["XRANGE", "s5", "501-0", "+"]).array?.count == 500)
        // Once both groups are done, all but Redis's last node goes.
        try h.commit(outputs: [], deadLetters: [], acks: try h.read(["s5"], count: 1000, blockMs: nil))
        try g.commit(outputs: [], deadLetters: [], acks: Array(gotG.dropFirst(800)))
        try h.trimAcknowledged("s5")
        #expect((try c.command(["XLEN", "s5"]).integer ?? -1) <= 100)
        // A stream without groups, or without the stream, is left alone.
        _ = try c.command(["XADD", "s6", "*", "event", "x"])
        try g.trimAcknowledged("s6")
        try g.trimAcknowledged("no-such-stream")
        #expect(try c.command(["XLEN", "s6"]) == .integer(1))
    }

    @Test func streamIDsOrderAsRedisOrdersThem() {
        #expect(StreamID("1-2")! < StreamID("1-10")!)
        #expect(StreamID("2-0")! > StreamID("1-99")!)
        #expect(StreamID("5")! == StreamID(ms: 5, seq: 0))
        #expect(StreamID("7-3")!.next.description == "7-4")
        #expect(StreamID("x-1") == nil && StreamID("1-2-3") == nil)
    }

    @Test func watchAbortsTheTransactionWhenTheKeyChanged() throws {
        let c1 = try redis.client()
        let c2 = try redis.client()
        let b1 = try bus("w", client: c1)
        _ = try c1.command(["WATCH", "book"])
        _ = try c2.command(["SET", "book", "changed"])
        #expect(try b1.commit(outputs: [("s5", [1])], deadLetters: [], acks: [], extra: [["SET", "book", "mine"]]) == false)
        #expect(try c2.command(["GET", "book"]) == .bulk(Array("changed".utf8)))
        #expect(try c2.command(["XLEN", "s5"]) == .integer(0))
    }

    @Test func aLostConnectionIsAConnectionErrorAndReconnectWorks() throws {
        let c = try redis.client()
        _ = try c.command(["SET", "persist", "1"])
        redis.stop()
        #expect(throws: RedisError.self) { try c.command(["PING"]) }
        #expect(!c.isConnected)
        #expect(throws: RedisError.self) { try c.connect(timeout: .milliseconds(200)) }
        try redis.start()
        try c.connect()
        #expect(try c.command(["GET", "persist"]) == .bulk(Array("1".utf8)))  // append-only file kept it
    }
}

@Suite struct BackoffTests {
    @Test func growsCappedWithJitter() {
        var b = Backoff(base: .milliseconds(50), cap: .seconds(5))
        var g = SystemRandomNumberGenerator()
        var ceilings: [Duration] = []
        for _ in 0..<12 {
            let c = b.ceiling
            ceilings.append(c)
            let wait = b.next(using: &g)
            #expect(wait >= .zero && wait <= c)
        }
        #expect(ceilings[0] == .milliseconds(50) && ceilings[1] == .milliseconds(100) && ceilings[3] == .milliseconds(400))
        #expect(ceilings.last == .seconds(5))
        b.reset()
        #expect(b.ceiling == .milliseconds(50))
    }
}
