// The watchdog actor: applies its policy's decisions to Redis, the store, logs and metrics.

import ARKBus
import ARKCore
import ARKState
import ARKStoreWriter
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// The watchdog (DESIGN §6): once a second it reads every instance's heartbeat, lets
/// `WatchdogPolicy` decide, and carries the decisions out: the standings and events into
/// the state store (so a restarted watchdog carries on), the quarantine list into Redis
/// (`ark:quarantine`, which the agents obey), logs and metrics. Runs on its own thread: its
/// Redis and SQLite calls block.
public actor Watchdog: Service {
    private nonisolated let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    let policy: WatchdogPolicy
    let store: StateStore
    let interval: Duration
    let logger: Logger
    private let connection: RedisConnection
    private var states: [String: InstanceState] = [:]
    private var redisFailing = false
    /// Made once per stage: the metrics factory lookup is not free.
    private let quarantinedGauges = Dictionary(uniqueKeysWithValues: Stage.allCases.map {
        ($0, Gauge(label: MetricName.quarantined, dimensions: [("agent", $0.rawValue)]))
    })
    private let quarantineCounters = Dictionary(uniqueKeysWithValues: Stage.allCases.map {
        ($0, Counter(label: MetricName.quarantines, dimensions: [("agent", $0.rawValue)]))
    })

    public init(settings: WatchdogSettings, store: StateStore, redisURL: RedisURL, interval: Duration = .seconds(1),
                logger: Logger = Logger(label: "ark.watchdog")) {
        policy = WatchdogPolicy(settings: settings)
        self.store = store
        self.interval = interval
        self.logger = logger
        executor = ThreadExecutor(name: "ark-watchdog")
        connection = RedisConnection(url: redisURL, commandTimeout: .seconds(5))
    }

    public func run() async throws {
        logger.info("watching", metadata: [
            "quarantine": .stringConvertible(policy.settings.quarantineEnabled),
            "max_latency_ms": .stringConvertible(policy.settings.maxLatencyMs),
            "max_failure_rate": .stringConvertible(policy.settings.maxFailureRate),
        ])
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.tickLogged()
                try? await Task.sleep(for: self.interval)
            }
        }
        connection.close()
        executor.shutdown()
    }

    func tickLogged() {
        do {
            try tick()
            if redisFailing { logger.notice("watching again") }
            redisFailing = false
        } catch {
            // Without heartbeats nothing can be judged; quarantines in force stay in Redis.
            if !redisFailing { logger.error("cannot watch; retrying every second", metadata: ["error": .string("\(error)")]) }
            redisFailing = true
            connection.close()
        }
    }

    /// One round, at `now` (tests drive the clock).
    public func tick(now: Int64 = wallClockNanoseconds()) throws {
        if !connection.isConnected { try connection.connect(timeout: .seconds(2)) }
        let beats = try Self.readHeartbeats(connection)
        let exited = try Self.exitedOnThisHost(beats, connection)
        let actions: [WatchdogAction] = try store.updateWatchdog { records in
            var merged = Self.merge(records: records, into: states)
            let before = merged.mapValues(\.record)
            let actions = policy.step(&merged, heartbeats: beats, exited: exited, nowNs: now)
            states = merged
            return (Self.changes(before: before, after: merged, actions: actions, nowNs: now), actions)
        }
        for action in actions { try carryOut(action) }
        try Self.syncQuarantineList(connection, states: states)
        var quarantined: [Stage: Int] = [:]
        for s in states.values where s.status == .quarantined { quarantined[s.stage, default: 0] += 1 }
        for (stage, gauge) in quarantinedGauges { gauge.record(quarantined[stage] ?? 0) }
    }

    /// The stored standings win (an operator may have released someone); the failure
    /// samples and warnings live only here.
    static func merge(records: [WatchdogInstanceRecord], into memory: [String: InstanceState]) -> [String: InstanceState] {
        var out: [String: InstanceState] = [:]
        for r in records {
            guard var s = InstanceState(record: r) else { continue }
            if let m = memory[r.instance], m.record.status == r.status && m.record.sinceNs == r.sinceNs {
                s = m
            }
            out[r.instance] = s
        }
        return out
    }

    static func changes(before: [String: WatchdogInstanceRecord], after: [String: InstanceState], actions: [WatchdogAction], nowNs: Int64) -> WatchdogChanges {
        var c = WatchdogChanges()
        for (name, s) in after where before[name] != s.record { c.upserts.append(s.record) }
        c.deletes = before.keys.filter { after[$0] == nil }.sorted()
        c.events = actions.compactMap { event($0, nowNs: nowNs) }
        return c
    }

    static func event(_ a: WatchdogAction, nowNs: Int64) -> WatchdogEventRecord? {
        switch a {
        case .quarantine(let i, let stage, let t, let m, _, _):
            WatchdogEventRecord(instance: i, stage: stage.rawValue, action: "quarantine", reason: m, figures: t.figures, by: "watchdog", tsNs: nowNs)
        case .withheld(let i, let stage, let t, let m):
            WatchdogEventRecord(instance: i, stage: stage.rawValue, action: "withheld", reason: m, figures: t.figures, by: "watchdog", tsNs: nowNs)
        case .release(let i, let stage, let by, _):
            WatchdogEventRecord(instance: i, stage: stage.rawValue, action: "release", reason: "released by \(by)", figures: "{}",
                                by: by == "back-off" ? "watchdog" : by, tsNs: nowNs)
        case .forget(let i, let stage, let why):
            WatchdogEventRecord(instance: i, stage: stage.rawValue, action: "forget", reason: why, figures: "{}", by: "watchdog", tsNs: nowNs)
        case .warn, .probationPassed:
            nil
        }
    }

    private func carryOut(_ action: WatchdogAction) throws {
        switch action {
        case .warn(let i, let stage, _, let message):
            logger.warning("\(stage.rawValue) \(i) \(message)", metadata: ["instance": .string(i)])
        case .withheld(let i, let stage, let t, let message):
            logger.warning("\(stage.rawValue) \(i) \(message)", metadata: ["instance": .string(i), "rule": .string(t.rule)])
        case .quarantine(let i, let stage, let t, let message, let offence, let releaseAtNs):
            quarantineCounters[stage]?.increment()
            logger.error("quarantined \(i): \(message)", metadata: [
                "instance": .string(i), "agent": .string(stage.rawValue), "rule": .string(t.rule),
                "offence": .stringConvertible(offence), "release_in_s": .stringConvertible((releaseAtNs - wallClockNanoseconds()) / 1_000_000_000),
            ])
        case .release(let i, let stage, let by, _):
            logger.notice("released \(i) (\(stage.rawValue)) by \(by); on probation", metadata: ["instance": .string(i)])
        case .probationPassed(let i, _):
            logger.info("\(i) passed its probation", metadata: ["instance": .string(i)])
        case .forget(let i, let stage, let why):
            logger.info("forgetting \(i): \(why)", metadata: ["instance": .string(i)])
            try ControlPlane(connection).forgetHeartbeat(of: i)
            // The consumer goes once nothing is pending on it (its entries were taken over).
            let stream = Shard(instance: i).stream(stage)
            let pending = try connection.command(["XPENDING", .text(stream), .text(stage.group), "-", "+", "1", .text(i)])
            if pending.array?.isEmpty == true {
                _ = try connection.command(["XGROUP", "DELCONSUMER", .text(stream), .text(stage.group), .text(i)])
            }
        }
    }

    /// Instances that ran on this host whose process no longer exists, once nothing is
    /// pending on them (until their entries are taken over they stay, quarantined, so their
    /// peers claim the entries at once). A pid reused by another process keeps the instance:
    /// then it is forgotten after its ten silent minutes, as one on another host is.
    static func exitedOnThisHost(_ beats: [HeartbeatRecord], _ connection: RedisConnection) throws -> Set<String> {
        let host = ProcessInfo.processInfo.hostName
        var exited: Set<String> = []
        for hb in beats where hb.host == host && hb.pid > 0 && processHasExited(pid_t(hb.pid)) {
            guard let stage = Stage(name: hb.stage) else { continue }
            let pending = try connection.command(["XPENDING", .text(Shard(instance: hb.instance).stream(stage)), .text(stage.group), "-", "+", "1", .text(hb.instance)])
            if pending.array?.isEmpty == true { exited.insert(hb.instance) }
        }
        return exited
    }

    static func readHeartbeats(_ connection: RedisConnection) throws -> [HeartbeatRecord] {
        try ControlPlane(connection).heartbeats()
    }

    /// Makes `ark:quarantine` list exactly the quarantined instances.
    static func syncQuarantineList(_ connection: RedisConnection, states: [String: InstanceState]) throws {
        let control = ControlPlane(connection)
        let listed = try control.quarantinedNames()
        let wanted = states.values.filter { $0.status == .quarantined }
        for s in wanted where !listed.contains(s.instance) {
            let entry = QuarantineEntry(stage: s.stage, reason: s.reason, sinceNs: s.sinceNs)
            try control.quarantine(s.instance, entry)
        }
        let keep = Set(wanted.map(\.instance))
        for name in listed where !keep.contains(name) {
            try control.release(name)
        }
    }

    /// `ark watchdog release`: releases the quarantined instances `selector` names (an
    /// instance, or a stage for all of its instances) onto probation, in the store and in
    /// Redis at once, whether or not a watchdog is running.
    public static func release(selector: String, by: String = "operator", settings: WatchdogSettings, store: StateStore, connection: RedisConnection) throws -> [WatchdogAction] {
        let policy = WatchdogPolicy(settings: settings)
        let now = wallClockNanoseconds()
        let actions: [WatchdogAction] = try store.updateWatchdog { records in
            var states = merge(records: records, into: [:])
            let before = states.mapValues(\.record)
            let actions = policy.release(&states, selector: selector, by: by, nowNs: now)
            return (changes(before: before, after: states, actions: actions, nowNs: now), actions)
        }
        for case .release(let i, _, _, _) in actions {
            try ControlPlane(connection).release(i)
        }
        return actions
    }
}
