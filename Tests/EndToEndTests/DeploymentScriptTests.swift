import ARKCore
import ARKTestSupport
import Foundation
import Testing

/// `deployment/start_production.sh --local` and `stop_production.sh --local` run for real,
/// on the debug build, against a private Redis, with every path in a temp dir.
extension EndToEnd { @Suite struct DeploymentScriptTests {
    @Test func startRunsEverythingHealthyIsIdempotentAndStopLeavesNothing() throws {
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let dir = try TempDir("ark-deploy")
        defer { dir.remove() }
        let port = try freeTCPPort()
        let env = [
            "REDIS_URL": redis.urlString, "ARK_STATE_DB": dir.path + "/state/ark_state.db", "ARK_LOG_DIR": dir.path + "/logs",
            "ARK_BACKUP_DIR": dir.path + "/backups", "ARK_RUN_DIR": dir.path + "/run", "METRICS_PORT": String(port),
            "API_PORT": String(try freeTCPPort()), "ARK_BUILD": "debug", "ARK_SKIP_BUILD": "1",
        ]
        let start = Repo.root + "/deployment/start_production.sh"
        let first = try runCommand("/bin/bash", [start, "--local", "--duration", "3"], environment: env, timeout: 240)
        #expect(first.code == 0, "\(first.output)")
        for expected in ["Production configuration is VALID ✓", "watchdog started", "All five agents are running and sending heartbeats",
                         "GET http://127.0.0.1:\(port)/healthz: 200", "/readyz: 200", "through the API", "Synthetic validation PASSED ✓", "overall: HEALTHY"] {
            #expect(first.output.contains(expected), "missing '\(expected)':\n\(first.output)")
        }
        let runDir = dir.path + "/run"
        func pids() throws -> [String: Int32] {
            var out: [String: Int32] = [:]
            for f in try FileManager.default.contentsOfDirectory(atPath: runDir) where f.hasSuffix(".pid") {
                out[f] = Int32(try String(contentsOfFile: runDir + "/" + f, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return out
        }
        let running = try pids()
        #expect(Set(running.keys) == ["metrics.pid", "watchdog.pid", "kyle.pid", "joey.pid", "hrm.pid", "kenny.pid", "aletheia.pid", "api.pid"])
        #expect(running.values.allSatisfy { !processHasExited($0) })
        #expect(FileManager.default.fileExists(atPath: dir.path + "/logs/metrics_server.log"))
        // The synthetic loop went through the API: its requests are in the API's log.
        let apiLog = (try? String(contentsOfFile: dir.path + "/logs/api.log", encoding: .utf8)) ?? ""
        #expect(apiLog.contains("\"client\":\"synthetic-loop\"") && apiLog.contains("\"status\":\"202\""), "\(apiLog.suffix(2000))")
        // The local signing secret was made beside the store, readable by its owner only.
        let secretMode = (try FileManager.default.attributesOfItem(atPath: dir.path + "/state/jwt_secret")[.posixPermissions] as? NSNumber)?.intValue
        #expect(secretMode == 0o600)
        // So was the audit's signing key, and the synthetic run's records are under signed
        // checkpoints that verify with its public half.
        let keyMode = (try FileManager.default.attributesOfItem(atPath: dir.path + "/state/audit_ed25519.pem")[.posixPermissions] as? NSNumber)?.intValue
        #expect(keyMode == 0o600)
        let verified = try runCommand(Repo.arkBinary, ["verify-audit", "--local"], environment: env)
        #expect(verified.code == 0 && verified.output.contains("Audit log intact") && !verified.output.contains(" 0 signed checkpoint"), "\(verified.output)")

        // The security audit of the running local setup finds nothing of severity high.
        let audit = try runCommand(Repo.arkBinary, ["audit", "--local", "--json"], environment: env)
        let findings = jsonObject(audit.output)?["findings"] as? [[String: Any]]
        #expect(findings != nil && findings!.allSatisfy { $0["severity"] as? String != "high" }, "\(audit.output)")

        // A second start finds the running system (and backs up the store first).
        let second = try runCommand("/bin/bash", [start, "--local", "--no-synthetic"], environment: env, timeout: 240)
        #expect(second.code == 0 && second.output.contains("Kenny already running") && second.output.contains("integrity ok"), "\(second.output)")
        #expect(try pids() == running)

        let stop = try runCommand("/bin/bash", [Repo.root + "/deployment/stop_production.sh", "--local"], environment: env, timeout: 120)
        #expect(stop.code == 0, "\(stop.output)")
        #expect(running.values.allSatisfy { processHasExited($0) }, "\(stop.output)")
        #expect(try pids().isEmpty)
    }
} }
