import ARKCore
import ARKState
import ARKStoreWriter
import Testing

@testable import ARKWatchdog

let s = 1_000_000_000 as Int64

/// A heartbeat of `instance` (a Kenny unless said) at `t` seconds.
func beat(_ instance: String, _ t: Int64, stage: Stage = .kenny, ok: Int = 0, failed: Int = 0, consecutive: Int = 0,
          p95: Double = 5, busy: Double = 0) -> HeartbeatRecord {
    HeartbeatRecord(instance: instance, stage: stage.rawValue, host: "h", pid: 1, processed: ok, failed: failed, pending: 0,
                    p50Ms: 1, p95Ms: p95, tsNs: t * s, batchesOK: ok, batchesFailed: failed, consecutiveFailures: consecutive, busyMs: busy)
}

func settings(_ change: (inout WatchdogSettings) -> Void = { _ in }) -> WatchdogSettings {
    var w = WatchdogSettings()
    w.releaseBackoffNs = 10 * s
    w.releaseBackoffMaxNs = 35 * s
    w.probationNs = 20 * s
    w.failureWindowNs = 60 * s
    change(&w)
    return w
}

func quarantines(_ actions: [WatchdogAction]) -> [String] {
    actions.compactMap { if case .quarantine(let i, _, _, _, _, _) = $0 { i } else { nil } }
}

func trips(_ actions: [WatchdogAction]) -> [Trip] {
    actions.compactMap { if case .quarantine(_, _, let t, _, _, _) = $0 { t } else { nil } }
}

@Suite struct WatchdogPolicyTests {
    let policy = WatchdogPolicy(settings: settings())

    @Test func fiveFailuresInARowQuarantineFourOnlyWarn() {
        var states: [String: InstanceState] = [:]
        var a = policy.step(&states, heartbeats: [beat("k1", 1, ok: 5, failed: 4, consecutive: 4), beat("k2", 1, ok: 9)], nowNs: 1 * s)
        #expect(quarantines(a).isEmpty)
        #expect(a.contains { if case .warn("k1", _, .consecutiveFailures(4), _) = $0 { true } else { false } })
        a = policy.step(&states, heartbeats: [beat("k1", 2, ok: 5, failed: 5, consecutive: 5), beat("k2", 2, ok: 10)], nowNs: 2 * s)
        #expect(quarantines(a) == ["k1"])
        #expect(trips(a) == [.consecutiveFailures(count: 5)])
        #expect(states["k1"]?.status == .quarantined && states["k1"]?.offences == 1)
        #expect(states["k1"]?.releaseAtNs == 12 * s)
    }

    @Test func failureRateNeedsTheMinimumRequestCount() {
        var states: [String: InstanceState] = [:]
        _ = policy.step(&states, heartbeats: [beat("k1", 0), beat("k2", 0)], nowNs: 0)
        // 1 failure out of 2 batches is 50 %, but too few to judge.
        var a = policy.step(&states, heartbeats: [beat("k1", 1, ok: 1, failed: 1, consecutive: 1), beat("k2", 1, ok: 2)], nowNs: 1 * s)
        #expect(quarantines(a).isEmpty)
        // 3 of 12 (25 %) over the window: quarantined.
        a = policy.step(&states, heartbeats: [beat("k1", 2, ok: 9, failed: 3, consecutive: 0), beat("k2", 2, ok: 12)], nowNs: 2 * s)
        #expect(trips(a) == [.failureRate(failed: 3, attempts: 12)])
    }

    @Test func failuresOutsideTheWindowDoNotCount() {
        var states: [String: InstanceState] = [:]
        _ = policy.step(&states, heartbeats: [beat("k1", 0), beat("k2", 0)], nowNs: 0)
        // 30 failures in the first seconds, all retried away (k2 keeps the stage well)…
        _ = policy.step(&states, heartbeats: [beat("k1", 5, ok: 0, failed: 30), beat("k2", 5)], nowNs: 5 * s)
        #expect(states["k1"]?.status == .quarantined)
        var fresh: [String: InstanceState] = [:]
        _ = policy.step(&fresh, heartbeats: [beat("k1", 0), beat("k2", 0)], nowNs: 0)
        _ = policy.step(&fresh, heartbeats: [beat("k1", 5, failed: 30, consecutive: 0), beat("k2", 5)], nowNs: 5 * s)
        fresh["k1"]!.status = .healthy  // as if released; only the window matters here
        // …then 100 clean batches more than a window later: 30 of 130 would be 23 %.
        let a = policy.step(&fresh, heartbeats: [beat("k1", 70, ok: 100, failed: 30), beat("k2", 70)], nowNs: 70 * s)
        #expect(quarantines(a).isEmpty)
    }

