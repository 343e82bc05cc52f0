import ARKBus
import ARKCore
import ARKTestSupport
import Testing

/// The control-plane keys through their one owner, against a private redis-server.
@Suite(.serialized) final class ControlPlaneTests {
    let redis: RedisServer

    init() throws { redis = try RedisServer() }
    deinit { redis.shutdown() }

    func beat(_ instance: String, stage: Stage = .kyle, ts: Int64 = 1) -> HeartbeatRecord {
        HeartbeatRecord(instance: instance, stage: stage.rawValue, host: "h", pid: 7, processed: 1, failed: 0, pending: 0, p50Ms: 1, p95Ms: 2, tsNs: ts)
    }

    @Test func heartbeatsArePublishedReadAndForgotten() throws {
        let control = ControlPlane(try redis.client())
        try control.publish(beat("Kyle-h-7"))
        try control.publish(beat("Joey-h-7", stage: .joey))
        try control.publish(beat("Kyle-h-7", ts: 2))  // a newer beat replaces the older
        // A field no reader understands is counted, never returned.
        _ = try redis.client().command(["HSET", .text(Streams.heartbeats), "garbage", "{not json"])
        #expect(try control.heartbeatCount() == 3)
        let beats = try control.heartbeats().sorted { $0.instance < $1.instance }
        #expect(beats.map(\.instance) == ["Joey-h-7", "Kyle-h-7"] && beats[1].tsNs == 2)
        try control.forgetHeartbeat(of: "Kyle-h-7")
        #expect(try control.heartbeats().map(\.instance) == ["Joey-h-7"])
    }

    @Test func theQuarantineListRoundTrips() throws {
        let control = ControlPlane(try redis.client())
        try control.quarantine("HRM-h-1", QuarantineEntry(stage: .hrm, reason: "slow", sinceNs: 5))
        try control.quarantine("HRM-h-2@s1", QuarantineEntry(stage: .hrm, reason: "failing", sinceNs: 6))
        #expect(try control.quarantinedNames() == ["HRM-h-1", "HRM-h-2@s1"])
        let listed = try control.quarantined().sorted { $0.instance < $1.instance }
        #expect(listed.map(\.entry) == [QuarantineEntry(stage: .hrm, reason: "slow", sinceNs: 5), QuarantineEntry(stage: .hrm, reason: "failing", sinceNs: 6)])
        try control.release("HRM-h-1")
        #expect(try control.quarantinedNames() == ["HRM-h-2@s1"])
    }

    @Test func theCanaryRouteGrowsItsVersionAndIsConfirmedPerKyle() throws {
        let control = ControlPlane(try redis.client())
        #expect(try control.canaryRoute() == .off)
        let first = try control.setCanaryRoute(percent: 10, runID: "r1")
        let second = try control.setCanaryRoute(percent: 50, runID: "r1")
        #expect(first.version == 1 && second.version == 2)
        #expect(try control.canaryRoute() == CanaryRoute(percent: 50, version: 2, runID: "r1"))
        try control.confirmRoute(1, by: "Kyle-a-1")
        try control.confirmRoute(2, by: "Kyle-b-2")
        #expect(try control.routeConfirmations() == ["Kyle-a-1": 1, "Kyle-b-2": 2])
        try control.clearCanaryRoute()
        #expect(try control.canaryRoute() == .off && control.routeConfirmations().isEmpty)
    }

    @Test func aWrongTypeKeyIsAnErrorNotAnEmptyAnswer() throws {
        _ = try redis.client().command(["SET", .text(Streams.quarantine), "x"])
        defer { _ = try? redis.client().command(["DEL", .text(Streams.quarantine)]) }
        #expect(throws: RedisError.self) { try ControlPlane(try self.redis.client()).quarantinedNames() }
    }
}

/// Which consumers' entries are taken over at once: only those of exited processes of this host.
@Suite struct ExitedConsumerTests {
    @Test func onlyAnExitedProcessOfThisHostAndStageIsDead() {
        let exited: (Int32) -> Bool = { $0 == 7 }
        #expect(isExitedLocalConsumer("Kenny-h-7@s1", stage: .kenny, host: "h", hasExited: exited))
        #expect(isExitedLocalConsumer("Kenny-h-a-7", stage: .kenny, host: "h-a", hasExited: exited))
        #expect(!isExitedLocalConsumer("Kenny-h-8", stage: .kenny, host: "h", hasExited: exited))
        #expect(!isExitedLocalConsumer("Kenny-other-7", stage: .kenny, host: "h", hasExited: exited))
        #expect(!isExitedLocalConsumer("HRM-h-7", stage: .kenny, host: "h", hasExited: exited))
        #expect(!isExitedLocalConsumer("bench-consumer", stage: .kenny, host: "h", hasExited: exited))
    }
}
