import ARKBus
import ARKCore
import ARKTestSupport
import Foundation
import Testing

@Suite("Cluster slots")
struct ClusterSlotTests {
    @Test func crc16IsXmodem() {
        // The check value of CRC-16/XMODEM, and the slot Redis's documentation gives for "foo".
        #expect(ClusterSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(ClusterSlot.of("foo") == 12182)
    }

    @Test func hashTagsDecideTheSlot() {
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("{user1000}.followers"))
        #expect(ClusterSlot.of("ark:{s3}:kyle") == ClusterSlot.of("s3"))
        #expect(ClusterSlot.of("ark:{s3}:portfolio") == Shard.tagged(3).slot)
        // An empty tag does not count: the whole key is hashed.
        #expect(ClusterSlot.of("foo{}{bar}") == ClusterSlot.of(Array("foo{}{bar}".utf8)))
        #expect(ClusterSlot.of("foo{}{bar}") != ClusterSlot.of("bar"))
        // Only the first tag counts.
        #expect(ClusterSlot.of("foo{{bar}}zap") == ClusterSlot.of("{bar"))
        #expect(ClusterSlot.of("foo{bar}{zap}") == ClusterSlot.of("bar"))
    }

    @Test func anEmptyMapServesNoSlot() throws {
        let map = ClusterMap(owners: [RedisURL.Endpoint?](repeating: nil, count: ClusterSlot.count))
        #expect(map.uncovered == ClusterSlot.count)
        #expect(map.primaries.isEmpty)
    }

    @Test func redirectsAreParsedStrictly() {
        let moved = ClusterRedirect("MOVED 3999 127.0.0.1:6381")
        #expect(moved?.isMoved == true && moved?.slot == 3999 && moved?.endpoint == .tcp(host: "127.0.0.1", port: 6381))
        #expect(ClusterRedirect("ASK 0 [::1]:7000")?.endpoint == .tcp(host: "[::1]", port: 7000))
        #expect(ClusterRedirect("ASK 16383 h:1")?.isMoved == false)
        for bad in ["MOVED 16384 h:1", "MOVED -1 h:1", "MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 :7000", "MOVED 1 h", "MOVED x h:1",
                    "MOVED 1 h:1 extra", "moved 1 h:1", "ERR MOVED 1 h:1", "", "CLUSTERDOWN Hash slot not served"] {
            #expect(ClusterRedirect(bad) == nil, "\(bad)")
        }
    }

    @Test func seedListsParse() throws {
        let u = try RedisURL(parsing: "redis://:pw@10.0.0.1:7000,10.0.0.2:7001,h3/0")
        #expect(u.seeds == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 7001), .tcp(host: "h3", port: 6379)])
        #expect(u.endpoint == .tcp(host: "10.0.0.1", port: 7000))
        #expect(u.password == "pw")
        #expect(u.description == "redis://:***@10.0.0.1:7000,10.0.0.2:7001,h3:6379/0")
        #expect(throws: RedisURL.ParseError.self) { try RedisURL(parsing: "redis://h1:7000,,h2:7001") }
        #expect(throws: RedisURL.ParseError.self) { try RedisURL(parsing: "redis://h1:7000,h2:99999") }
    }

    @Test func accountsStayOnOneShard() {
        let layout = ShardLayout(count: 4)
        var seen: Set<Int> = []
        for i in 0..<400 {
            let a = "acct-\(i)"
            #expect(layout.shard(forAccount: a) == layout.shard(forAccount: a))
            seen.insert(layout.shard(forAccount: a).index)
        }
        #expect(seen == [0, 1, 2, 3])
        #expect(ShardLayout.single.shard(forAccount: "x") == .untagged)
        #expect(Shard.untagged.stream(.kyle) == "ark:kyle")
        #expect(Shard.tagged(2).stream(.hrm, on: .canary) == "ark:{s2}:canary:hrm")
        #expect(Shard(stream: "ark:{s12}:joey") == .tagged(12))
        #expect(Shard(stream: "ark:joey") == .untagged)
        #expect(Shard(stream: "other") == nil)
    }
}

/// A real three-primary, three-replica cluster: the connection's routing against Redis's own.
@Suite("Cluster connection", .serialized)
final class ClusterConnectionTests {
    let cluster: RedisCluster

    init() throws { cluster = try RedisCluster() }
    deinit { cluster.shutdown() }

    @Test func slotsAgreeWithRedis() throws {
        let node = try cluster.nodes[0].client()
        var rng = SplitMix64(seed: 7)
        for i in 0..<500 {
            let length = Int(rng.next() % 24)
            var key = (0..<length).map { _ in UInt8(32 + rng.next() % 95) }
            if i % 5 == 0 { key = Array("ark:{s\(i)}:kyle".utf8) }
            let reply = try node.command(["CLUSTER", "KEYSLOT", .bytes(key)])
            #expect(reply.integer == Int64(ClusterSlot.of(key)), "key \(String(decoding: key, as: UTF8.self))")
        }
    }

