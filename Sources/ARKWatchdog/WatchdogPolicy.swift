// The watchdog's decisions, pure: quarantine, release, probation and forgetting.

import ARKCore
import ARKState
import ARKStoreWriter

/// The watchdog's thresholds (DESIGN §6), in nanoseconds where they are times.
public struct WatchdogSettings: Sendable, Equatable {
    public var quarantineEnabled = true
    public var maxConsecutiveFailures = 5
    public var maxFailureRate = 0.20
    public var minRequests = 10
    public var failureWindowNs: Int64 = 60_000_000_000
    public var maxLatencyMs = 5000.0
    public var heartbeatTimeoutNs: Int64 = 5_000_000_000
    public var releaseBackoffNs: Int64 = 30_000_000_000
    public var releaseBackoffMaxNs: Int64 = 600_000_000_000
    public var probationNs: Int64 = 60_000_000_000
    /// An instance silent this long is gone (killed, host lost): it is forgotten, and its
    /// consumer removed once nothing is pending on it.
    public var forgetAfterNs: Int64 = 600_000_000_000
    /// Warnings come at this fraction of each threshold.
    public var warnFraction = 0.7

    public init() {}

    public init(config: ARKConfig) {
        quarantineEnabled = config.watchdogQuarantineEnabled
        maxConsecutiveFailures = config.watchdogMaxConsecutiveFailures
        maxFailureRate = config.watchdogMaxFailureRate
        minRequests = config.watchdogMinRequests
        failureWindowNs = Int64(config.watchdogFailureWindowMs) * 1_000_000
        maxLatencyMs = config.watchdogMaxLatencyMs
        heartbeatTimeoutNs = Int64(config.watchdogHeartbeatTimeoutMs) * 1_000_000
        releaseBackoffNs = Int64(config.watchdogReleaseBackoffMs) * 1_000_000
        releaseBackoffMaxNs = Int64(config.watchdogReleaseBackoffMaxMs) * 1_000_000
        probationNs = Int64(config.watchdogProbationMs) * 1_000_000
    }

    /// The quarantine of the `offence`-th offence: the back-off doubles each time, capped.
    public func backoffNs(offence: Int) -> Int64 {
        let doublings = min(max(offence - 1, 0), 40)
        let (grown, overflow) = releaseBackoffNs.multipliedReportingOverflow(by: Int64(1) << Int64(doublings))
        return overflow ? releaseBackoffMaxNs : min(grown, releaseBackoffMaxNs)
    }
}

/// Why an instance is out of line, with the figures.
public enum Trip: Sendable, Equatable {
    case consecutiveFailures(count: Int)
    case failureRate(failed: Int, attempts: Int)
    case latency(ms: Double)
    case missingHeartbeat(ageMs: Double)

    public var rule: String {
        switch self {
        case .consecutiveFailures: "consecutive_failures"
        case .failureRate: "failure_rate"
        case .latency: "latency"
        case .missingHeartbeat: "missing_heartbeat"
        }
    }

    /// Figures as a JSON object, for the event record.
    public var figures: String {
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        w.key("rule"); w.string(rule)
        switch self {
        case .consecutiveFailures(let n): w.key("consecutive_failures"); w.int(Int64(n))
        case .failureRate(let f, let a):
            w.key("failed"); w.int(Int64(f))
            w.key("attempts"); w.int(Int64(a))
            w.key("rate"); w.double(Double(f) / Double(max(a, 1)))
        case .latency(let ms): w.key("latency_ms"); w.double(ms)
        case .missingHeartbeat(let ms): w.key("heartbeat_age_ms"); w.double(ms)
        }
        w.endObject()
        return String(decoding: w.bytes, as: UTF8.self)
    }

    func describe(_ s: WatchdogSettings) -> String {
        switch self {
        case .consecutiveFailures(let n): "\(n) batches failed in a row (limit \(s.maxConsecutiveFailures))"
        case .failureRate(let f, let a):
            "\(f) of \(a) batches failed (\(Int((Double(f) / Double(a) * 100).rounded())) %, limit \(Int((s.maxFailureRate * 100).rounded())) %)"
        case .latency(let ms): "batch latency \(Int(ms.rounded())) ms (limit \(Int(s.maxLatencyMs.rounded())) ms)"
        case .missingHeartbeat(let ms): "no heartbeat for \(Int(ms.rounded())) ms (limit \(s.heartbeatTimeoutNs / 1_000_000) ms)"
        }
    }
}

