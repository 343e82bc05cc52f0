import ARKBus
import ARKCore
import ARKOperations
import ARKProcess
import ARKState
import ARKStoreWriter
import Foundation
import Logging

/// What a canary run did, step by step and at its end; kept as JSON in `canary_runs.report`
/// and printed by `ark canary status`.
public struct CanaryReport: Sendable, Equatable {
    public struct Step: Sendable, Equatable {
        public var percent: Double
        public var startedNs: Int64
        public var endedNs: Int64?
        public var extensions: Int
        /// passed, inconclusive (held), tripped, or aborted.
        public var outcome: String?
    }

    public var release: String
    public var baselineRelease: String
    public var snapshot: String
    public var canaryPIDs: [ChildProcess] = []
    public var baselinePIDs: [ChildProcess] = []
    public var steps: [Step] = []
    public var checks = 0
    public var inconclusiveChecks = 0
    public var tripwire: Tripwire?
    public var tripwireDetail: String?
    public var tripwireNs: Int64?
    public var canaryStoppedNs: Int64?
    public var handedBack: [String: Int] = [:]
    public var schemaRestored: [String] = []
    public var releaseRestored: String?
    public var baselineHealthyNs: Int64?
    public var verification: String?
    public var promotedNs: Int64?
    public var outcome: String?

    /// Seconds from the tripwire to a baseline proven healthy by its synthetic loop.
    public var secondsToHealthyBaseline: Double? {
        guard let t = tripwireNs, let h = baselineHealthyNs else { return nil }
        return Double(h - t) / 1e9
    }
}

/// Runs one canary rollout: starts the release's agents as the canary track, routes a share
/// of traces to them step by step, judges them against the baseline every check, and
/// promotes the release after its last step or rolls it back on any tripwire (see
/// docs/canary.md).
public final class CanaryController {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    let plan: CanaryPlan
    let config: ARKConfig
    let release: Release
    let runDir: String
    let store: StateStore
    let connection: RedisConnection
    let links: ReleaseLinks
    let say: (String) -> Void
    var logger: Logger
    var run: CanaryRunRecord
    var report: CanaryReport
    var judge: CanaryJudge
    var canary: [ChildProcess] = []
    var routeVersion: Int64 = 0
    /// Each baseline instance's batch counts when the run began, for deltas.
    var baselineBatchesAtStart: [String: (ok: Int, failed: Int)] = [:]

    public static let stagePIDNames = Stage.allCases.map { $0.rawValue.lowercased() }

    // MARK: start

    /// The executable of this process: the synthetic loop that proves a baseline runs it.
    static let selfExecutable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

    /// What every controller holds, whether it starts a run or takes over a stranded one.
    private init(plan: CanaryPlan, config: ARKConfig, release: Release, runDir: String, say: @escaping (String) -> Void,
                 store: StateStore, connection: RedisConnection, run: CanaryRunRecord, report: CanaryReport) {
        self.plan = plan
        self.config = config
        self.release = release
        self.runDir = runDir
        self.say = say
        self.store = store
        self.connection = connection
        self.run = run
        self.report = report
        self.canary = report.canaryPIDs
        self.links = ReleaseLinks(directory: config.releasesDir)
        self.judge = CanaryJudge(plan: plan)
        var logger = Logger(label: "ark.canary")
        logger[metadataKey: "run_id"] = .string(run.runID)
        self.logger = logger
    }

    static func open(_ config: ARKConfig) throws -> (StateStore, RedisConnection) {
        let store = try StateStore(path: config.stateDB)
        let connection = RedisConnection(url: try RedisURL(parsing: config.redisURL), commandTimeout: .seconds(10))
        try connection.connect()
        return (store, connection)
    }

