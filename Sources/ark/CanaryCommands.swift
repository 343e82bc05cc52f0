// `ark canary start`, `status`, `abort` and `promote`.

import ARKCanary
import ARKCore
import ARKProcess
import ARKState
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

struct CanaryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "canary",
        abstract: "Roll a release out to a share of traffic, judge it against the baseline, promote it or roll it back.",
        discussion: """
            A release is a directory with ark, graveyard/ and .env.production. The canary runs
            the release's five agents as their own processes (track=canary); the baseline Kyle
            sends them a stable share of traces by trace id, and each trace stays on its track
            to the end. Every check compares the canary with the baseline over the same
            interval; any tripwire rolls back at once, losing nothing.
            Examples:
              ark canary start --release /opt/ark/releases/2026-11-23
              ark canary start --release DIR --steps 10,25,50,100 --step-minutes 10
              ark canary status
              ark canary abort
              ark canary promote
            """,
        subcommands: [CanaryStartCommand.self, CanaryStatusCommand.self, CanaryAbortCommand.self, CanaryPromoteCommand.self])
}

/// The layout options every canary command shares.
struct CanaryLayout: ParsableArguments {
    @Flag(help: "Use the local layout (./.ark/), as start_production.sh --local does.")
    var local = false

    @Option(help: "Where the baseline's pid files are (default: ARK_RUN_DIR, or the start script's).")
    var runDir: String?

    func config() throws -> ARKConfig {
        let root = FileManager.default.currentDirectoryPath
        let base = local ? ARKConfig.localDefaults(root: root) : ARKConfig()
        do {
            return try ARKConfig.load(environment: ProcessInfo.processInfo.environment, base: base)
        } catch {
            throw fail(error.description, code: 78)
        }
    }

    func resolvedRunDir(_ config: ARKConfig) -> String {
        let root = FileManager.default.currentDirectoryPath
        return runDir ?? ProcessInfo.processInfo.environment["ARK_RUN_DIR"] ?? (local ? root + "/.ark/run" : config.logDir + "/../run")
    }

    func latestRun(_ config: ARKConfig) throws -> CanaryRunRecord? {
        try StateStore(path: config.stateDB, readOnly: true).canaryRun()
    }
}

struct CanaryStartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a canary of a release and run it to promotion or rollback (stays in the foreground).",
        discussion: """
            Tripwires, checked every --check-seconds over the step so far: HRM denial rate more
            than --sigmas standard errors above the baseline's; any watchdog quarantine of a
            canary instance; canary p95 pass latency over SLO_P95_LATENCY_MS for
            --latency-breach-seconds; failed passes or failed batches above the baseline's; a
            canary process exiting. A step without --min-samples decisions on each track is
            inconclusive: it is extended by its length up to --max-extensions times, then the
            run holds at its share (tripwires armed) until traffic makes it conclusive or an
            operator runs ark canary promote or abort.
            Examples:
              ark canary start --release /opt/ark/releases/r42
              ark canary start --release .ark/releases/r42 --local --percent 10 --step-minutes 10
              ark canary start --release DIR --steps 10,25,50,100 --step-minutes 10
            """)

    @OptionGroup var layout: CanaryLayout

    @Option(help: "The release directory (ark, graveyard/, .env.production).")
    var release: String

    @Option(help: "Share of traffic for the canary, when --steps is not given.")
    var percent: Double = 10

    @Option(help: "Shares for successive steps, e.g. 10,25,50,100; promotion follows the last.")
    var steps: String?

    @Option(help: "Length of each step in minutes.")
    var stepMinutes: Double = 10

    @Option(help: "Length of each step in seconds (overrides --step-minutes; for rehearsals).")
    var stepSeconds: Double?

    @Option(help: "Seconds between checks.")
    var checkSeconds: Double = 30

    @Option(help: "Decisions each track needs in a step before it is judged.")
    var minSamples: Int = 30

    @Option(help: "Extensions of an inconclusive step before the run holds.")
    var maxExtensions: Int = 2

    @Option(help: "Standard errors above the baseline's rate that trip.")
    var sigmas: Double = 3

    @Option(help: "Seconds the canary's p95 may stay over the SLO.")
    var latencyBreachSeconds: Double = 180

    @Option(help: "Seconds of synthetic loop proving the baseline after a rollback.")
    var verifySeconds: Int = 10

    func plan(_ config: ARKConfig) throws -> CanaryPlan {
        var p = CanaryPlan()
        if let steps {
            let parsed = steps.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parsed.allSatisfy({ $0 != nil }) else { throw ValidationError("--steps '\(steps)' is not a list of numbers such as 10,25,50,100") }
            p.steps = parsed.compactMap { $0 }
        } else {
            p.steps = [percent]
        }
        p.stepSeconds = stepSeconds ?? stepMinutes * 60
        p.checkSeconds = checkSeconds
        p.minSamples = minSamples
        p.maxExtensions = maxExtensions
        p.sigmas = sigmas
        p.latencySLOMs = config.sloP95LatencyMs
        p.latencyBreachSeconds = latencyBreachSeconds
        p.verifySeconds = verifySeconds
        do {
            try p.validate()
        } catch {
            throw ValidationError(error.description)
        }
        return p
    }

    func run() async throws {
        let config = try layout.config()
        let plan = try plan(config)
        let rel: Release
        do {
            rel = try Release(validating: release)
        } catch {
            throw fail(error.description, code: 78)
        }
        // Unbuffered, so a log file or a pipe shows each line as it happens.
        let say: @Sendable (String) -> Void = { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
        say("Canary of \(rel.path): steps \(plan.steps.map { "\($0)%" }.joined(separator: " → ")), \(Int(plan.stepSeconds)) s each")
        // A service, so SIGINT or SIGTERM rolls the run back before the process ends.
        let rollout = CanaryRollout(plan: plan, config: config, release: rel, runDir: layout.resolvedRunDir(config), say: say)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: rollout, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "ark.canary")))
        do {
            try await group.run()
        } catch let e as CanaryController.Failure {
            throw fail("ark canary start: \(e.description)", code: 1)
        }
        if rollout.result?.status != .promoted { throw ExitCode(3) }
    }
}

