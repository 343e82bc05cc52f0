import ARKAuth
import ARKCore
import ARKHTTPClient
import ARKState
import ARKSynthetic
import ARKTestSupport
import Foundation
import GRDB
import Testing

/// Canary rollouts with real processes: a baseline of five `ark agent` processes with pid
/// files (as start_production.sh leaves them), the watchdog, `ark canary start` on a second
/// release directory, synthetic traffic through Redis, a private Redis and a real store.
/// Timings are compressed with the command's own flags.
extension EndToEnd { @Suite final class CanaryTests {
    let f: Pipeline
    var runDir: String { f.dir.path + "/run" }
    var releases: String { f.dir.path + "/releases" }
    var watchdog: ArkProcess?

    init() throws {
        f = try Pipeline()
        f.extraEnvironment = [
            "ARK_LOG_DIR": f.dir.path + "/logs", "ARK_BACKUP_DIR": f.dir.path + "/backups", "ARK_RELEASES_DIR": f.dir.path + "/releases",
            "ARK_RUN_DIR": f.dir.path + "/run",
        ]
        for d in ["logs", "backups", "releases", "run"] { try FileManager.default.createDirectory(atPath: f.dir.path + "/" + d, withIntermediateDirectories: true) }
    }
    deinit {
        // Whatever the controller started (canary or promoted agents), by their pid files and logs.
        for pid in startedPIDs() { kill(pid, SIGKILL) }
        f.shutdown()
    }

    /// Pids the controller wrote to pid files or announced in its output.
    func startedPIDs() -> [pid_t] {
        var pids: [pid_t] = []
        for name in ["kyle", "joey", "hrm", "kenny", "aletheia"] {
            if let t = try? String(contentsOfFile: runDir + "/\(name).pid", encoding: .utf8), let p = pid_t(t.trimmingCharacters(in: .whitespacesAndNewlines)) { pids.append(p) }
        }
        let out = (try? String(contentsOfFile: f.dir.path + "/canary.log", encoding: .utf8)) ?? ""
        for line in out.split(separator: "\n") where line.contains("(pid ") {
            if let r = line.range(of: "(pid "), let end = line[r.upperBound...].firstIndex(of: ")"), let p = pid_t(line[r.upperBound..<end]) { pids.append(p) }
        }
        return pids
    }

    /// A release directory with `.env.production` holding `env`.
    func makeRelease(_ name: String, env: [String] = []) throws -> String {
        try makeTestRelease(in: releases, name, env: env)
    }

    /// The baseline release (current), its agents with pid files, the watchdog; then the
    /// candidate release with `canaryEnv`.
    func startBaseline(canaryEnv: [String]) throws -> String {
        let base = try makeRelease("base")
        try FileManager.default.createSymbolicLink(atPath: releases + "/current", withDestinationPath: base)
        try f.startAll()
        for (stage, p) in f.agents { try "\(p.pid)\n".write(toFile: runDir + "/\(stage.rawValue.lowercased()).pid", atomically: true, encoding: .utf8) }
        watchdog = try f.startProcess(["watchdog"], name: "watchdog")
        #expect(try waitFor(timeout: 30) { try f.redis.client().command(["HLEN", "ark:heartbeats"]).integer ?? 0 >= 5 })
        return try makeRelease("next", env: canaryEnv)
    }

    func startCanary(_ release: String, _ flags: [String]) throws -> ArkProcess {
        try f.startProcess(["canary", "start", "--release", release, "--check-seconds", "1", "--min-samples", "20", "--verify-seconds", "3"] + flags, name: "canary")
    }

    func finished(_ canary: ArkProcess, timeout: Double = 90) throws -> CanaryRunRecord {
        let ended = waitFor(timeout: timeout, interval: 0.2) { !canary.isRunning }
        #expect(ended, "the canary run did not end: \(canary.output.suffix(3000))")
        return try #require(try f.store().canaryRun())
    }

    func report(_ run: CanaryRunRecord) throws -> [String: Any] {
        let r = try #require(jsonObject(run.report))
        // The figure docs/canary.md reports: tripwire to a baseline proven by its synthetic loop.
        if let t = r["tripwireNs"] as? Int64 ?? (r["tripwireNs"] as? Int).map(Int64.init),
           let h = r["baselineHealthyNs"] as? Int64 ?? (r["baselineHealthyNs"] as? Int).map(Int64.init) {
            print(String(format: "canary %@ (%@): %.1f s from tripwire to a proven baseline", run.runID, run.tripwire ?? "?", Double(h - t) / 1e9))
        }
        return r
    }

