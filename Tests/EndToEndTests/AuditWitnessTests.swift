import ARKAuth
import ARKCore
import ARKHTTPClient
import ARKState
import ARKStoreWriter
import ARKTestSupport
import ARKWitness
import Foundation
import Testing

/// The witness on another host (a network namespace with its own address, host name and
/// storage): it cosigns the heads of an honest log, and the issue's attack on the ARK host
/// (the checkpoint file truncated, the Redis keys deleted, the store rolled back by half of
/// its leaves, Aletheia restarted to sign a forked history with the real key) passes
/// `ark verify-audit` on that host but is caught by the witnesses: one sees the rollback,
/// one the fork, each alarms (exit status, /healthz, metric), and the cosigned heads they
/// hold make `ark verify-audit --witness` fail.
extension EndToEnd { @Suite struct AuditWitnessTests {
    @Test(.enabled(if: NetworkNamespace.available, "needs root and iproute2 for ip netns"))
    func aRollbackAndAForkSignedWithTheRealKeyAreCaughtByTheWitnesses() async throws {
        let host = try NetworkNamespace(subnet: 74)
        defer { host.remove() }
        let f = try Pipeline()
        defer { f.shutdown() }
        let witnessHost = try TempDir("ark-witness-host")
        defer { witnessHost.remove() }
        let pinned = f.dir.path + "/pinned.pub"
        _ = FileManager.default.createFile(atPath: pinned, contents: Data(f.auditKey.publicKey.pem))
        // Two witnesses, each with its own storage and key, pinned to the log's key.
        var witnessPEMs: [String] = []
        for w in ["w1", "w2"] {
            let r = try runCommand(Repo.arkBinary, ["witness", "init", "--state", witnessHost.path + "/" + w, "--log-key", pinned])
            #expect(r.code == 0 && r.output.contains("witness key id"), "\(r.output)")
            let pem = String(r.output[..<r.output.range(of: "-----END PUBLIC KEY-----\n")!.upperBound])
            witnessPEMs.append(f.dir.path + "/\(w).pem")
            _ = FileManager.default.createFile(atPath: witnessPEMs.last!, contents: Data(pem.utf8))
        }
        let apiPort = try freeTCPPort()
        let metricsPort = try freeTCPPort()
        let secret = "witness-test-secret-0123456789abcdef0123"
        f.extraEnvironment = [
            "ARK_AUDIT_CHECKPOINT_MS": "200", "ARK_AUDIT_PUBLIC_KEY": pinned, "ARK_WITNESS_KEYS": witnessPEMs.joined(separator: ","),
            "ARK_WITNESS_MAX_LAG_SECONDS": "3", "API_BIND": host.hostAddress, "API_PORT": String(apiPort), "METRICS_PORT": String(metricsPort),
            "JWT_SECRET": secret, "API_RATE_LIMIT_PER_MINUTE": "100000", "API_RATE_LIMIT_PER_HOUR": "1000000",
        ]
        let api = "http://\(host.hostAddress):\(apiPort)"
        func startARK() async throws {
            try f.startAll()
            try f.startProcess(["api"], name: "api")
            try f.startProcess(["metrics-server"], name: "metrics")
            #expect(await waitForAsync(timeout: 60) { (try? await HTTPClient.request("GET", api + "/readyz", timeout: .seconds(2)))?.status == 200 })
        }
        try await startARK()
        let token = try await JWTAuthority(secret: secret, issuer: "ark", maxTTLSeconds: 86_400).mint(subject: "witness", ttlSeconds: 3600)
        let tokenFile = witnessHost.path + "/token"
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        func witnessArguments(_ w: String, _ command: String) -> [String] {
            ["witness", command, "--state", witnessHost.path + "/" + w, "--api", api, "--token-file", tokenFile]
        }
        func startWitness(_ w: String) throws -> ArkProcess {
            let port = w == "w1" ? 9474 : 9475
            let (executable, arguments) = host.wrap(Repo.arkBinary, witnessArguments(w, "run") + ["--interval", "0.3", "--listen", "\(host.address):\(port)"], hostname: "witness-\(w)")
            return try ArkProcess(arguments, executable: executable, environment: [:], logPath: witnessHost.path + "/\(w).log")
        }
        func witnessCheck(_ w: String) throws -> CommandResult {
            let (executable, arguments) = host.wrap(Repo.arkBinary, witnessArguments(w, "check"), hostname: "witness-\(w)")
            return try runCommand(executable, arguments, timeout: 60)
        }
        func newestSigned() throws -> AuditCheckpoint? { try AuditReader(path: f.statePath).newestCheckpoints(1).first }

        // The honest log: both witnesses cosign its heads as it grows.
        var w1 = try startWitness("w1")
        defer { w1.terminate() }
        let report = try await f.synthetic(count: 200, rate: 100, violationEvery: 10)
        #expect(report.completed == 200, "\(report.summary)")
        let w2 = try startWitness("w2")  // joins later: trusts the log from the head it first sees
        defer { w2.terminate() }
        try await Task.sleep(for: .seconds(1))
        let honest = try #require(try newestSigned())
        let witnessHealth = "http://\(host.address):9474/healthz"
        let cosignedByW1 = await waitForAsync(timeout: 20) {
            (try? await HTTPClient.request("GET", witnessHealth, timeout: .seconds(2)))?.json?["cosigned_size"] as? Int == honest.size
        }
        let w1Health = (try? await HTTPClient.request("GET", witnessHealth, timeout: .seconds(2)))?.text ?? "no answer"
        #expect(cosignedByW1, "\(w1Health) \(w1.output.suffix(2000))")
        #expect(await waitForAsync(timeout: 20) {
            WitnessStore(directory: witnessHost.path + "/w2").held()?.checkpoint.size == honest.size
        }, "\(w2.output.suffix(3000))")
        // ARK sees its heads cosigned in time.
        let ark = "http://127.0.0.1:\(metricsPort)/healthz"
        #expect(await waitForAsync(timeout: 20) { Self.check("audit_witness", in: try? await HTTPClient.request("GET", ark, timeout: .seconds(2)))?["status"] as? String == "healthy" })
        // A decision proved to the cosigned head, checked by the documented script with both witnesses' keys.
        let trace = try Self.sqlite(f.statePath, "SELECT trace_id FROM passes WHERE leaf < \(honest.size) ORDER BY seq LIMIT 1 OFFSET 5")
        let proof = try await HTTPClient.request("GET", api + "/v1/traces/\(trace)/proof?cosigned=true", headers: [("Authorization", "Bearer " + token)])
        #expect(proof.status == 200 && (proof.json?["cosignatures"] as? [Any])?.count == 2, "\(proof.text)")
        try proof.text.write(toFile: f.dir.path + "/proof.json", atomically: true, encoding: .utf8)
        let script = try runCommand("/usr/bin/env", ["python3", Repo.root + "/scripts/verify_audit_proof.py", f.dir.path + "/proof.json", pinned,
                                                     "--witness-key", witnessPEMs[0], "--witness-key", witnessPEMs[1]])
        #expect(script.code == 0 && script.output.contains("cosigned by witness"), "\(script.output)")
        let witnessed = try runCommand(Repo.arkBinary, ["verify-audit", "--witness", witnessPEMs[0], "--witness", witnessPEMs[1]], environment: f.environment)
        #expect(witnessed.code == 0 && witnessed.output.contains("intact"), "\(witnessed.output)")

