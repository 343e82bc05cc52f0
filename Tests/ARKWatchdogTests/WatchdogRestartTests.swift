import ARKBus
import ARKCore
import ARKState
import ARKTestSupport
import Foundation
import Testing

@testable import ARKWatchdog

/// The watchdog actor against a real Redis and a real state store, driven tick by tick with
/// heartbeats written as agents write them.
@Suite final class WatchdogRestartTests {
    let redis: RedisServer
    let dir: TempDir

    init() throws {
        redis = try RedisServer()
        dir = try TempDir("ark-watchdog")
    }
    deinit {
        redis.shutdown()
        dir.remove()
    }

    func publish(_ c: RedisConnection, _ instance: String, consecutive: Int = 0, at ts: Int64 = wallClockNanoseconds()) throws {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("instance"); w.string(instance)
        w.key("stage"); w.string("Kenny")
        w.key("consecutive_failures"); w.int(Int64(consecutive))
        w.key("ts_ns"); w.int(ts)
        w.endObject()
        _ = try c.command(["HSET", .text(Streams.heartbeats), .text(instance), .bytes(w.bytes)])
    }

    func quarantineList(_ c: RedisConnection) throws -> [String] {
        try c.command(["HKEYS", .text(Streams.quarantine)]).array?.compactMap(\.string).sorted() ?? []
    }

    @Test func aRestartedWatchdogKeepsTheQuarantineAndItsBackOff() async throws {
        var settings = WatchdogSettings()
        settings.releaseBackoffNs = 10_000_000_000
        settings.probationNs = 60_000_000_000
        let path = dir.path + "/state.db"
        let c = try redis.client()
        let t0 = wallClockNanoseconds()
        func beats(at t: Int64, consecutive: Int) throws {
            try publish(c, "Kenny-a-1", consecutive: consecutive, at: t)
            try publish(c, "Kenny-b-2", at: t)
        }
        try beats(at: t0, consecutive: 5)
        let first = Watchdog(settings: settings, store: try StateStore(path: path), redisURL: redis.url)
        try await first.tick(now: t0)
        #expect(try quarantineList(c) == ["Kenny-a-1"])
        let q = try #require(try StateStore(path: path).watchdogEvents().first)
        #expect(q.action == "quarantine" && q.instance == "Kenny-a-1" && q.figures.contains("\"consecutive_failures\":5"))

        // A new watchdog (a restart) reads the standing back: still quarantined, same offence,
        // and the list in Redis is restored even if something removed it meanwhile.
        _ = try c.command(["DEL", .text(Streams.quarantine)])
        let second = Watchdog(settings: settings, store: try StateStore(path: path), redisURL: redis.url)
        try beats(at: t0 + 5_000_000_000, consecutive: 5)
        try await second.tick(now: t0 + 5_000_000_000)
        #expect(try quarantineList(c) == ["Kenny-a-1"])
        let standing = try #require(try StateStore(path: path).watchdogInstances().first { $0.instance == "Kenny-a-1" })
        #expect(standing.status == "quarantined" && standing.offences == 1 && standing.releaseAtNs == t0 + 10_000_000_000)

        // The back-off ends: released onto probation, the stale failure count ignored.
        try beats(at: t0 + 11_000_000_000, consecutive: 5)
        try await second.tick(now: t0 + 11_000_000_000)
        #expect(try quarantineList(c) == [])
        #expect(try StateStore(path: path).watchdogInstances().first { $0.instance == "Kenny-a-1" }?.status == "probation")
        #expect(try StateStore(path: path).watchdogEvents().map(\.action) == ["quarantine", "release"])
    }

    @Test func anOperatorReleaseIsSeenByARunningWatchdog() async throws {
        var settings = WatchdogSettings()
        settings.releaseBackoffNs = 600_000_000_000
        let path = dir.path + "/release.db"
        let c = try redis.client()
        try publish(c, "Kenny-a-1", consecutive: 5)
        try publish(c, "Kenny-b-2")
        let watchdog = Watchdog(settings: settings, store: try StateStore(path: path), redisURL: redis.url)
        try await watchdog.tick()
        #expect(try quarantineList(c) == ["Kenny-a-1"])
        let released = try Watchdog.release(selector: "Kenny", settings: settings, store: try StateStore(path: path), connection: c)
        #expect(released.count == 1)
        #expect(try quarantineList(c) == [])
        // The running watchdog does not put it back from its memory.
        try publish(c, "Kenny-a-1")
        try publish(c, "Kenny-b-2")
        try await watchdog.tick()
        #expect(try quarantineList(c) == [])
        #expect(try StateStore(path: path).watchdogEvents().last.map { ($0.action, $0.by) } ?? ("", "") == ("release", "operator"))
    }
}