struct CanaryStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The newest canary run: its status, steps, checks, tripwire and timings.",
        discussion: """
            Exit 0 when a run exists. --json prints the run with its report and checks.
            Examples:
              ark canary status
              ark canary status --local --json
            """)

    @OptionGroup var layout: CanaryLayout

    @Flag(help: "Print the run, its report and its checks as JSON.")
    var json = false

    func run() throws {
        let config = try layout.config()
        guard FileManager.default.fileExists(atPath: config.stateDB), let r = try layout.latestRun(config) else {
            print("No canary run recorded in \(config.stateDB)")
            return
        }
        // "{}" until the controller has started the run's agents.
        var report: CanaryReport?
        var unreadable: String?
        if r.report != "{}" {
            do { report = try CanaryReport(text: r.report) } catch { unreadable = "\(error)" }
        }
        if json {
            let checks = try StateStore(path: config.stateDB, readOnly: true).canaryChecks(runID: r.runID)
            let object = r.statusObject(checks: checks)
            print(try JSONDocument.text(object, .pretty), terminator: "")
        } else {
            print(r.summary(report: report))
            if let unreadable { print("  WARNING      its report cannot be read: \(unreadable)") }
            if !r.isFinished && !r.controllerIsAlive {
                print("  WARNING      its controller (pid \(r.controllerPID)) is gone: ark canary abort rolls it back")
            }
        }
    }
}

/// Asks the running controller to act, or (abort only) acts itself when it is gone.
func requestCanary(_ action: String, layout: CanaryLayout) async throws {
    let config = try layout.config()
    guard FileManager.default.fileExists(atPath: config.stateDB), let r = try layout.latestRun(config), !r.isFinished else {
        throw fail("ark canary \(action): no canary run in progress", code: 1)
    }
    if !r.controllerIsAlive {
        guard action == "abort" else {
            throw fail("ark canary promote: the controller of \(r.runID) (pid \(r.controllerPID)) is gone. Fix: ark canary abort, then start a new run", code: 1)
        }
        print("The controller of \(r.runID) is gone: rolling back from here")
        let result = try await CanaryController.recover(r, config: config, runDir: layout.resolvedRunDir(config)) { print($0) }
        if result.status != .rolledBack { throw ExitCode(1) }
        return
    }
    let store = try StateStore(path: config.stateDB)
    guard try store.requestCanary(action, runID: r.runID) else { throw fail("ark canary \(action): \(r.runID) ended meanwhile", code: 1) }
    print("Asked the controller of \(r.runID) (pid \(r.controllerPID)) to \(action); waiting for it")
    let deadline = Date().addingTimeInterval(180)
    while Date() < deadline {
        if let now = try store.canaryRun(id: r.runID), now.isFinished {
            print("\(r.runID): \(now.status.rawValue)")
            return
        }
        try await Task.sleep(for: .milliseconds(200))
    }
    throw fail("\(r.runID) has not finished within 180 s: see ark canary status", code: 1)
}

struct CanaryAbortCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abort",
        abstract: "Roll the canary back now (works even when its controller is gone).",
        discussion: """
            Examples:
              ark canary abort
              ark canary abort --local
            """)

    @OptionGroup var layout: CanaryLayout

    func run() async throws { try await requestCanary("abort", layout: layout) }
}

struct CanaryPromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Promote the canary now, skipping its remaining steps.",
        discussion: """
            Examples:
              ark canary promote
              ark canary promote --local
            """)

    @OptionGroup var layout: CanaryLayout

    func run() async throws { try await requestCanary("promote", layout: layout) }
}
