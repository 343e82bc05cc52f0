import ARKBus
import ARKCore
import ARKState
import ARKTestSupport
import Foundation
import Testing

/// The metrics server against a real pipeline: five `ark agent` processes, `ark
/// metrics-server`, a private Redis and a real SQLite store.
extension EndToEnd { @Suite final class MonitoringTests {
    let fixture: Pipeline
    let port: Int

    init() throws {
        fixture = try Pipeline()
        port = try freeTCPPort()
        fixture.extraEnvironment["METRICS_PORT"] = String(port)
        // The latency objective is not under test here, and a debug build draining a backlog
        // on a busy CI machine can miss 400 ms.
        fixture.extraEnvironment["SLO_P95_LATENCY_MS"] = "60000"
    }
    deinit { fixture.shutdown() }

    func get(_ path: String) throws -> (status: Int, body: String) { try httpGet("http://127.0.0.1:\(port)\(path)") }

    func startAll() throws {
        try fixture.startAll()
        try fixture.startProcess(["metrics-server"], name: "metrics")
        let up = try waitFor(timeout: 30, interval: 0.2) { try get("/healthz").status == 200 }
        #expect(up, "\(fixture.logs())")
    }

    @Test func slosCountInjectedFailuresAndMetricsCoverEveryProcess() throws {
        try startAll()
        // 990 ordinary signals and 10 stamped 10 s in the past: those finish after the 5 s
        // pass timeout, so 1% of passes fail.
        try fixture.queueSignals(990, prefix: "ok")
        try fixture.queueSignals(10, prefix: "late", t0Ns: wallClockNanoseconds() - 10_000_000_000)
        let store = try fixture.store()
        let done = try waitFor(timeout: 60, interval: 0.2) { try store.passCount() >= 1000 }
        #expect(done, "\(fixture.logs())")

        let slos = try get("/slos")
        #expect(slos.status == 200)
        let body = try #require(jsonObject(slos.body), "\(slos.body)")
        let availability = try #require((body["slos"] as? [String: Any])?["availability"] as? [String: Any])
        #expect(abs((availability["actual"] as? Double ?? 0) - 0.99) < 1e-9, "\(slos.body)")
        #expect(availability["status"] as? String == "violated" && availability["ok"] as? Bool == false)
        #expect(availability["events"] as? Int == 1000 && availability["bad_events"] as? Int == 10)
        #expect((body["violations"] as? [String] ?? []).contains { $0.hasPrefix("availability: 0.99 < target 0.995") })
        let latency = try #require((body["slos"] as? [String: Any])?["latency_p95"] as? [String: Any])
        #expect(latency["status"] as? String == "ok", "\(slos.body)")
        // A shorter window for checking a fix: the same passes, named in its objective; a
        // window out of range is a 400 that says the range.
        let recent = try get("/slos?window=600")
        let recentBody = try #require(jsonObject(recent.body), "\(recent.body)")
        #expect(recentBody["window_seconds"] as? Int == 600)
        let recentAvailability = (recentBody["slos"] as? [String: Any])?["availability"] as? [String: Any]
        #expect(recentAvailability?["events"] as? Int == 1000 && (recentAvailability?["objective"] as? String)?.hasSuffix("over 10m") == true)
        for bad in ["5", "abc", "99999"] {
            let r = try get("/slos?window=" + bad)
            #expect(r.status == 400 && (jsonObject(r.body)?["error"] as? String)?.contains("10...21600") == true, "\(r.body)")
        }

        let json = try #require(jsonObject(try get("/metrics/json").body))
        let passLatency = try #require((json["histograms"] as? [String: Any])?["ark_pass_latency_ms"] as? [String: Any])
        #expect(passLatency["count"] as? Int == 1000)
        #expect((passLatency["max"] as? Double ?? 0) >= 10_000)  // the late ones
        for key in ["p50", "p95", "p99"] { #expect(passLatency[key] is Double) }

        // Every agent process publishes its metrics; the server merges them by process.
        let merged = try waitFor(timeout: 10, interval: 0.3) {
            let text = try get("/metrics").body
            return Set(text.split(separator: "\n").filter { $0.hasPrefix("ark_stage_processed_total{") }.compactMap { $0.split(separator: "\"").dropFirst().first }).count >= 5
        }
        #expect(merged)
        let text = try get("/metrics").body
        #expect(text.contains("ark_passes_total{process=") && text.contains("verdict=\"approved\"}"))
        #expect(text.contains("ark_slo_actual{process=") && text.contains("slo=\"availability\"} 0.99"))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") {
            let file = fixture.dir.path + "/metrics.txt"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try runCommand("/bin/sh", ["-c", "/usr/bin/promtool check metrics < \(file)"])
            #expect(check.code == 0, "promtool: \(check.output)")
        }

        // `ark health`: an SLO violation is degraded (exit 2), and names the check.
        let health = try runCommand(Repo.arkBinary, ["health"], environment: fixture.environment)
        #expect(health.code == 2, "\(health.output)")
        #expect(health.output.contains("ARK is DEGRADED") && health.output.contains("availability"))
        let status = try runCommand(Repo.arkBinary, ["status", "--once"], environment: fixture.environment)
        #expect(status.code == 0 && status.output.contains("availability") && status.output.contains("Kenny"), "\(status.output)")
    }

    @Test func healthzFollowsRedisAndGraveyardDrift() throws {
        let rules = try TempDir("ark-rules")
        defer { rules.remove() }
        for name in try FileManager.default.contentsOfDirectory(atPath: Repo.graveyard) {
            try FileManager.default.copyItem(atPath: Repo.graveyard + "/" + name, toPath: rules.path + "/" + name)
        }
        fixture.extraEnvironment["ARK_GRAVEYARD_DIR"] = rules.path
        fixture.extraEnvironment["ARK_GRAVEYARD_CHECK_SECONDS"] = "1"
        try startAll()

        fixture.redis.stop()
        let down = try get("/healthz")
        #expect(down.status == 503, "\(down.body)")
        let checks = jsonObject(down.body)?["checks"] as? [String: [String: String]]
        #expect(checks?["redis"]?["status"] == "unhealthy")
        #expect(try runCommand(Repo.arkBinary, ["health"], environment: fixture.environment).code == 1)
        try fixture.redis.start()
        let back = try waitFor(timeout: 30, interval: 0.3) { try get("/healthz").status == 200 }
        let after = try get("/healthz").body
        #expect(back, "\(after)\n\(fixture.logs())")

        // Drift: one byte changed in the rule file shows within one check interval, in /slos,
        // /healthz, and HRM's own ark_ethics_drift.
        let file = rules.path + "/ethics_rules.json"
        let original = try Data(contentsOf: URL(fileURLWithPath: file))
        try (original + Data(" ".utf8)).write(to: URL(fileURLWithPath: file))
        let drifted = try get("/slos")
        let drift = (jsonObject(drifted.body)?["slos"] as? [String: Any])?["ethics_drift"] as? [String: Any]
        #expect(drift?["status"] as? String == "violated", "\(drifted.body)")
        #expect(try get("/healthz").status == 503)
        let hrmSeesIt = try waitFor(timeout: 5, interval: 0.2) {
            try get("/metrics").body.split(separator: "\n").contains { $0.hasPrefix("ark_ethics_drift{") && $0.hasSuffix(" 1.0") }
        }
        #expect(hrmSeesIt)
        try original.write(to: URL(fileURLWithPath: file))
        #expect(try waitFor(timeout: 10, interval: 0.3) { try get("/healthz").status == 200 })
    }
}
}
