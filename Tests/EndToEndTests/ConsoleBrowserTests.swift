import ARKBus
import ARKCore
import ARKHTTPClient
import ARKState
import ARKStoreWriter
import ARKTestSupport
import Foundation
import GRDB
import Synchronization
import Testing

/// The operator console in a real browser: the five stages (Kenny twice, one of them hung
/// until the watchdog quarantines it), `ark watchdog`, `ark metrics-server`, a private Redis
/// and a real store; headless Chromium driven by Selenium (`Tests/Console/console_check.py`)
/// loads the page, and what it showed is checked against `/slos` and the store. The
/// screenshots go to ARK_CONSOLE_SCREENSHOTS when set (the docs' come from there).
extension EndToEnd { @Suite final class ConsoleBrowserTests {
    let f: Pipeline
    let port: Int
    static let secret = "console-test-secret-0123456789abcdef"

    init() throws {
        f = try Pipeline()
        port = try freeTCPPort()
        f.extraEnvironment = [
            "METRICS_PORT": String(port), "JWT_SECRET": Self.secret,
            // Held in quarantine until the page releases it; taken over only by the watchdog.
            "ARK_CLAIM_IDLE_MS": "60000", "WATCHDOG_RELEASE_BACKOFF_MS": "600000", "WATCHDOG_PROBATION_MS": "3000",
            "SLO_P95_LATENCY_MS": "60000",
        ]
    }
    deinit { f.shutdown() }

    func get(_ path: String) throws -> (status: Int, body: String) { try httpGet("http://127.0.0.1:\(port)\(path)") }