    /// Checks everything a run needs and starts it: the baseline's agents running (by their
    /// pid files in `runDir`), no other run in progress, a valid release sharing the
    /// baseline's Redis and state store; then snapshots the store and starts the canary
    /// agents. A canary agent that dies before its first heartbeat ends the run as rolled
    /// back (nothing was routed to it yet) and the error says why.
    public static func start(plan: CanaryPlan, config: ARKConfig, release: Release, runDir: String, say: @escaping (String) -> Void) throws -> CanaryController {
        try plan.validate()
        let (store, connection) = try open(config)
        if let open = try store.canaryRun(), !open.isFinished {
            if open.controllerIsAlive {
                throw Failure("canary run \(open.runID) is still \(open.status) (controller pid \(open.controllerPID)). Fix: wait for it, or ark canary abort")
            }
            throw Failure("canary run \(open.runID) was left \(open.status) by a controller that is gone. Fix: ark canary abort (rolls it back), then start again")
        }
        var baseline: [ChildProcess] = []
        for name in stagePIDNames {
            let file = runDir + "/" + name + ".pid"
            guard let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) == 0 else {
                throw Failure("no running baseline agent for \(name) (\(file)). Fix: start the baseline with deployment/start_production.sh first (its agents run as separate processes with pid files in ARK_RUN_DIR)")
            }
            baseline.append(ChildProcess(name: name, pid: pid))
        }
        let releaseEnv = try release.environment()
        for (key, mine) in [("REDIS_URL", config.redisURL), ("ARK_STATE_DB", config.stateDB)] {
            if let theirs = releaseEnv[key], theirs != mine {
                throw Failure("the release's \(key) is \(theirs), the baseline's \(mine): a canary must share the baseline's Redis and state store. Fix: set \(key)=\(mine) in \(release.envFile)")
            }
        }
        let current = ReleaseLinks(directory: config.releasesDir).current()
        if let current, current == release.path {
            throw Failure("\(release.path) is already the current release. Fix: give the new release's directory")
        }
        let baselineRelease = current ?? "(unmanaged: \(selfExecutable))"

        say("Snapshot of the state store before the canary")
        let snapshot = try Backups.backup(store, into: config.backupDir)
        say("  \(snapshot.path) (\(snapshot.passes) passes)")