    @Test func slowOrStuckBatchesQuarantineOnLatency() {
        var states: [String: InstanceState] = [:]
        var a = policy.step(&states, heartbeats: [beat("k1", 1, busy: 3600), beat("k2", 1)], nowNs: 1 * s)
        #expect(quarantines(a).isEmpty)
        #expect(a.contains { if case .warn("k1", _, .latency, _) = $0 { true } else { false } })
        a = policy.step(&states, heartbeats: [beat("k1", 2, busy: 5200), beat("k2", 2)], nowNs: 2 * s)
        #expect(trips(a) == [.latency(ms: 5200)])
        var other: [String: InstanceState] = [:]
        a = policy.step(&other, heartbeats: [beat("k1", 1, p95: 6000), beat("k2", 1)], nowNs: 1 * s)
        #expect(trips(a) == [.latency(ms: 6000)])
    }

    @Test func aMissingHeartbeatQuarantinesEvenTheLastInstance() {
        var states: [String: InstanceState] = [:]
        _ = policy.step(&states, heartbeats: [beat("k1", 1)], nowNs: 1 * s)
        var a = policy.step(&states, heartbeats: [beat("k1", 1)], nowNs: 5 * s)
        #expect(a.contains { if case .warn("k1", _, .missingHeartbeat, _) = $0 { true } else { false } })
        a = policy.step(&states, heartbeats: [beat("k1", 1)], nowNs: 7 * s)
        #expect(trips(a) == [.missingHeartbeat(ageMs: 6000)])
        // Back-off over, but still silent: it stays quarantined.
        a = policy.step(&states, heartbeats: [beat("k1", 1)], nowNs: 30 * s)
        #expect(a.isEmpty && states["k1"]?.status == .quarantined)
        // Silent past forgetAfter: forgotten.
        a = policy.step(&states, heartbeats: [beat("k1", 1)], nowNs: 700 * s)
        #expect(a == [.forget(instance: "k1", stage: .kenny, why: "silent for 699 s")])
        #expect(states.isEmpty)
        // Seen for the first time already long silent (a watchdog starting after a crash
        // long ago): forgotten, not quarantined.
        let old = policy.step(&states, heartbeats: [beat("k0", 1), beat("k2", 900)], nowNs: 900 * s)
        #expect(old == [.forget(instance: "k0", stage: .kenny, why: "silent for 899 s")])
    }