/// One instance as the watchdog sees it. `status`, `offences` and the times are persisted;
/// the failure samples and warnings are rebuilt from heartbeats after a restart.
public struct InstanceState: Sendable, Equatable {
    public enum Status: String, Sendable {
        case healthy, quarantined, probation
    }

    public var instance: String
    public var stage: Stage
    public var status: Status = .healthy
    public var offences = 0
    public var sinceNs: Int64
    public var releaseAtNs: Int64 = 0
    public var probationUntilNs: Int64 = 0
    public var reason = ""
    /// (heartbeat time, batches ok, batches failed), oldest first, covering the failure window.
    var samples: [(tsNs: Int64, ok: Int, failed: Int)] = []
    /// Rules warned about in the current episode (each warning once until it clears).
    var warned: Set<String> = []

    public init(instance: String, stage: Stage, sinceNs: Int64) {
        self.instance = instance
        self.stage = stage
        self.sinceNs = sinceNs
    }

    public init?(record r: WatchdogInstanceRecord) {
        guard let stage = Stage(name: r.stage), let status = Status(rawValue: r.status) else { return nil }
        self.init(instance: r.instance, stage: stage, sinceNs: r.sinceNs)
        self.status = status
        offences = r.offences
        releaseAtNs = r.releaseAtNs
        probationUntilNs = r.probationUntilNs
        reason = r.reason
    }

    public var record: WatchdogInstanceRecord {
        WatchdogInstanceRecord(instance: instance, stage: stage.rawValue, status: status.rawValue, offences: offences, sinceNs: sinceNs,
                               releaseAtNs: releaseAtNs, probationUntilNs: probationUntilNs, reason: reason)
    }

    public static func == (a: InstanceState, b: InstanceState) -> Bool { a.record == b.record && a.warned == b.warned }

    mutating func addSample(_ hb: HeartbeatRecord, windowNs: Int64) {
        if let last = samples.last, last.tsNs >= hb.tsNs { return }
        samples.append((hb.tsNs, hb.batchesOK, hb.batchesFailed))
        // Keep one sample at or before the window's start as the baseline.
        let start = hb.tsNs - windowNs
        while samples.count > 1 && samples[1].tsNs <= start { samples.removeFirst() }
    }
}

/// What the watchdog decided in one step; applied by the `Watchdog` (log, store, Redis, metrics).
public enum WatchdogAction: Sendable, Equatable {
    case warn(instance: String, stage: Stage, trip: Trip, message: String)
    case quarantine(instance: String, stage: Stage, trip: Trip, message: String, offence: Int, releaseAtNs: Int64)
    /// Tripped, but quarantining would leave the stage without a live, well instance.
    case withheld(instance: String, stage: Stage, trip: Trip, message: String)
    case release(instance: String, stage: Stage, by: String, probationUntilNs: Int64)
    case probationPassed(instance: String, stage: Stage)
    /// Stopped cleanly (heartbeat removed) or silent past `forgetAfterNs`.
    case forget(instance: String, stage: Stage, why: String)
}

/// The watchdog's decisions, as a pure function of its states, the heartbeats and the time.
public struct WatchdogPolicy: Sendable {
    public let settings: WatchdogSettings

    public init(settings: WatchdogSettings) { self.settings = settings }

