// The canary controller: carries out the stepper's actions on processes, Redis and the store.

import ARKBus
import ARKCore
import ARKOperations
import ARKProcess
import ARKState
import ARKStoreWriter
import Foundation
import Logging
import ServiceLifecycle

/// Runs one canary rollout: starts the release's agents as the canary track, routes a share
/// of traces to them step by step, judges them against the baseline every check, and
/// promotes the release after its last step or rolls it back on any tripwire (see
/// docs/canary.md).
public actor CanaryController {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    private nonisolated let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    let plan: CanaryPlan
    let config: ARKConfig
    let release: Release
    let runDir: String
    let store: StateStore
    let connection: RedisConnection
    let links: ReleaseLinks
    let say: @Sendable (String) -> Void
    var logger: Logger
    var record: CanaryRunRecord
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
    private init(plan: CanaryPlan, config: ARKConfig, release: Release, runDir: String, say: @escaping @Sendable (String) -> Void,
                 store: StateStore, connection: RedisConnection, record: CanaryRunRecord, report: CanaryReport) {
        self.executor = ThreadExecutor(name: "canary")
        self.plan = plan
        self.config = config
        self.release = release
        self.runDir = runDir
        self.say = say
        self.store = store
        self.connection = connection
        self.record = record
        self.report = report
        self.canary = report.canaryPIDs
        self.links = ReleaseLinks(directory: config.releasesDir)
        self.judge = CanaryJudge(plan: plan)
        var logger = Logger(label: "ark.canary")
        logger[metadataKey: "run_id"] = .string(record.runID)
        self.logger = logger
    }

    /// Lets the controller's thread end; after the run, when nothing more is asked of it.
    public nonisolated func close() {
        executor.shutdown()
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
    /// agents. A canary agent that dies before its first heartbeat, or a graceful shutdown
    /// before they all beat, ends the run as rolled back (nothing was routed to the canary
    /// yet) and the error says why.
    public static func start(plan: CanaryPlan, config: ARKConfig, release: Release, runDir: String,
                             say: @escaping @Sendable (String) -> Void) async throws -> CanaryController {
        try plan.validate()
        let (store, connection) = try open(config)
        if let open = try store.canaryRun(), !open.isFinished {
            if open.controllerIsAlive {
                throw Failure("canary run \(open.runID) is still \(open.status.rawValue) (controller pid \(open.controllerPID)). Fix: wait for it, or ark canary abort")
            }
            throw Failure("canary run \(open.runID) was left \(open.status.rawValue) by a controller that is gone. Fix: ark canary abort (rolls it back), then start again")
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
        let record = CanaryRunRecord(runID: "canary-" + compactTime(now), release: release.path, baselineRelease: baselineRelease, plan: planJSON,
                                     status: .starting, percent: 0, startedNs: now, updatedNs: now, controllerPID: Int(getpid()))
        let c = CanaryController(plan: plan, config: config, release: release, runDir: runDir, say: say, store: store, connection: connection, record: record,
                                 report: CanaryReport(release: release.path, baselineRelease: baselineRelease, snapshot: snapshot.path, baselinePIDs: baseline))
        do {
            try await c.begin(releaseEnv: releaseEnv)
        } catch {
            c.close()
            throw error
        }
        return c
    }

    /// The run recorded, the canary's consumer groups made and its agents started; on a
    /// failure the run ends rolled back with nothing routed.
    private func begin(releaseEnv: [String: String]) async throws {
        try save()
        for b in try heartbeats() { baselineBatchesAtStart[b.instance] = (b.batchesOK, b.batchesFailed) }
        // The canary's groups exist before any signal is routed, so none is missed.
        for stage in Stage.allCases {
            try StreamBus(connection: connection, group: stage.group, consumer: "canary-controller")
                .ensureGroups(config.shardLayout.shards.map { $0.stream(stage, on: .canary) })
        }
        do {
            try await startCanaryAgents(env: releaseEnv)
        } catch {
            for (p, how) in zip(canary, ChildProcess.stopAll(canary)) { say("  \(p.name) (pid \(p.pid)): \(how)") }
            let tripwire: Tripwire = error is Stopped ? .controllerStopped : .processExit
            record.status = .rolledBack
            record.tripwire = tripwire.rawValue
            report.tripwire = tripwire
            report.tripwireDetail = "\(error)"
            report.outcome = "rolled back at start: nothing was routed to the canary"
            _ = try finish()
            throw error
        }
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

    /// A graceful shutdown (SIGINT, SIGTERM) came while the canary agents were starting.
    struct Stopped: Error, CustomStringConvertible {
        var description: String { "the controller was stopped (SIGINT or SIGTERM) while the canary agents were starting" }
    }

    func startCanaryAgents(env releaseEnv: [String: String]) async throws {
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
            if Task.isShuttingDownGracefully { throw Stopped() }
            let pids = Set(try heartbeats().map { Int32($0.pid) })
            if canary.allSatisfy({ pids.contains($0.pid) }) { return }
            if let gone = canary.first(where: { !$0.isRunning }) {
                throw Failure("\(gone.name) exited at start (\(gone.exitStatus() ?? "?")): see its log in \(config.logDir)")
            }
            try await pause(0.2)
        }
        throw Failure("the canary agents sent no heartbeat within 30 s: see \(config.logDir)/canary_*.log")
    }

    /// Sleeps without holding the controller's thread.
    func pause(_ seconds: Double) async throws {
        try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
    }

    // MARK: the run

    /// Runs the steps until the release is promoted or rolled back, and returns the final
    /// record. A graceful shutdown of the process (SIGINT, SIGTERM) rolls the run back rather
    /// than leave it stranded.
    public func runToEnd() async throws -> CanaryRunRecord {
        var stepper = CanaryStepper(plan: plan, startNs: wallClockNanoseconds())
        try beginStep(0, at: stepper.stepStartNs)
        while true {
            if Task.isShuttingDownGracefully {
                report.steps[stepper.step].outcome = "aborted"
                return try await rollBack(.controllerStopped, detail: "the controller was stopped (SIGINT or SIGTERM) before the run ended")
            }
            let now = wallClockNanoseconds()
            let request = try store.canaryRun(id: record.runID)?.requested.flatMap(CanaryStepper.Request.init(rawValue:))
            let exited = canary.compactMap { c in c.exitStatus().map { "\(c.name) pid \(c.pid): \($0)" } }
            var action = stepper.next(nowNs: now, request: request, exited: !exited.isEmpty)
            if case .check(let step, let stepStart, let windowStart) = action {
                let result = try check(stepStart: stepStart, windowStart: windowStart, now: now, exited: exited, step: step)
                action = stepper.next(nowNs: now, check: result, exited: !exited.isEmpty)
            }
            switch action {
            case .wait, .check:
                break
            case .rollBack(let tripwire, let detail):
                report.steps[stepper.step].outcome = tripwire == .operatorAbort ? "aborted" : "tripped"
                return try await rollBack(tripwire, detail: detail)
            case .promote(let by):
                if by == .operator {
                    report.steps[stepper.step].outcome = "promoted by operator"
                } else {
                    report.steps[stepper.step].outcome = "passed"
                    report.steps[stepper.step].endedNs = now
                }
                return try await promote(by: by.rawValue)
            case .advance(let passed, let next):
                report.steps[passed].outcome = "passed"
                report.steps[passed].endedNs = now
                try beginStep(next, at: now)
            case .extend(let step, let extensions, let detail):
                report.steps[step].extensions = extensions
                say("  step \(step + 1) inconclusive (\(detail)): extended by \(Int(plan.stepSeconds)) s (\(extensions) of \(plan.maxExtensions))")
                try save()
            case .hold(let step, let detail):
                record.status = .holding
                report.steps[step].outcome = "inconclusive"
                say("  HOLDING at \(plan.steps[step])%: still too little traffic after \(plan.maxExtensions) extension(s) (\(detail)). Tripwires stay armed; the run goes on by itself once a step is conclusive, or: ark canary promote | ark canary abort")
                logger.warning("canary holding: inconclusive", metadata: ["detail": .string(detail)])
                try save()
            }
            try await pause(min(0.2, plan.checkSeconds / 2))
        }
    }

    func beginStep(_ index: Int, at now: Int64) throws {
        let percent = plan.steps[index]
        report.steps.append(.init(percent: percent, startedNs: now, endedNs: nil, extensions: 0, outcome: nil))
        record.status = .running
        record.percent = percent
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
            baselineStep = try store.trackFigures(.baseline, fromNs: record.startedNs, toNs: now + 1)
        }
        let input = CheckInput(
            canaryStep: try store.trackFigures(.canary, fromNs: stepStart, toNs: now + 1),
            baselineStep: baselineStep,
            canaryWindow: try store.trackFigures(.canary, fromNs: windowStart, toNs: now + 1),
            canaryBatches: canaryBatches, baselineBatches: baselineBatches,
            quarantines: try store.quarantines(of: canaryInstances, sinceNs: record.startedNs),
            exited: exited, nowNs: now, windowStartNs: windowStart)
        let result = judge.check(input)
        report.checks += 1
        if result.verdict == .inconclusive { report.inconclusiveChecks += 1 }
        let figures = try JSONDocument.text(result.json)
        try store.addCanaryCheck(CanaryCheckRecord(runID: record.runID, step: step + 1, percent: plan.steps[step], verdict: result.verdict.rawValue, figures: figures, tsNs: now))
        let d = result.denials
        say(String(format: "  check %d: %@ | canary %d decided, %.1f%% denied | baseline %d decided, %.1f%% denied | canary p95 %@ | %@",
                   report.checks, result.verdict.rawValue, d.canaryN, d.canaryRate * 100, d.baselineN, d.baselineRate * 100,
                   result.canaryWindowP95Ms.map { String(format: "%.0f ms", $0) } ?? "n/a", result.detail))
        try save()
        return result
    }

    // MARK: routing

    func setRoute(_ percent: Double) throws {
        routeVersion = try ControlPlane(connection).setCanaryRoute(percent: percent, runID: record.runID).version
    }

    /// Waits until every live routing Kyle has applied the newest route version.
    @discardableResult
    func awaitRouteApplied(timeout: Double = 10) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let canaryPIDs = Set(canary.map(\.pid))
        while ContinuousClock.now < deadline {
            let fresh = wallClockNanoseconds() - Int64(config.heartbeatStaleSeconds * 1e9)
            let kyles = try heartbeats().filter { $0.stage == Stage.kyle.rawValue && !canaryPIDs.contains(Int32($0.pid)) && $0.tsNs >= fresh }
            let seen = try ControlPlane(connection).routeConfirmations()
            if kyles.allSatisfy({ (seen[$0.instance] ?? 0) >= routeVersion }) { return true }
            try await pause(0.1)
        }
        logger.warning("not every baseline Kyle confirmed the route within \(timeout) s; handing back twice to be safe")
        return false
    }

    func heartbeats() throws -> [HeartbeatRecord] {
        try ControlPlane(connection).heartbeats()
    }

    // MARK: endings

    /// Routes everything back to the baseline, stops the canary, hands its unfinished work
    /// to the baseline, restores the snapshot's schema if the canary changed it and the
    /// release links, then proves the baseline with health checks and a synthetic loop.
    func rollBack(_ tripwire: Tripwire, detail: String) async throws -> CanaryRunRecord {
        let t0 = wallClockNanoseconds()
        report.tripwire = tripwire
        report.tripwireDetail = detail
        report.tripwireNs = t0
        record.status = .rollingBack
        record.tripwire = tripwire.rawValue
        say("TRIPWIRE \(tripwire.rawValue): \(detail)")
        say("Rolling back")
        logger.error("canary tripwire: rolling back", metadata: ["tripwire": .string(tripwire.rawValue), "detail": .string(detail)])
        try save()
        try setRoute(0)
        let confirmed = try await awaitRouteApplied()
        say("  route: 0% to the canary\(confirmed ? ", applied by every baseline Kyle" : " (not confirmed by every Kyle)")")
        for (c, how) in zip(canary, ChildProcess.stopAll(canary)) { say("  \(c.name) (pid \(c.pid)): \(how)") }
        report.canaryStoppedNs = wallClockNanoseconds()
        try await handBack(twice: !confirmed)
        try restoreSchemaIfChanged()
        if let baseline = links.current().map({ $0 }), report.baselineRelease.hasPrefix("/"), baseline != report.baselineRelease {
            try links.set(links.currentPath, to: report.baselineRelease)
            report.releaseRestored = report.baselineRelease
            say("  current release restored: \(report.baselineRelease)")
        } else {
            say("  current release unchanged: \(report.baselineRelease)")
        }
        try await verifyBaseline()
        record.status = .rolledBack
        report.outcome = "rolled back: \(tripwire.rawValue)"
        return try finish()
    }

    func handBack(twice: Bool) async throws {
        let handback = StreamHandback(connection: connection, layout: config.shardLayout)
        var moved = try handback.run()
        if twice {
            try await pause(2)
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
    func verifyBaseline() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        var missing: [String] = Stage.allCases.map(\.rawValue)
        while ContinuousClock.now < deadline {
            let fresh = wallClockNanoseconds() - Int64(config.heartbeatStaleSeconds * 1e9)
            let live = Set(try heartbeats().filter { $0.tsNs >= fresh && !$0.quarantined }.map(\.stage))
            missing = Stage.allCases.map(\.rawValue).filter { !live.contains($0) }
            if missing.isEmpty { break }
            try await pause(0.2)
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
            try await pause(0.2)
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
    func promote(by who: String) async throws -> CanaryRunRecord {
        record.status = .promoting
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
            try await pause(0.2)
        }
        try setRoute(0)
        try await awaitRouteApplied()
        let drainDeadline = ContinuousClock.now + .seconds(30)
        let handback = StreamHandback(connection: connection, layout: config.shardLayout)
        while ContinuousClock.now < drainDeadline, !(try handback.unfinished().isEmpty) { try await pause(0.2) }
        for (c, how) in zip(canary, ChildProcess.stopAll(canary)) { say("  \(c.name) (pid \(c.pid)): \(how)") }
        try await handBack(twice: false)
        let old = report.baselinePIDs
        for (p, how) in zip(old, ChildProcess.stopAll(old, timeout: .seconds(15))) { say("  old baseline \(p.name) (pid \(p.pid)): \(how)") }
        try links.promote(release.path)
        say("  current → \(release.path)\(links.previous().map { ", previous → \($0)" } ?? "")")
        report.promotedNs = wallClockNanoseconds()
        record.status = .promoted
        record.percent = 100
        report.outcome = "promoted"
        return try finish()
    }

    func finish() throws -> CanaryRunRecord {
        let now = wallClockNanoseconds()
        record.endedNs = now
        let unfinished = try StreamHandback(connection: connection, layout: config.shardLayout).unfinished()
        for stage in Stage.allCases where unfinished[stage] == nil {
            for shard in config.shardLayout.shards { _ = try connection.command(["DEL", .text(shard.stream(stage, on: .canary))]) }
        }
        try ControlPlane(connection).clearCanaryRoute()
        try save()
        say(record.summary(report: report))
        return record
    }

    func save() throws {
        record.updatedNs = wallClockNanoseconds()
        record.report = try JSONDocument.text(report.json)
        try store.saveCanaryRun(record)
    }

    // MARK: recovery and status

    /// Rolls back a run whose controller is gone (`ark canary abort` finds it so): stops the
    /// canary agents it recorded and does everything a rollback does.
    public static func recover(_ record: CanaryRunRecord, config: ARKConfig, runDir: String, say: @escaping @Sendable (String) -> Void) async throws -> CanaryRunRecord {
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
        var taken = record
        taken.controllerPID = Int(getpid())
        let (store, connection) = try open(config)
        let c = CanaryController(plan: plan, config: config, release: try Release(validating: record.release), runDir: runDir, say: say,
                                 store: store, connection: connection, record: taken, report: report)
        defer { c.close() }
        return try await c.rollBack(.operatorAbort, detail: "ark canary abort, after the controller (pid \(record.controllerPID)) was gone")
    }
}