    @Test func anInstanceWhoseProcessExitedIsForgottenAtOnce() {
        var states: [String: InstanceState] = [:]
        _ = policy.step(&states, heartbeats: [beat("k1", 1), beat("k2", 1)], nowNs: 1 * s)
        // k1's process is gone (known to the caller), 3 s after its last heartbeat.
        let a = policy.step(&states, heartbeats: [beat("k1", 1), beat("k2", 4)], exited: ["k1"], nowNs: 4 * s)
        #expect(a.count == 1)
        if case .forget(let i, _, let why) = a.first { #expect(i == "k1" && why.hasSuffix("has exited")) } else { Issue.record("\(a)") }
        #expect(states.keys.sorted() == ["k2"])
    }

    @Test func theGuardWithholdsWhenEveryLiveInstanceTrips() {
        var states: [String: InstanceState] = [:]
        let a = policy.step(&states, heartbeats: [beat("k1", 1, p95: 7000), beat("k2", 1, p95: 8000), beat("h1", 1, stage: .hrm)], nowNs: 1 * s)
        #expect(quarantines(a).isEmpty)
        #expect(a.filter { if case .withheld = $0 { true } else { false } }.count == 2)
        // Once per episode.
        let again = policy.step(&states, heartbeats: [beat("k1", 2, p95: 7000), beat("k2", 2, p95: 8000), beat("h1", 2, stage: .hrm)], nowNs: 2 * s)
        #expect(again.isEmpty)
        // One recovers: the other is quarantined.
        let b = policy.step(&states, heartbeats: [beat("k1", 3, p95: 7000), beat("k2", 3), beat("h1", 3, stage: .hrm)], nowNs: 3 * s)
        #expect(quarantines(b) == ["k1"])
    }

    @Test func quarantineDisabledOnlyWarns() {
        let warnOnly = WatchdogPolicy(settings: settings { $0.quarantineEnabled = false })
        var states: [String: InstanceState] = [:]
        let a = warnOnly.step(&states, heartbeats: [beat("k1", 1, consecutive: 9), beat("k2", 1)], nowNs: 1 * s)
        #expect(quarantines(a).isEmpty)
        #expect(a.contains { if case .warn("k1", _, .consecutiveFailures(9), let m) = $0 { m.contains("WATCHDOG_QUARANTINE_ENABLED=false") } else { false } })
        #expect(states["k1"]?.status == .healthy)
    }

    @Test func backOffGrowsWithRepeatOffencesAndIsCapped() {
        let p = settings()
        #expect(p.backoffNs(offence: 1) == 10 * s)
        #expect(p.backoffNs(offence: 2) == 20 * s)
        #expect(p.backoffNs(offence: 3) == 35 * s)
        #expect(p.backoffNs(offence: 60) == 35 * s)
    }

    @Test func releaseByBackOffThenProbationAndARelapseQuarantinesAtOnceForLonger() {
        var states: [String: InstanceState] = [:]
        _ = policy.step(&states, heartbeats: [beat("k1", 1, consecutive: 5), beat("k2", 1)], nowNs: 1 * s)
        #expect(states["k1"]?.status == .quarantined)
        // Before the back-off: still quarantined; the stale failure count is ignored after.
        var a = policy.step(&states, heartbeats: [beat("k1", 10, consecutive: 5), beat("k2", 10)], nowNs: 10 * s)
        #expect(a.isEmpty)
        a = policy.step(&states, heartbeats: [beat("k1", 11, consecutive: 5), beat("k2", 11)], nowNs: 11 * s)
        #expect(a == [.release(instance: "k1", stage: .kenny, by: "back-off", probationUntilNs: 31 * s)])
        // Probation: the heartbeat from before the release does not count.
        a = policy.step(&states, heartbeats: [beat("k1", 11, consecutive: 5), beat("k2", 12)], nowNs: 12 * s)
        #expect(quarantines(a).isEmpty && states["k1"]?.status == .probation)
        // One slow heartbeat on probation: quarantined again at once, for twice as long.
        a = policy.step(&states, heartbeats: [beat("k1", 13, p95: 5001), beat("k2", 13)], nowNs: 13 * s)
        #expect(quarantines(a) == ["k1"])
        #expect(states["k1"]?.offences == 2 && states["k1"]?.releaseAtNs == 33 * s)
        #expect(states["k1"]?.reason.hasPrefix("relapse on probation") == true)
    }

    @Test func probationPassesAfterItsTime() {
        var states: [String: InstanceState] = [:]
        _ = policy.step(&states, heartbeats: [beat("k1", 1, consecutive: 5), beat("k2", 1)], nowNs: 1 * s)
        _ = policy.step(&states, heartbeats: [beat("k1", 12), beat("k2", 12)], nowNs: 12 * s)
        #expect(states["k1"]?.status == .probation)
        let a = policy.step(&states, heartbeats: [beat("k1", 32), beat("k2", 32)], nowNs: 32 * s)
        #expect(a == [.probationPassed(instance: "k1", stage: .kenny)])
        #expect(states["k1"]?.status == .healthy && states["k1"]?.offences == 1)
    }

    @Test func operatorReleasesByStageOrInstance() {
        var states: [String: InstanceState] = [:]
        _ = policy.step(&states, heartbeats: [beat("k1", 1, consecutive: 5), beat("k2", 1, consecutive: 5), beat("k3", 1)], nowNs: 1 * s)
        #expect(states.values.filter { $0.status == .quarantined }.count == 2)
        #expect(policy.release(&states, selector: "HRM", nowNs: 2 * s).isEmpty)
        let one = policy.release(&states, selector: "k2", nowNs: 2 * s)
        #expect(one == [.release(instance: "k2", stage: .kenny, by: "operator", probationUntilNs: 22 * s)])
        let all = policy.release(&states, selector: "kenny", nowNs: 3 * s)
        #expect(all == [.release(instance: "k1", stage: .kenny, by: "operator", probationUntilNs: 23 * s)])
    }

    @Test func aCleanStopIsForgottenAndStateRoundTripsThroughItsRecord() {
        var states: [String: InstanceState] = [:]
        _ = policy.step(&states, heartbeats: [beat("k1", 1, consecutive: 5), beat("k2", 1)], nowNs: 1 * s)
        let restored = InstanceState(record: states["k1"]!.record)!
        #expect(restored.record == states["k1"]!.record)
        let a = policy.step(&states, heartbeats: [beat("k1", 2)], nowNs: 2 * s)
        #expect(a == [.forget(instance: "k2", stage: .kenny, why: "stopped (its heartbeat was removed)")])
    }
}