        // The attack, with the witnesses' hosts out of reach (their processes stopped a moment).
        w1.terminate()
        w2.terminate()
        f.stopAll()
        let size = honest.size
        let keep = size / 2
        try Self.rollBack(f.statePath, to: keep)
        try "".write(toFile: f.checkpointFile, atomically: true, encoding: .utf8)
        _ = try f.redis.client().command(["DEL", .text(Streams.auditCheckpoint), .text(Streams.auditCosignatures)])
        // On the ARK host nothing tells: the log verifies with the real key.
        let fooled = try runCommand(Repo.arkBinary, ["verify-audit"], environment: f.environment)
        #expect(fooled.code == 0 && fooled.output.contains("intact"), "\(fooled.output)")
        try await startARK()
        // Witness 1 looks now: the head went back from \(size) to at most \(keep) leaves.
        let rollback = try witnessCheck("w1")
        #expect(rollback.code == 2 && rollback.output.contains("ALARM (rollback)") && rollback.output.contains("cosigned \(size)"), "\(rollback.output)")
        // Aletheia signs a forked history with the real key, past the honest size.
        let more = try await f.synthetic(count: 300, rate: 150, violationEvery: 10)
        #expect(more.completed == 300, "\(more.summary)")
        try await Task.sleep(for: .seconds(1))
        #expect(try newestSigned()!.size > size)
        let fork = try witnessCheck("w2")
        #expect(fork.code == 2 && fork.output.contains("ALARM (fork)") && fork.output.contains("consistency proof fails"), "\(fork.output)")
        // The alarm stays: the running witness serves it, its metric says it.
        w1 = try startWitness("w1")
        #expect(await waitForAsync(timeout: 20) { (try? await HTTPClient.request("GET", witnessHealth, timeout: .seconds(2)))?.status == 503 })
        let metrics = try await HTTPClient.request("GET", "http://\(host.address):9474/metrics")
        #expect(metrics.text.contains("ark_witness_alarm 1"), "\(metrics.text)")
        // The cosigned heads the witnesses hold convict the store.
        for (i, w) in ["w1", "w2"].enumerated() {
            let r = try runCommand(Repo.arkBinary, ["verify-audit", "--witness", witnessPEMs[i], "--cosigned", witnessHost.path + "/\(w)/cosigned.jsonl"], environment: f.environment)
            #expect(r.code == 1 && r.output.contains("BROKEN") && r.output.contains("witness"), "\(w): \(r.output)")
        }
        // And ARK's own health says its heads are no longer witnessed.
        #expect(await waitForAsync(timeout: 20) { Self.check("audit_witness", in: try? await HTTPClient.request("GET", ark, timeout: .seconds(2)))?["status"] as? String == "degraded" })