        let now = wallClockNanoseconds()
        let planJSON = try JSONDocument.text(plan.json)
        let run = CanaryRunRecord(runID: "canary-" + compactTime(now), release: release.path, baselineRelease: baselineRelease, plan: planJSON,
                                  status: "starting", percent: 0, startedNs: now, updatedNs: now, controllerPID: Int(getpid()))
        let c = CanaryController(plan: plan, config: config, release: release, runDir: runDir, say: say, store: store, connection: connection, run: run,
                                 report: CanaryReport(release: release.path, baselineRelease: baselineRelease, snapshot: snapshot.path, baselinePIDs: baseline))
        try c.save()
        for b in try c.heartbeats() { c.baselineBatchesAtStart[b.instance] = (b.batchesOK, b.batchesFailed) }
        // The canary's groups exist before any signal is routed, so none is missed.
        for stage in Stage.allCases {
            try StreamBus(connection: connection, group: stage.group, consumer: "canary-controller")
                .ensureGroups(config.shardLayout.shards.map { $0.stream(stage, on: .canary) })
        }
        do {
            try c.startCanaryAgents(env: releaseEnv)
        } catch {
            for (p, how) in zip(c.canary, ChildProcess.stopAll(c.canary)) { say("  \(p.name) (pid \(p.pid)): \(how)") }
            c.run.status = "rolled_back"
            c.run.tripwire = Tripwire.processExit.rawValue
            c.report.tripwire = .processExit
            c.report.tripwireDetail = "\(error)"
            c.report.outcome = "rolled back at start: nothing was routed to the canary"
            _ = try c.finish()
            throw error
        }
        return c
    }

    static func compactTime(_ ns: Int64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: Date(timeIntervalSince1970: Double(ns) / 1e9))
    }

    /// The environment of an agent from `release`: the controller's, the release's
    /// settings over it, then what must be shared with the baseline.
    func agentEnvironment(_ releaseEnv: [String: String], release: Release, track: Track) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in releaseEnv { env[k] = v }
        env["ARK_TRACK"] = track.rawValue
        env["ARK_GRAVEYARD_DIR"] = release.graveyardDir
        env["REDIS_URL"] = config.redisURL
        env["ARK_STATE_DB"] = config.stateDB
        env["ARK_LOG_DIR"] = config.logDir
        env["ARK_BACKUP_DIR"] = config.backupDir
        // One audit log: the canary's Aletheia extends the baseline's tree and signs with its key.
        env["ARK_AUDIT_KEY"] = config.auditKey
        env["ARK_AUDIT_CHECKPOINTS"] = config.auditCheckpointsPath
        env["ARK_LOG_FORMAT"] = "json"
        return env
    }

    func startCanaryAgents(env releaseEnv: [String: String]) throws {
        let env = agentEnvironment(releaseEnv, release: release, track: .canary)
        for stage in Stage.allCases {
            let log = config.logDir + "/canary_" + stage.rawValue.lowercased() + ".log"
            let child = try ChildProcess.spawnAgent(stage, ark: release.binary, name: "canary " + stage.rawValue, environment: env, log: log)
            canary.append(child)
            say("  canary \(stage.rawValue) started (pid \(child.pid)), log \(log)")
        }
        report.canaryPIDs = canary
        try save()
        // Wait for each canary agent's first heartbeat before routing anything to it.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let pids = Set(try heartbeats().map { Int32($0.pid) })
            if canary.allSatisfy({ pids.contains($0.pid) }) { return }
            if let gone = canary.first(where: { !$0.isRunning }) {
                throw Failure("\(gone.name) exited at start (\(gone.exitStatus() ?? "?")): see its log in \(config.logDir)")
            }
            try await_(0.2)
        }
        throw Failure("the canary agents sent no heartbeat within 30 s: see \(config.logDir)/canary_*.log")
    }

    func await_(_ seconds: Double) throws {
        usleep(useconds_t(seconds * 1_000_000))
    }

    // MARK: the run

    /// Runs the steps until the release is promoted or rolled back; returns the final record.
    public func runToEnd() throws -> CanaryRunRecord {
        var stepIndex = 0
        var stepStart = wallClockNanoseconds()
        var extensions = 0
        var lastCheck = stepStart
        try beginStep(0, at: stepStart)
        while true {
            let now = wallClockNanoseconds()
            if let requested = try store.canaryRun(id: run.runID)?.requested {
                if requested == "abort" {
                    report.steps[stepIndex].outcome = "aborted"
                    return try rollBack(.operatorAbort, detail: "ark canary abort by an operator")
                }
                if requested == "promote" {
                    report.steps[stepIndex].outcome = "promoted by operator"
                    return try promote(by: "operator")
                }
            }
            let exited = canary.compactMap { c in c.exitStatus().map { "\(c.name) pid \(c.pid): \($0)" } }
            if now - lastCheck >= Int64(plan.checkSeconds * 1e9) || !exited.isEmpty {
                let result = try check(stepStart: stepStart, windowStart: lastCheck, now: now, exited: exited, step: stepIndex)
                lastCheck = now
                if result.verdict == .tripwire, let t = result.tripwire {
                    report.steps[stepIndex].outcome = "tripped"
                    return try rollBack(t, detail: result.detail)
                }
                let stepEnd = stepStart + Int64(plan.stepSeconds * Double(1 + extensions) * 1e9)
                if now >= stepEnd {
                    if result.stepConclusive {
                        report.steps[stepIndex].outcome = "passed"
                        report.steps[stepIndex].endedNs = now
                        if stepIndex + 1 == plan.steps.count { return try promote(by: "controller") }
                        stepIndex += 1
                        stepStart = now
                        extensions = 0
                        try beginStep(stepIndex, at: now)
                    } else if extensions < plan.maxExtensions {
                        extensions += 1
                        report.steps[stepIndex].extensions = extensions
                        say("  step \(stepIndex + 1) inconclusive (\(result.detail)): extended by \(Int(plan.stepSeconds)) s (\(extensions) of \(plan.maxExtensions))")
                        try save()
                    } else if run.status != "holding" {
                        run.status = "holding"
                        report.steps[stepIndex].outcome = "inconclusive"
                        say("  HOLDING at \(plan.steps[stepIndex])%: still too little traffic after \(extensions) extension(s) (\(result.detail)). Tripwires stay armed; the run goes on by itself once a step is conclusive, or: ark canary promote | ark canary abort")
                        logger.warning("canary holding: inconclusive", metadata: ["detail": .string(result.detail)])
                        try save()
                    }
                }
            }
            try await_(min(0.2, plan.checkSeconds / 2))
        }
    }

    func beginStep(_ index: Int, at now: Int64) throws {
        let percent = plan.steps[index]
        report.steps.append(.init(percent: percent, startedNs: now, endedNs: nil, extensions: 0, outcome: nil))
        run.status = "running"
        run.percent = percent
        try setRoute(percent)
        say("Step \(index + 1) of \(plan.steps.count): \(percent)% of traces to the canary for \(Int(plan.stepSeconds)) s, checked every \(plan.checkSeconds) s")
        try save()
    }

    /// Every stage instance the canary processes run: on a sharded pipeline one per shard,
    /// named with the shard's suffix, as the watchdog quarantines them.
    static func instanceNames(pids: [Int32], host: String, shards: [Shard]) -> [String] {
        pids.flatMap { pid in shards.flatMap { shard in Stage.allCases.map { shard.instanceName(stage: $0, host: host, pid: pid) } } }
    }

    func check(stepStart: Int64, windowStart: Int64, now: Int64, exited: [String], step: Int) throws -> CheckResult {
        let beats = try heartbeats()
        let canaryPIDs = Set(canary.map(\.pid))
        var canaryBatches = (failed: 0, total: 0)
        var baselineBatches = (failed: 0, total: 0)
        for b in beats {
            if canaryPIDs.contains(Int32(b.pid)) {
                canaryBatches.failed += b.batchesFailed
                canaryBatches.total += b.batchesOK + b.batchesFailed
            } else {
                let start = baselineBatchesAtStart[b.instance] ?? (0, 0)
                let failed = max(0, b.batchesFailed - start.failed)
                baselineBatches.failed += failed
                baselineBatches.total += failed + max(0, b.batchesOK - start.ok)
            }
        }
        let host = ProcessInfo.processInfo.hostName
        let canaryInstances = Self.instanceNames(pids: canary.map(\.pid), host: host, shards: config.shardLayout.shards)
        // At 100 % the baseline gets nothing new: it is then judged by all its passes since
        // the run began, the nearest interval that has them.
        var baselineStep = try store.trackFigures(.baseline, fromNs: stepStart, toNs: now + 1)
        if baselineStep.decided < plan.minSamples {
            baselineStep = try store.trackFigures(.baseline, fromNs: run.startedNs, toNs: now + 1)
        }
        let input = CheckInput(
            canaryStep: try store.trackFigures(.canary, fromNs: stepStart, toNs: now + 1),
            baselineStep: baselineStep,
            canaryWindow: try store.trackFigures(.canary, fromNs: windowStart, toNs: now + 1),
            canaryBatches: canaryBatches, baselineBatches: baselineBatches,
            quarantines: try store.quarantines(of: canaryInstances, sinceNs: run.startedNs),
            exited: exited, nowNs: now, windowStartNs: windowStart)
        let result = judge.check(input)
        report.checks += 1
        if result.verdict == .inconclusive { report.inconclusiveChecks += 1 }
        let figures = try JSONDocument.text(result.json)
        try store.addCanaryCheck(CanaryCheckRecord(runID: run.runID, step: step + 1, percent: plan.steps[step], verdict: result.verdict.rawValue, figures: figures, tsNs: now))
        let d = result.denials
        say(String(format: "  check %d: %@ | canary %d decided, %.1f%% denied | baseline %d decided, %.1f%% denied | canary p95 %@ | %@",
                   report.checks, result.verdict.rawValue, d.canaryN, d.canaryRate * 100, d.baselineN, d.baselineRate * 100,
                   result.canaryWindowP95Ms.map { String(format: "%.0f ms", $0) } ?? "n/a", result.detail))
        try save()
        return result
    }

    // MARK: routing

    func setRoute(_ percent: Double) throws {
        let current = try connection.hashEntries(Streams.canaryRoute)
        let version = current.first { $0.field == "version" }.flatMap { Int64(String(decoding: $0.value, as: UTF8.self)) } ?? 0
        routeVersion = version + 1
        let route = CanaryRoute(percent: percent, version: routeVersion, runID: run.runID)
        _ = try connection.command(["HSET", .text(Streams.canaryRoute)] + route.fields.flatMap { [RedisArg.text($0.0), .text($0.1)] })
    }

    /// Waits until every live routing Kyle has applied the newest route version.
    @discardableResult
    func awaitRouteApplied(timeout: Double = 10) throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let canaryPIDs = Set(canary.map(\.pid))
        while ContinuousClock.now < deadline {
            let fresh = wallClockNanoseconds() - Int64(config.heartbeatStaleSeconds * 1e9)
            let kyles = try heartbeats().filter { $0.stage == Stage.kyle.rawValue && !canaryPIDs.contains(Int32($0.pid)) && $0.tsNs >= fresh }
            var seen: [String: Int64] = [:]
            for f in try connection.hashEntries(Streams.canaryRouteSeen) { seen[f.field] = Int64(String(decoding: f.value, as: UTF8.self)) }
            if kyles.allSatisfy({ (seen[$0.instance] ?? 0) >= routeVersion }) { return true }
            try await_(0.1)
        }
        logger.warning("not every baseline Kyle confirmed the route within \(timeout) s; handing back twice to be safe")
        return false
    }

    func heartbeats() throws -> [HeartbeatRecord] {
        try connection.hashEntries(Streams.heartbeats).compactMap { HeartbeatRecord(json: $0.value) }
    }

    // MARK: endings

    /// Routes everything back to the baseline, stops the canary, hands its unfinished work
    /// to the baseline, restores the snapshot's schema if the canary changed it and the
    /// release links, then proves the baseline with health checks and a synthetic loop.
    func rollBack(_ tripwire: Tripwire, detail: String) throws -> CanaryRunRecord {
        let t0 = wallClockNanoseconds()
        report.tripwire = tripwire
        report.tripwireDetail = detail
        report.tripwireNs = t0
        run.status = "rolling_back"
        run.tripwire = tripwire.rawValue
        say("TRIPWIRE \(tripwire.rawValue): \(detail)")
        say("Rolling back")
        logger.error("canary tripwire: rolling back", metadata: ["tripwire": .string(tripwire.rawValue), "detail": .string(detail)])
        try save()
        try setRoute(0)
        let confirmed = try awaitRouteApplied()
        say("  route: 0% to the canary\(confirmed ? ", applied by every baseline Kyle" : " (not confirmed by every Kyle)")")
        for (c, how) in zip(canary, ChildProcess.stopAll(canary)) { say("  \(c.name) (pid \(c.pid)): \(how)") }
        report.canaryStoppedNs = wallClockNanoseconds()
        try handBack(twice: !confirmed)
        try restoreSchemaIfChanged()
        if let baseline = links.current().map({ $0 }), report.baselineRelease.hasPrefix("/"), baseline != report.baselineRelease {
            try links.set(links.currentPath, to: report.baselineRelease)
            report.releaseRestored = report.baselineRelease
            say("  current release restored: \(report.baselineRelease)")
        } else {
            say("  current release unchanged: \(report.baselineRelease)")
        }
        try verifyBaseline()
        run.status = "rolled_back"
        report.outcome = "rolled back: \(tripwire.rawValue)"
        return try finish()
    }

    func handBack(twice: Bool) throws {
        let handback = StreamHandback(connection: connection, layout: config.shardLayout)
        var moved = try handback.run()
        if twice {
            try await_(2)
            for (s, n) in try handback.run() { moved[s, default: 0] += n }
        }
        report.handedBack = Dictionary(uniqueKeysWithValues: moved.map { ($0.key.rawValue, $0.value) })
        let total = moved.values.reduce(0, +)
        say("  handed \(total) unfinished canary entr\(total == 1 ? "y" : "ies") to the baseline\(total > 0 ? " (" + moved.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ") + ")" : "")")
        try save()
    }

    func restoreSchemaIfChanged() throws {
        let snapshot = try StateStore(path: report.snapshot, readOnly: true)
        let before = try snapshot.schema()
        if try store.schema() == before {
            say("  schema unchanged by the canary: no restore needed")
            return
        }
        let changes = try store.restoreSchema(to: before)
        report.schemaRestored = changes
        say("  the canary changed the schema; snapshot's schema restored, every row kept: \(changes.joined(separator: "; "))")
        try save()
    }

    /// Health: each stage has a baseline instance with a fresh heartbeat; then a short
    /// synthetic loop through the pipeline must pass.
    func verifyBaseline() throws {
        let deadline = ContinuousClock.now + .seconds(30)
        var missing: [String] = Stage.allCases.map(\.rawValue)
        while ContinuousClock.now < deadline {
            let fresh = wallClockNanoseconds() - Int64(config.heartbeatStaleSeconds * 1e9)
            let live = Set(try heartbeats().filter { $0.tsNs >= fresh && !$0.quarantined }.map(\.stage))
            missing = Stage.allCases.map(\.rawValue).filter { !live.contains($0) }
            if missing.isEmpty { break }
            try await_(0.2)
        }
        guard missing.isEmpty else {
            report.verification = "baseline unhealthy: no live instance of \(missing.joined(separator: ", "))"
            say("  \(report.verification!)")
            return
        }
        say("  baseline health: every stage has a live instance")
        let log = config.logDir + "/canary_verify.log"
        var env = ProcessInfo.processInfo.environment
        env["REDIS_URL"] = config.redisURL
        env["ARK_STATE_DB"] = config.stateDB
        env["ARK_LOG_FORMAT"] = "json"
        let loop = try ChildProcess.spawn(name: "synthetic loop", executable: Self.selfExecutable,
                                          arguments: ["synthetic-loop", "--duration", String(plan.verifySeconds), "--rate", String(plan.verifyRate)],
                                          environment: env, log: log)
        var status: String?
        while status == nil {
            try await_(0.2)
            status = loop.exitStatus()
        }
        if status == "exit 0" {
            report.baselineHealthyNs = wallClockNanoseconds()
            report.verification = "synthetic loop passed (\(plan.verifySeconds) s at \(plan.verifyRate) Hz)"
        } else {
            report.verification = "synthetic loop failed (\(status ?? "?")): see \(log)"
        }
        say("  \(report.verification!)")
    }

    /// The release becomes current and the baseline: new baseline agents from it take over,
    /// the canary drains and stops, the old baseline agents stop.
    func promote(by who: String) throws -> CanaryRunRecord {
        run.status = "promoting"
        say("Promoting \(release.path) (by \(who))")
        try save()
        let env = agentEnvironment(try release.environment(), release: release, track: .baseline)
        var fresh: [ChildProcess] = []
        for stage in Stage.allCases {
            let name = stage.rawValue.lowercased()
            let log = config.logDir + "/" + name + ".log"
            let child = try ChildProcess.spawnAgent(stage, ark: release.binary, name: stage.rawValue, environment: env, log: log)
            fresh.append(child)
            try "\(child.pid)\n".write(toFile: runDir + "/" + name + ".pid", atomically: true, encoding: .utf8)
            say("  baseline \(stage.rawValue) from the new release (pid \(child.pid))")
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let pids = Set(try heartbeats().map { Int32($0.pid) })
            if fresh.allSatisfy({ pids.contains($0.pid) }) { break }
            try await_(0.2)
        }
        try setRoute(0)
        try awaitRouteApplied()
        let drainDeadline = ContinuousClock.now + .seconds(30)
        let handback = StreamHandback(connection: connection, layout: config.shardLayout)
        while ContinuousClock.now < drainDeadline, !(try handback.unfinished().isEmpty) { try await_(0.2) }
        for (c, how) in zip(canary, ChildProcess.stopAll(canary)) { say("  \(c.name) (pid \(c.pid)): \(how)") }
        try handBack(twice: false)
        let old = report.baselinePIDs
        for (p, how) in zip(old, ChildProcess.stopAll(old, timeout: .seconds(15))) { say("  old baseline \(p.name) (pid \(p.pid)): \(how)") }
        try links.promote(release.path)
        say("  current → \(release.path)\(links.previous().map { ", previous → \($0)" } ?? "")")
        report.promotedNs = wallClockNanoseconds()
        run.status = "promoted"
        run.percent = 100
        report.outcome = "promoted"
        return try finish()
    }

    func finish() throws -> CanaryRunRecord {
        let now = wallClockNanoseconds()
        run.endedNs = now
        let unfinished = try StreamHandback(connection: connection, layout: config.shardLayout).unfinished()
        for stage in Stage.allCases where unfinished[stage] == nil {
            for shard in config.shardLayout.shards { _ = try connection.command(["DEL", .text(shard.stream(stage, on: .canary))]) }
        }
        // One key a command: on a cluster the two live in different slots.
        _ = try connection.command(["DEL", .text(Streams.canaryRoute)])
        _ = try connection.command(["DEL", .text(Streams.canaryRouteSeen)])
        try save()
        say(Self.describe(run, report: report))
        return run
    }

    func save() throws {
        run.updatedNs = wallClockNanoseconds()
        run.report = try JSONDocument.text(report.json)
        try store.saveCanaryRun(run)
    }

    // MARK: recovery and status

    /// Rolls back a run whose controller is gone (`ark canary abort` finds it so): stops the
    /// canary agents it recorded and does everything a rollback does.
    public static func recover(_ record: CanaryRunRecord, config: ARKConfig, runDir: String, say: @escaping (String) -> Void) throws -> CanaryRunRecord {
        // The report names the canary's processes: without it there is nothing sure to stop.
        let report: CanaryReport
        do {
            report = try CanaryReport(text: record.report)
        } catch {
            throw Failure("canary run \(record.runID) cannot be rolled back by ark: \(error); stop its agents by hand (log dir \(config.logDir)/canary_*.log)")
        }
        // The plan only sets how the baseline is proven afterwards: a damaged one does not
        // keep the canary running.
        var plan = CanaryPlan()
        do {
            plan = try CanaryPlan(json: JSONFields(text: record.plan, "canary plan"))
        } catch {
            say("WARNING: \(error); the baseline is proven with the default plan's loop (\(plan.verifySeconds) s at \(plan.verifyRate)/s)")
        }
        var run = record
        run.controllerPID = Int(getpid())
        let (store, connection) = try open(config)
        let c = CanaryController(plan: plan, config: config, release: try Release(validating: record.release), runDir: runDir, say: say,
                                 store: store, connection: connection, run: run, report: report)
        return try c.rollBack(.operatorAbort, detail: "ark canary abort, after the controller (pid \(record.controllerPID)) was gone")
    }

    /// A run, for people: status, steps, checks, tripwire and timings.
    public static func describe(_ run: CanaryRunRecord, report: CanaryReport?) -> String {
        var lines = ["Canary \(run.runID): \(run.status.uppercased())"]
        lines.append("  release      \(run.release)")
        lines.append("  baseline     \(run.baselineRelease)")
        // Once the run is over the route is closed (rolled back) or the release is the
        // baseline (promoted): the share in the record is the last one it ran at.
        switch run.status {
        case "rolled_back": lines.append("  share now    0% (was \(run.percent)%)")
        case "promoted": lines.append("  share now    100% (the baseline)")
        default: lines.append("  share now    \(run.percent)%")
        }
        guard let r = report else { return lines.joined(separator: "\n") }
        lines.append("  snapshot     \(r.snapshot)")
        for (i, s) in r.steps.enumerated() {
            let ext = s.extensions > 0 ? ", extended \(s.extensions)×" : ""
            lines.append("  step \(i + 1)       \(s.percent)%: \(s.outcome ?? "in progress")\(ext)")
        }
        lines.append("  checks       \(r.checks) (\(r.inconclusiveChecks) inconclusive)")
        if let t = r.tripwire {
            lines.append("  tripwire     \(t.rawValue): \(r.tripwireDetail ?? "")")
            let handed = r.handedBack.values.reduce(0, +)
            lines.append("  handed back  \(handed) unfinished canary entries to the baseline")
            if !r.schemaRestored.isEmpty { lines.append("  schema       restored from the snapshot: \(r.schemaRestored.joined(separator: "; "))") }
            if let v = r.verification { lines.append("  verification \(v)") }
            if let s = r.secondsToHealthyBaseline { lines.append(String(format: "  recovery     %.1f s from tripwire to a baseline proven healthy", s)) }
        }
        if r.promotedNs != nil { lines.append("  promoted     the release is current; the old one is previous") }
        if let o = r.outcome { lines.append("  outcome      \(o)") }
        return lines.joined(separator: "\n")
    }
}