    /// One round: `heartbeats` is every instance's last heartbeat (`ark:heartbeats`);
    /// `exited` names instances known to be gone for good (their process no longer exists
    /// and nothing is pending on them), which are forgotten now instead of after
    /// `forgetAfterNs`, so a restarted stage is not reported with a dead twin for ten minutes.
    public func step(_ states: inout [String: InstanceState], heartbeats: [HeartbeatRecord], exited: Set<String> = [], nowNs: Int64) -> [WatchdogAction] {
        var actions: [WatchdogAction] = []
        var beats: [String: HeartbeatRecord] = [:]
        for hb in heartbeats {
            guard let stage = Stage(name: hb.stage) else { continue }
            beats[hb.instance] = hb
            states[hb.instance, default: InstanceState(instance: hb.instance, stage: stage, sinceNs: nowNs)]
                .addSample(hb, windowNs: settings.failureWindowNs)
        }
        for name in states.keys.sorted() {
            if let hb = beats[name] {
                // Silent this long: gone. Also what a watchdog starting next to heartbeats
                // of long-dead processes sees; those are not quarantines.
                let age = nowNs - hb.tsNs
                if exited.contains(name) {
                    actions.append(.forget(instance: name, stage: states[name]!.stage, why: "its process \(hb.pid) on \(hb.host) has exited"))
                } else {
                    guard age > settings.forgetAfterNs else { continue }
                    actions.append(.forget(instance: name, stage: states[name]!.stage, why: "silent for \(age / 1_000_000_000) s"))
                }
            } else {
                // The heartbeat is removed by a clean shutdown: nothing of it is pending.
                actions.append(.forget(instance: name, stage: states[name]!.stage, why: "stopped (its heartbeat was removed)"))
            }
            states[name] = nil
        }

        var trips: [String: Trip] = [:]
        for (name, state) in states {
            if let t = trip(state, beats[name]!, nowNs: nowNs) { trips[name] = t }
        }
        // The guard: per stage, instances that are live and not tripping now.
        var wellByStage: [Stage: Int] = [:]
        for (name, state) in states where state.status != .quarantined && trips[name] == nil && isFresh(beats[name]!, nowNs) {
            wellByStage[state.stage, default: 0] += 1
        }

        for name in states.keys.sorted() {
            var s = states[name]!
            let hb = beats[name]!
            let t = trips[name]
            actions += warnings(&s, hb, tripped: t != nil, nowNs: nowNs)
            switch s.status {
            case .healthy, .probation:
                if let t {
                    if !settings.quarantineEnabled {
                        if s.warned.insert("would_quarantine").inserted {
                            actions.append(.warn(instance: name, stage: s.stage, trip: t,
                                                 message: "would be quarantined (WATCHDOG_QUARANTINE_ENABLED=false): \(t.describe(settings))"))
                        }
                    } else if !isMissing(t) && wellByStage[s.stage, default: 0] == 0 {
                        if s.warned.insert("withheld").inserted {
                            actions.append(.withheld(instance: name, stage: s.stage, trip: t,
                                                     message: "not quarantined: no other live, well \(s.stage.rawValue) instance (a shared cause such as Redis or the disk is likely): \(t.describe(settings))"))
                        }
                    } else {
                        let relapse = s.status == .probation
                        s.offences += 1
                        s.status = .quarantined
                        s.sinceNs = nowNs
                        s.releaseAtNs = nowNs + settings.backoffNs(offence: s.offences)
                        s.reason = (relapse ? "relapse on probation: " : "") + t.describe(settings)
                        s.warned.remove("withheld")
                        actions.append(.quarantine(instance: name, stage: s.stage, trip: t, message: s.reason, offence: s.offences, releaseAtNs: s.releaseAtNs))
                    }
                } else {
                    s.warned.remove("withheld")
                    s.warned.remove("would_quarantine")
                    if s.status == .probation && nowNs >= s.probationUntilNs {
                        s.status = .healthy
                        s.sinceNs = nowNs
                        actions.append(.probationPassed(instance: name, stage: s.stage))
                    }
                }
            case .quarantined:
                // A silent instance stays quarantined: releasing it would hand it entries it
                // cannot process.
                if nowNs >= s.releaseAtNs && isFresh(hb, nowNs) && hb.tsNs > s.sinceNs {
                    release(&s, by: "back-off", nowNs: nowNs)
                    actions.append(.release(instance: name, stage: s.stage, by: "back-off", probationUntilNs: s.probationUntilNs))
                }
            }
            states[name] = s
        }
        return actions
    }