    @Test func theConsoleShowsThePipelineAndReleasesAQuarantinedInstance() async throws {
        // The public half beside the signing key, as `ark audit-key generate` leaves it: the
        // metrics server gives it to the page, which checks checkpoints' signatures with it.
        try Data(f.auditKey.publicKey.pem).write(to: URL(fileURLWithPath: f.auditKeyPath + ".pub"))
        for stage in Stage.allCases { try f.start(stage) }
        let second = try f.startProcess(["agent", "Kenny"], name: "kenny-second")
        try f.startProcess(["watchdog"], name: "watchdog")
        try f.startProcess(["metrics-server"], name: "metrics")
        let stopped = "Kenny-\(ProcessInfo.processInfo.hostName)-\(second.pid)"
        #expect(try waitFor(timeout: 30, interval: 0.2) { try get("/healthz").status == 200 }, "\(f.logs())")

        // Approved passes, and a dead letter whose payload is markup: the page must show it as text.
        try f.queueSignals(200, prefix: "ok")
        let c = try f.redis.client()
        _ = try c.command(["XADD", .text(Stage.joey.inputStream), "*", "event", "<script>document.title='owned'</script><img src=x onerror=alert(1)>"])
        let store = try f.store()
        // (The dead letter has no trace id, so it is no pass.)
        #expect(try waitFor(timeout: 60, interval: 0.3) { try store.passCount() >= 200 && store.deadLetterCount() >= 1 },
                "\((try? store.passCount()) ?? -1) passes, \((try? store.deadLetterCount()) ?? -1) dead letters\n\(f.logs())")
        // The second Kenny hangs (SIGSTOP) until the watchdog quarantines it for its silence,
        // then the cause is gone (SIGCONT): it stays quarantined (the automatic release is 10
        // minutes off) until the page releases it.
        second.child.signal(SIGSTOP)
        #expect(try waitFor(timeout: 60, interval: 0.3) {
            try store.watchdogEvents(limit: 100).contains { $0.action == "quarantine" && $0.instance == stopped }
        }, "\(f.logs())")
        second.child.signal(SIGCONT)

        // One trace to prove, and one whose audited record the browser script alters in the
        // store after proving the first (an altered leaf breaks the proofs of its neighbours
        // too, so the first is checked before).
        let db = try DatabaseQueue(path: f.statePath)
        let passes = try await db.read { db in try String.fetchAll(db, sql: "SELECT trace_id FROM passes WHERE verdict = 'approved' AND order_id IS NOT NULL ORDER BY seq LIMIT 2") }
        try #require(passes.count == 2)
        // A checkpoint covers them within a second or so.
        let bearer = try token()
        var covered = false
        for _ in 0..<60 where !covered {
            covered = try await request("GET", "/console/traces/\(passes[0])/proof", token: bearer).json?["checkpoint"] is [String: Any]
            if !covered { try await Task.sleep(for: .milliseconds(300)) }
        }
        #expect(covered, "no checkpoint covers \(passes[0])")

        // 95 more instances beside the real ones, their heartbeats written as agents write them.
        let load = HeartbeatLoad(redis: f.redis, count: 95)
        let loadTask = Task.detached { try load.run() }
        defer { load.stop(); loadTask.cancel() }

        let out = try ProcessInfo.processInfo.environment["ARK_CONSOLE_SCREENSHOTS"].map { try makeDirectory($0) } ?? (f.dir.path + "/screenshots")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let run = try runCommand("/usr/bin/env", ["python3", Repo.root + "/Tests/Console/console_check.py",
                                                  "--url", "http://127.0.0.1:\(port)", "--token", bearer, "--release", stopped,
                                                  "--trace", passes[0], "--tampered-trace", passes[1], "--tamper-db", f.statePath, "--out", out,
                                                  "--many-instances", "100"], timeout: 300)
        try #require(run.code == 0, "console_check.py: \(run.output)\n\(f.logs())")
        let page = try #require(jsonObject(try String(contentsOfFile: out + "/console_report.json", encoding: .utf8)))

        // The pipeline as Redis and the store have it.
        #expect(page["title"] as? String == "ARK console")
        let stages = try #require(page["stages"] as? [String: [String: String]])
        #expect(Set(stages.keys) == Set(Stage.allCases.map(\.rawValue)))
        #expect(stages["Kenny"]?[stopped] == "quarantined", "\(stages)")
        for stage in Stage.allCases { #expect(stages[stage.rawValue]?.values.contains("live") == true, "\(stage): \(stages)") }
        // Every SLO of /slos, each with the same status and actual.
        let slos = try #require((jsonObject(try get("/slos").body)?["slos"]) as? [String: [String: Any]])
        let shown = try #require(page["slos"] as? [String: [String: String]])
        #expect(Set(shown.keys) == Set(slos.keys), "\(shown)")
        for (name, s) in slos {
            #expect(shown[name]?["status"] == s["status"] as? String, "\(name): page \(shown[name] ?? [:]), /slos \(s)")
            if let actual = s["actual"] as? Double, name == "availability" || name == "ethics_drift" {
                // Shown to four significant digits.
                #expect(abs((Double(shown[name]?["actual"] ?? "") ?? -1) - actual) <= 5e-4 * max(1, abs(actual)), "\(name): page \(shown[name] ?? [:]), /slos \(s)")
            }
        }
        #expect((page["chart_points"] as? [String: String])?["throughput"].flatMap(Int.init) ?? 0 >= 1, "\(page)")

        // No token: read-only. A bad token refused; the real one acts.
        #expect(page["release_disabled_without_token"] as? Bool == true)
        #expect((page["dead_letters_without_token"] as? String)?.contains("token is needed") == true)
        #expect((page["bad_token_state"] as? String)?.contains("token refused: malformed token") == true, "\(page)")
        #expect(page["token_state"] as? String == "acting as console-test")

        // The dead letter, its markup shown as text and never run.
        let letters = try #require(page["dead_letters"] as? [[String: String]])
        #expect(letters.count == (try store.deadLetterCount()))
        #expect(letters.first?["payload"]?.contains("<script>document.title='owned'</script>") == true, "\(letters)")
        #expect(page["injected_markup"] as? Int == 0)
        #expect(page["console_errors"] as? [String] == [], "\(page)")

        // The release: in the store, by the console's subject, and the instance takes work again.
        #expect((page["release_notice"] as? String)?.contains(stopped) == true)
        let release = try store.watchdogEvents(limit: 100).first { $0.action == "release" && $0.instance == stopped }
        #expect(release?.by == "console:console-test", "\(String(describing: release))")
        #expect(["probation", "live"].contains(page["standing_after_release"] as? String ?? ""), "\(page)")
        #expect(try c.command(["HEXISTS", .text(Streams.quarantine), .text(stopped)]).integer == 0)

        // The kill switch from the page: set and lifted, each change in the audit by the console's subject.
        #expect((page["trading_before"] as? String)?.hasPrefix("ACTIVE") == true, "\(page)")
        #expect((page["trading_halt_notice"] as? String)?.contains("account:acct-9: ACTIVE → HALTED") == true, "\(page)")
        #expect((page["trading_row"] as? [String])?.prefix(3) == ["account:acct-9", "HALTED", "console:console-test"], "\(page)")
        #expect((page["trading_after"] as? String)?.hasPrefix("ACTIVE") == true, "\(page)")
        var changes: [TradingStateRecord] = []
        #expect(waitFor(timeout: 20) { changes = (try? store.tradingStateChanges(limit: 10)) ?? []; return changes.count == 2 })
        #expect(changes.map(\.mode) == ["ACTIVE", "HALTED"] && changes.allSatisfy { $0.by == "console:console-test" && $0.scope == "account:acct-9" }, "\(changes)")

        // The proof checked in the page; the altered record caught.
        let trace = try #require(page["trace"] as? [String: Any])
        #expect(trace["proof_status"] as? String == "ok", "\(trace)")
        #expect((trace["proof"] as? String)?.hasPrefix("proof verified in this page: leaf ") == true, "\(trace)")
        #expect((trace["summary"] as? String)?.contains("approved") == true && (trace["hops"] as? Int ?? 0) == 5, "\(trace)")
        // Each hop: its stage, the instance, when it came in and how long the stage took.
        let hops = try #require(trace["hop_cells"] as? [[String]])
        #expect(hops.map { $0.first ?? "" } == Stage.allCases.map(\.rawValue), "\(hops)")
        #expect(hops.allSatisfy { $0.count == 4 && $0[1].hasPrefix($0[0] + "-") && $0[2].count == 12 && Double($0[3]) != nil }, "\(hops)")
        let tampered = try #require(page["tampered"] as? [String: Any])
        #expect(tampered["proof_status"] as? String == "failed", "\(tampered)")
        #expect((tampered["proof"] as? String)?.hasPrefix("proof NOT verified") == true, "\(tampered)")

        // A phone: nothing wider than the screen, two columns folded away; 100 instances drawn.
        let phoneWidth = try #require(page["phone_width"] as? [Int])
        #expect(phoneWidth[0] <= phoneWidth[1], "the page is \(phoneWidth[0]) px wide on a \(phoneWidth[1]) px screen")
        #expect(page["phone_hidden_columns"] as? Int == 2)
        #expect(page["phone_instances"] as? Int ?? 0 >= 100 && page["many_instances"] as? Int ?? 0 >= 100, "\(page)")
        let wide = try #require(page["many_width"] as? [Int])
        #expect(wide[0] <= wide[1])
        for name in ["console-desktop.png", "console-phone.png", "console-trace.png", "console-100-instances.png"] {
            #expect(((try? FileManager.default.attributesOfItem(atPath: out + "/" + name))?[.size] as? Int ?? 0) > 10_000, "\(name)")
        }
        print("console: 100 instances drawn in \(page["many_instances_drawn_s"] ?? "?") s; screenshots in \(out)")
    }

    @Test func consoleRoutesRefuseWhatTheyCannotDo() async throws {
        try f.start(.aletheia)
        try f.startProcess(["metrics-server"], name: "metrics")
        #expect(try waitFor(timeout: 30, interval: 0.2) { try get("/readyz").status == 200 }, "\(f.logs())")
        // The page and its files, with a policy that loads nothing from elsewhere.
        let page = try await request("GET", "/")
        #expect(page.status == 200 && page.text.contains("<title>ARK console</title>"))
        #expect(page.header("content-security-policy")?.contains("script-src 'self'") == true && page.header("x-frame-options") == "DENY", "\(page.headers)")
        #expect(try get("/console/console.js").body.contains("textContent"))
        // Open reads answer; what shows signals' contents and every action need a token.
        #expect(try get("/console/state").status == 200)
        #expect(try get("/console/canary").body.contains("\"run\" : null"))
        for path in ["/console/traces/x", "/console/traces/x/proof", "/console/dead-letters", "/console/whoami"] {
            let r = try await request("GET", path)
            #expect(r.status == 401 && (r.json?["error"] as? String)?.contains("missing bearer token") == true, "\(path): \(r.text)")
        }
        for path in ["/console/watchdog/release", "/console/canary/promote", "/console/canary/abort"] {
            let r = try await request("POST", path, body: "{\"selector\": \"Kenny\"}")
            #expect(r.status == 401, "\(path): \(r.text)")
        }
        let bearer = try token()
        func post(_ path: String, _ body: String) async throws -> (status: Int, error: String) {
            let r = try await request("POST", path, body: body, token: bearer)
            return (r.status, r.json?["error"] as? String ?? r.text)
        }
        let none = try await post("/console/watchdog/release", "{\"selector\": \"Kenny\"}")
        #expect(none.status == 404 && none.error == "no quarantined instance matches 'Kenny': name a quarantined instance or a stage", "\(none)")
        #expect(try await post("/console/watchdog/release", "[1]").status == 400)
        #expect(try await post("/console/watchdog/release", "{\"selector\": \"<b>x</b>\"}").status == 400)
        #expect(try await post("/console/watchdog/release", String(repeating: "x", count: 5000)).status == 413)
        #expect(try await post("/console/canary/promote", "").error == "no canary run is in progress")
        #expect(try await request("GET", "/console/traces/bad%20id", token: bearer).status == 400)
        #expect(try await request("GET", "/console/traces/nope", token: bearer).status == 404)
        #expect(try get("/console/history?minutes=0").status == 400)
        #expect(try get("/console/history?minutes=60").status == 200)
        // A public-key setting that names the private key sends nothing of it.
        #expect(try get("/console/audit-key").status == 404)
        try FileManager.default.copyItem(atPath: f.auditKeyPath, toPath: f.auditKeyPath + ".pub")
        let leaked = try get("/console/audit-key")
        #expect(leaked.status == 404 && !leaked.body.contains("PRIVATE"), "\(leaked.body)")
    }

    /// A JWT_SECRET the console cannot use leaves /metrics and the console's reads serving,
    /// its actions refused with the reason.
    @Test func aTokenSettingTheConsoleCannotUseLeavesMonitoringUp() async throws {
        f.extraEnvironment["JWT_SECRET"] = "short"
        try f.startProcess(["metrics-server"], name: "metrics")
        #expect(try waitFor(timeout: 30, interval: 0.2) { try get("/metrics").status == 200 }, "\(f.logs())")
        #expect(try get("/console/state").status == 200)
        let r = try await request("POST", "/console/watchdog/release", body: "{\"selector\": \"Kenny\"}", token: "x.y.z")
        #expect(r.status == 503 && (r.json?["error"] as? String)?.contains("cannot check tokens") == true, "\(r.text)")
        #expect(f.logs().contains("the console cannot check tokens, so it is read-only"), "\(f.logs())")
    }

    func request(_ method: String, _ path: String, body: String? = nil, token: String? = nil) async throws -> HTTPClientResponse {
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer " + token)) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        do {
            return try await HTTPClient.request(method, "http://127.0.0.1:\(port)\(path)", headers: headers, body: body.map { Array($0.utf8) }, timeout: .seconds(10))
        } catch {
            throw TestSetupError("\(method) \(path): \(error)")
        }
    }

    func token() throws -> String {
        let r = try runCommand(Repo.arkBinary, ["token", "--subject", "console-test", "--ttl", "3600"], environment: f.environment)
        guard r.code == 0 else { throw TestSetupError("ark token: \(r.output)") }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

}}