    /// Nothing lost, audit log intact, every trace recorded once, no canary work left behind.
    func expectNothingLost(_ traffic: SyntheticReport, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(traffic.lost == 0, "\(traffic.summary)", sourceLocation: sourceLocation)
        // Both tracks' Aletheias extended one tree and signed with one key.
        let audit = try f.verifyAudit(f.store())
        #expect(audit.ok && audit.checkpointsVerified > 0, "\(audit)", sourceLocation: sourceLocation)
        #expect(try f.tracesFilledTwice() == [], sourceLocation: sourceLocation)
        let c = try f.redis.client()
        for stage in Stage.allCases {
            let len = try c.command(["XLEN", .text(stage.inputStream(on: .canary))]).integer ?? 0
            #expect(len == 0, "\(stage.inputStream(on: .canary)) still holds \(len) entries", sourceLocation: sourceLocation)
        }
    }

    func trackCount(_ track: Track) throws -> Int {
        try f.store().trackFigures(track, fromNs: 0, toNs: Int64.max).passes
    }

    @Test("a good release goes through its steps and is promoted: it becomes current, its agents the baseline")
    func goodReleaseIsPromoted() async throws {
        let next = try startBaseline(canaryEnv: [])
        let oldAgents = Array(f.agents.values)
        let canary = try startCanary(next, ["--steps", "30,100", "--step-seconds", "5"])
        let traffic = try await f.synthetic(count: 800, rate: 40)
        let run = try finished(canary)
        #expect(run.status == .promoted, "\(canary.output.suffix(3000))")
        #expect(canary.child.exitCode == 0)
        let r = try report(run)
        #expect((r["steps"] as? [[String: Any]])?.map { $0["outcome"] as? String } == ["passed", "passed"])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: releases + "/current") == next)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: releases + "/previous") == releases + "/base")
        #expect(oldAgents.allSatisfy { !$0.isRunning }, "the old baseline agents still run")
        #expect(try trackCount(.canary) > 100)
        try expectNothingLost(traffic)
        #expect(traffic.passed, "\(traffic.summary)")
        // The promoted agents (pid files rewritten) carry on as the baseline.
        let after = try await f.synthetic(count: 40, rate: 20)
        #expect(after.passed && after.lost == 0, "\(after.summary)")
    }

    @Test("a release that sizes positions over the limit trips the denial spike and is rolled back, losing nothing")
    func denyingReleaseIsRolledBack() async throws {
        let next = try startBaseline(canaryEnv: ["ARK_FAULT=joey:size=0.15"])
        let canary = try startCanary(next, ["--steps", "30,100", "--step-seconds", "20"])
        let traffic = try await f.synthetic(count: 600, rate: 40)
        let run = try finished(canary)
        #expect(run.status == .rolledBack, "\(canary.output.suffix(3000))")
        #expect(run.tripwire == "denial_spike")
        #expect(canary.child.exitCode == 3)
        let r = try report(run)
        #expect((r["verification"] as? String)?.hasPrefix("synthetic loop passed") == true, "\(r)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: releases + "/current") == releases + "/base")
        #expect(try trackCount(.canary) >= 20)
        try expectNothingLost(traffic)
        let status = try runCommand(Repo.arkBinary, ["canary", "status"], environment: f.environment)
        #expect(status.output.contains("ROLLED_BACK") && status.output.contains("denial_spike") && status.output.contains("from tripwire to a baseline proven healthy"), "\(status.output)")
    }

    @Test("a slow release breaches the p95 SLO for the breach time and is rolled back")
    func slowReleaseIsRolledBack() async throws {
        let next = try startBaseline(canaryEnv: ["ARK_FAULT=kenny:latency=700ms"])
        let canary = try startCanary(next, ["--steps", "50,100", "--step-seconds", "30", "--latency-breach-seconds", "3"])
        let traffic = try await f.synthetic(count: 600, rate: 40)
        let run = try finished(canary)
        #expect(run.status == .rolledBack, "\(canary.output.suffix(3000))")
        #expect(run.tripwire == "latency_breach", "\(canary.output.suffix(3000))")
        #expect((try report(run)["verification"] as? String)?.hasPrefix("synthetic loop passed") == true)
        try expectNothingLost(traffic)
    }