    @Test func aShardConnectionReachesItsPrimaryAndCommitsAcrossItsKeys() throws {
        let url = try cluster.url
        for shard in (0..<6).map(Shard.tagged) {
            let c = RedisConnection(url: url, slotKey: shard.slotKey)
            try c.connect()
            #expect(c.isCluster)
            #expect(c.node == (try cluster.primary(for: shard.slotKey)).endpoint)
            // One transaction over the shard's streams and book: the keys share the slot.
            let replies = try c.pipeline([
                ["MULTI"],
                ["XADD", .text(shard.stream(.joey)), "*", "event", "{}"],
                ["XADD", .text(shard.deadLetter), "*", "event", "{}"],
                ["HSET", .text(shard.portfolio), "book", "x"],
                ["EXEC"],
            ])
            #expect(replies.last?.array?.count == 3, "\(replies)")
            // A single command on a key elsewhere goes to that key's node.
            #expect(try c.command(["HSET", .text(Streams.heartbeats), .text("probe-\(shard.index)"), "1"]).integer != nil)
        }
        let anyNode = RedisConnection(url: url)
        try anyNode.connect()
        #expect(try anyNode.command(["HLEN", .text(Streams.heartbeats)]).integer == 6)
        #expect(try anyNode.command(["XLEN", .text(Shard.tagged(4).stream(.joey))]).integer == 1)
    }

    @Test func aMovedSlotIsFollowed() throws {
        let url = try cluster.url
        let c = RedisConnection(url: url)
        try c.connect()
        // The side connection learns the key's node from the map; a stale map is corrected by
        // the node's MOVED reply.
        for i in 0..<50 { #expect(try c.command(["SET", .text("k\(i)"), "v"]) == .status("OK")) }
        for i in 0..<50 { #expect(try c.command(["GET", .text("k\(i)")]) == .bulk(Array("v".utf8))) }
    }

    @Test func aDatabaseOtherThanZeroIsRefused() throws {
        var url = try cluster.url
        url.database = 2
        let c = RedisConnection(url: url)
        #expect(throws: RedisError.connection("a Redis Cluster has database 0 only; REDIS_URL names database 2")) { try c.connect() }
    }

    /// kill -9 of a shard's primary: the connection reports the loss, and reconnecting finds the
    /// promoted replica, which has what was confirmed by WAIT before the kill.
    @Test func aKilledPrimaryIsReplacedByItsReplica() throws {
        let url = try cluster.url
        let shard = Shard.tagged(1)
        let c = RedisConnection(url: url, commandTimeout: .seconds(5), slotKey: shard.slotKey)
        try c.connect()
        for i in 0..<100 { _ = try c.command(["XADD", .text(shard.stream(.kyle)), "*", "n", .int(i)]) }
        // A replica made a moment ago may still be syncing: WAIT until it has the writes.
        #expect(try waitFor(timeout: 20) { try c.command(["WAIT", "1", "500"]).integer == 1 })
        let old = try cluster.primary(for: shard.slotKey)
        old.kill9()
        #expect(throws: RedisError.self) { _ = try c.command(["XLEN", .text(shard.stream(.kyle))]) }
        #expect(cluster.waitForNewPrimary(for: shard.slotKey, replacing: old) != nil)
        let ok = waitFor(timeout: 20, interval: 0.2) { (try? c.connect()) != nil }
        #expect(ok)
        #expect(c.node != old.endpoint)
        #expect(try c.command(["XLEN", .text(shard.stream(.kyle))]).integer == 100)
        try old.restart()  // it rejoins as a replica of the new primary
        #expect(waitFor(timeout: 30, interval: 0.2) { self.cluster.isHealthy })
    }

    /// The intake on a cluster: each signal to its account's shard, each given a trace id of
    /// its own (entry ids can repeat after a failover), confirmed only once WAIT says a replica
    /// has it; with the shard's replica gone, not confirmed.
    @Test func theIntakeConfirmsOnlyWhatAReplicaHas() async throws {
        let layout = ShardLayout(count: 4)
        let queue = SignalQueue(url: try cluster.url, size: 1, backlogBound: 1_000_000, layout: layout, replicaTimeoutMs: 300)
        let signals = (0..<40).map { Array("{\"account\":\"acct-\($0)\",\"symbol\":\"AAPL\",\"price\":1,\"volume\":1}".utf8) }
        // A replica created a moment ago may still be syncing: retry until every shard confirms.
        var ids: [String] = []
        #expect(await waitForAsync(timeout: 20) { (try? await queue.enqueue(signals)).map { ids = $0; return true } ?? false })
        #expect(ids.count == 40 && Set(ids).count == 40 && ids.allSatisfy { $0.hasPrefix("ark-") && $0.count == 36 })
        let c = RedisConnection(url: try cluster.url)
        try c.connect()
        var total: Int64 = 0
        for shard in layout.shards {
            let n = try c.command(["XLEN", .text(shard.stream(.kyle))]).integer ?? 0
            #expect(n > 0, "shard \(shard) got none")
            total += n
        }
        #expect(total >= 40)
        // Shard 2's replica gone: its signals reach the primary but are not confirmed.
        let shard = Shard.tagged(2)
        try cluster.replica(for: shard.slotKey).kill9()
        let account = (0..<100).map { "acct-\($0)" }.first { layout.shard(forAccount: $0) == shard }!
        do {
            _ = try await queue.enqueue([Array("{\"account\":\"\(account)\",\"symbol\":\"AAPL\",\"price\":1,\"volume\":1}".utf8)])
            Issue.record("confirmed without a replica")
        } catch {
            #expect(error == .notReplicated(replicas: 0, wanted: 1, shard: "s2"))
        }
        await queue.shutdown()
    }
}