    /// An operator's release: `selector` is an instance name or a stage name (every
    /// quarantined instance of it); `by` names who asked (`operator`, `console:alice`).
    /// Returns the actions (empty: nothing matched).
    public func release(_ states: inout [String: InstanceState], selector: String, by: String = "operator", nowNs: Int64) -> [WatchdogAction] {
        let stage = Stage(name: selector)
        var actions: [WatchdogAction] = []
        for name in states.keys.sorted() {
            var s = states[name]!
            guard s.status == .quarantined, name == selector || s.stage == stage else { continue }
            release(&s, by: by, nowNs: nowNs)
            actions.append(.release(instance: name, stage: s.stage, by: by, probationUntilNs: s.probationUntilNs))
            states[name] = s
        }
        return actions
    }

    private func release(_ s: inout InstanceState, by: String, nowNs: Int64) {
        s.status = .probation
        s.sinceNs = nowNs
        s.probationUntilNs = nowNs + settings.probationNs
        s.reason = "released by \(by)"
        // The samples before the release would read as a relapse.
        s.samples.removeAll()
        s.warned.removeAll()
    }

    func isFresh(_ hb: HeartbeatRecord, _ nowNs: Int64) -> Bool { nowNs - hb.tsNs <= settings.heartbeatTimeoutNs }

    func isMissing(_ t: Trip) -> Bool {
        if case .missingHeartbeat = t { return true }
        return false
    }

    /// The first rule the instance breaks, missing heartbeat first. On probation only
    /// heartbeats sent after the release count.
    func trip(_ s: InstanceState, _ hb: HeartbeatRecord, nowNs: Int64) -> Trip? {
        let age = nowNs - hb.tsNs
        if age > settings.heartbeatTimeoutNs { return .missingHeartbeat(ageMs: Double(age) / 1e6) }
        if s.status == .probation && hb.tsNs <= s.sinceNs { return nil }
        if hb.consecutiveFailures >= settings.maxConsecutiveFailures { return .consecutiveFailures(count: hb.consecutiveFailures) }
        if let (failed, attempts) = windowFailures(s), attempts >= settings.minRequests,
           Double(failed) / Double(attempts) > settings.maxFailureRate {
            return .failureRate(failed: failed, attempts: attempts)
        }
        let latency = max(hb.p95Ms, hb.busyMs)
        if latency > settings.maxLatencyMs { return .latency(ms: latency) }
        return nil
    }

    /// Failed and attempted batches between the window's baseline sample and the newest.
    func windowFailures(_ s: InstanceState) -> (Int, Int)? {
        guard let first = s.samples.first, let last = s.samples.last, s.samples.count >= 2 else { return nil }
        let failed = last.failed - first.failed
        let attempts = failed + (last.ok - first.ok)
        return failed >= 0 && attempts > 0 ? (failed, attempts) : nil
    }

    /// Warnings at `warnFraction` of each threshold, once per rule until it clears.
    func warnings(_ s: inout InstanceState, _ hb: HeartbeatRecord, tripped: Bool, nowNs: Int64) -> [WatchdogAction] {
        guard s.status != .quarantined else { return [] }
        let f = settings.warnFraction
        var near: [Trip] = []
        let age = nowNs - hb.tsNs
        if Double(age) > Double(settings.heartbeatTimeoutNs) * f { near.append(.missingHeartbeat(ageMs: Double(age) / 1e6)) }
        if Double(hb.consecutiveFailures) >= Double(settings.maxConsecutiveFailures) * f {
            near.append(.consecutiveFailures(count: hb.consecutiveFailures))
        }
        if let (failed, attempts) = windowFailures(s), attempts >= settings.minRequests,
           Double(failed) / Double(attempts) > settings.maxFailureRate * f {
            near.append(.failureRate(failed: failed, attempts: attempts))
        }
        let latency = max(hb.p95Ms, hb.busyMs)
        if latency > settings.maxLatencyMs * f { near.append(.latency(ms: latency)) }
        var out: [WatchdogAction] = []
        let nearRules = Set(near.map(\.rule))
        for rule in s.warned where rule.hasPrefix("near:") && !nearRules.contains(String(rule.dropFirst(5))) { s.warned.remove(rule) }
        guard !tripped else { return [] }
        for t in near where s.warned.insert("near:" + t.rule).inserted {
            out.append(.warn(instance: s.instance, stage: s.stage, trip: t, message: "at \(Int(f * 100)) % of a quarantine threshold: \(t.describe(settings))"))
        }
        return out
    }
}