    @Test("a release whose Kenny crashes trips at once; the entries it held are handed to the baseline")
    func crashingReleaseIsRolledBack() async throws {
        let next = try startBaseline(canaryEnv: ["ARK_FAULT=kenny:crash"])
        let canary = try startCanary(next, ["--steps", "30,100", "--step-seconds", "30"])
        let traffic = try await f.synthetic(count: 400, rate: 40)
        let run = try finished(canary)
        #expect(run.status == .rolledBack, "\(canary.output.suffix(3000))")
        #expect(run.tripwire == "process_exit", "\(canary.output.suffix(3000))")
        let handed = (try report(run)["handedBack"] as? [String: Int]) ?? [:]
        #expect((handed["Kenny"] ?? 0) > 0, "nothing was handed back: \(canary.output.suffix(2000))")
        try expectNothingLost(traffic)
    }

    @Test("too little traffic is inconclusive: the step is extended, then the run holds; abort from the console rolls back and a schema the canary changed is restored with every row kept")
    func lowTrafficHoldsAndAbortRestoresSchema() async throws {
        // The operator aborts from the console of `ark metrics-server`.
        let port = try freeTCPPort()
        let secret = String(repeating: "c0", count: 20)
        try f.startProcess(["metrics-server"], name: "metrics", environment: ["METRICS_PORT": String(port), "JWT_SECRET": secret])
        let console = "http://127.0.0.1:\(port)/console/canary"
        let token = try await JWTAuthority(secret: secret, issuer: "ark", maxTTLSeconds: 3600).mint(subject: "rollout-desk", ttlSeconds: 600)
        let next = try startBaseline(canaryEnv: [])
        let canary = try startCanary(next, ["--percent", "10", "--step-seconds", "2", "--max-extensions", "1"])
        let pipeline = f
        let traffic = Task { try await pipeline.synthetic(count: 14, rate: 1) }
        #expect(try waitFor(timeout: 30, interval: 0.2) { try f.store().canaryRun()?.status == .holding }, "\(canary.output.suffix(3000))")
        #expect(canary.isRunning)
        let checks = try f.store().canaryChecks(runID: try #require(try f.store().canaryRun()).runID)
        #expect(!checks.isEmpty && checks.allSatisfy { $0.verdict == "inconclusive" }, "\(checks.map(\.verdict))")
        #expect(canary.output.contains("extended by 2 s (1 of 1)"))
        // What a canary's migration would do: a new column, a new table, a recorded migration.
        let store = try f.store()
        let before = try store.schema()
        try await DatabaseQueue(path: f.statePath).write { db in
            try db.execute(sql: """
                ALTER TABLE passes ADD COLUMN canary_note TEXT;
                CREATE TABLE canary_extra (x INTEGER);
                INSERT INTO grdb_migrations (identifier) VALUES ('v99_canary_only');
                """)
        }
        #expect(try store.schema() != before)
        let report0 = try await traffic.value
        let passesBefore = try store.passCount()
        let shown = try await HTTPClient.request("GET", console).json?["run"] as? [String: Any]
        #expect(shown?["status"] as? String == "holding" && shown?["controller_alive"] as? Bool == true && ((shown?["checks"] as? [Any])?.count ?? 0) >= checks.count, "\(String(describing: shown))")
        #expect(try await HTTPClient.request("POST", console + "/abort").status == 401)
        let abort = try await HTTPClient.request("POST", console + "/abort", headers: [("Authorization", "Bearer " + token)])
        #expect(abort.status == 202 && abort.json?["requested"] as? String == "abort", "\(abort.text)")
        let run = try finished(canary)
        #expect(run.status == .rolledBack)
        #expect(run.tripwire == "operator_abort")
        #expect(try await HTTPClient.request("GET", console).json?["run"].flatMap { ($0 as? [String: Any])?["status"] as? String } == "rolled_back")
        #expect(try await HTTPClient.request("POST", console + "/promote", headers: [("Authorization", "Bearer " + token)]).json?["error"] as? String == "no canary run is in progress")
        #expect(try store.schema() == before)
        #expect(try store.passCount() >= passesBefore)
        #expect(try store.verifyAudit().ok)
        let restored = (try report(run)["schemaRestored"] as? [String]) ?? []
        #expect(restored.contains { $0.contains("passes") } && restored.contains { $0.contains("canary_extra") } && restored.contains { $0.contains("v99_canary_only") }, "\(restored)")
        try expectNothingLost(report0)
    }

    @Test("a release whose agent cannot start ends the run rolled back at once, leaving no canary process")
    func releaseThatCannotStart() throws {
        let next = try startBaseline(canaryEnv: ["ARK_FAULT=kenny:latency=soon"])
        let canary = try startCanary(next, ["--step-seconds", "30"])
        let run = try finished(canary, timeout: 60)
        #expect(canary.child.exitCode == 1, "\(canary.output.suffix(2000))")
        #expect(run.status == .rolledBack && run.tripwire == "process_exit", "\(canary.output.suffix(2000))")
        #expect(canary.output.contains("exited at start"))
        let pids = ((try report(run)["canaryPIDs"] as? [[String: Any]]) ?? []).compactMap { ($0["pid"] as? Int).map(pid_t.init) }
        #expect(pids.count == 5 && pids.allSatisfy { processHasExited($0) }, "\(pids)")
        // The next run is not blocked by it.
        #expect(try f.store().canaryRun()?.isFinished == true)
    }

    /// A canary run at 50 % for a minute, with synthetic traffic going for two seconds already.
    func runningAtHalf() async throws -> (ArkProcess, Task<SyntheticReport, any Error>) {
        let next = try startBaseline(canaryEnv: [])
        let canary = try startCanary(next, ["--percent", "50", "--step-seconds", "60"])
        #expect(try waitFor(timeout: 30, interval: 0.2) { try f.store().canaryRun()?.status == .running }, "\(canary.output.suffix(3000))")
        let pipeline = f
        let traffic = Task { try await pipeline.synthetic(count: 200, rate: 40) }
        try await Task.sleep(for: .seconds(2))
        return (canary, traffic)
    }

    @Test("Ctrl-C on the controller rolls the run back before it exits: no run is left stranded")
    func interruptRollsBack() async throws {
        let (canary, traffic) = try await runningAtHalf()
        canary.child.signal(SIGINT)
        let run = try finished(canary)
        #expect(canary.child.exitCode == 3, "\(canary.output.suffix(2000))")
        #expect(run.status == .rolledBack && run.tripwire == "controller_stopped" && run.isFinished, "\(canary.output.suffix(2000))")
        #expect(canary.output.contains("TRIPWIRE controller_stopped") && canary.output.contains("synthetic loop passed"), "\(canary.output.suffix(2000))")
        let pids = ((try report(run)["canaryPIDs"] as? [[String: Any]]) ?? []).compactMap { ($0["pid"] as? Int).map(pid_t.init) }
        #expect(pids.count == 5 && pids.allSatisfy { processHasExited($0) }, "\(pids)")
        try expectNothingLost(try await traffic.value)
    }

    @Test("abort rolls back from another shell even when the controller was killed, and with its plan damaged in the store")
    func abortWithoutController() async throws {
        let (canary, traffic) = try await runningAtHalf()
        canary.kill9()
        // The plan only sets how the baseline is proven: damaged, it does not stop the rollback.
        let damage = try runCommand("/usr/bin/sqlite3", [f.statePath, #"UPDATE canary_runs SET plan = '{"steps":"ten"}'"#])
        #expect(damage.code == 0, "\(damage.output)")
        let abort = try runCommand(Repo.arkBinary, ["canary", "abort"], environment: f.environment, timeout: 120)
        #expect(abort.code == 0 && abort.output.contains("is gone: rolling back from here"), "\(abort.output)")
        #expect(abort.output.contains("WARNING: canary plan.steps: expected list of number, found string; the baseline is proven with the default plan's loop"), "\(abort.output)")
        let run = try #require(try f.store().canaryRun())
        #expect(run.status == .rolledBack)
        try expectNothingLost(try await traffic.value)
    }
}}