/// Heartbeats of `count` instances that do not exist, refreshed every second as agents do:
/// the console's view of a large pipeline without a hundred processes on two cores.
final class HeartbeatLoad: Sendable {
    let redis: RedisServer
    let count: Int
    private let stopped = Atomic<Bool>(false)

    init(redis: RedisServer, count: Int) {
        self.redis = redis
        self.count = count
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    func run() throws {
        let c = try redis.client()
        while !stopped.load(ordering: .relaxed) {
            let now = wallClockNanoseconds()
            let commands: [[RedisArg]] = (0..<count).map { i in
                let stage = Stage.allCases[i % Stage.allCases.count]
                let name = "\(stage.rawValue)-load\(i / Stage.allCases.count)-\(90_000 + i)"
                let beat = "{\"instance\":\"\(name)\",\"stage\":\"\(stage.rawValue)\",\"host\":\"load\(i / 20)\",\"pid\":\(90_000 + i),\"processed\":\(Int(now / 1_000_000_000 % 100_000) * (i + 1)),"
                    + "\"failed\":0,\"pending\":\(i % 7),\"p50_ms\":0.4,\"p95_ms\":\(1 + Double(i % 10) / 10),\"batches_ok\":1,\"batches_failed\":0,"
                    + "\"consecutive_failures\":0,\"busy_ms\":0,\"quarantined\":false,\"ts_ns\":\(now)}"
                return ["HSET", .text(Streams.heartbeats), .text(name), .text(beat)]
            }
            _ = try c.pipeline(commands)
            Thread.sleep(forTimeInterval: 1)
        }
    }
}

private func makeDirectory(_ path: String) throws -> String {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