        // ARK_WITNESS_HOLD: Aletheia takes no more input while its heads go unwitnessed.
        f.agents[.aletheia]?.terminate(grace: 10)
        f.extraEnvironment["ARK_WITNESS_HOLD"] = "true"
        try f.start(.aletheia)
        let aletheia = try #require(f.agents[.aletheia])
        #expect(await waitForAsync(timeout: 20) { aletheia.output.contains("holding input") }, "\(aletheia.output.suffix(2000))")
        let recorded = try f.store().passCount()
        let held = try await HTTPClient.request("POST", api + "/v1/signals", headers: [("Authorization", "Bearer " + token), ("Content-Type", "application/json")],
                                                body: Array(#"{"trace_id":"held-1","symbol":"AAPL","price":101.5,"volume":100,"source":"t","action":"buy","position_size_pct":0.001,"leverage":1,"stop_loss":99,"risk_reward_ratio":2}"#.utf8))
        #expect(held.status == 202, "\(held.text)")
        try await Task.sleep(for: .seconds(2))
        #expect(try f.store().passCount() == recorded)
    }

    static func sqlite(_ db: String, _ sql: String) throws -> String {
        let r = try runCommand("/usr/bin/sqlite3", [db, sql])
        guard r.code == 0 else { throw TestSetupError("sqlite3 \(sql): \(r.output)") }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func check(_ name: String, in response: HTTPClientResponse?) -> [String: Any]? {
        (response?.json?["checks"] as? [[String: Any]])?.first { $0["name"] as? String == name }
            ?? (response?.json?["checks"] as? [String: Any])?[name] as? [String: Any]
    }

    /// The attacker's rollback: every row from leaf `keep` on deleted, with the checkpoints
    /// and stored nodes above it, and the tree's right edge set back: a store consistent in
    /// itself at `keep` leaves.
    static func rollBack(_ db: String, to keep: Int) throws {
        let hashes = try AuditReader(path: db).leafHashes(0, keep)
        var tree = Merkle.Frontier()
        for h in hashes { tree.append(h) }
        let sql = """
            BEGIN;
            DELETE FROM passes WHERE leaf >= \(keep); DELETE FROM orders WHERE leaf >= \(keep);
            DELETE FROM dead_letters WHERE leaf >= \(keep); DELETE FROM trading_states WHERE leaf >= \(keep);
            DELETE FROM audit_nodes WHERE (idx + 1) << height > \(keep);
            DELETE FROM audit_checkpoints WHERE size > \(keep);
            UPDATE audit_tree SET size = \(keep), frontier = X'\(SHA256.hex(tree.nodes.flatMap { $0 }))' WHERE id = 1;
            COMMIT;
            """
        let r = try runCommand("/usr/bin/sqlite3", [db, sql])
        guard r.code == 0 else { throw TestSetupError("rollback: \(r.output)") }
    }
} }
