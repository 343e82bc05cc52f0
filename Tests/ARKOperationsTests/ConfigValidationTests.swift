import ARKBus
import ARKCore
import ARKProcess
import ARKTestSupport
import Foundation
import Testing

@testable import ARKOperations

/// `ark config validate`'s checks against a real Redis, real directories and a real store.
@Suite final class ConfigValidationTests {
    let redis: RedisServer
    let dir: TempDir

    init() throws {
        redis = try RedisServer()
        dir = try TempDir("ark-config")
        for sub in ["state", "backups", "logs", "graveyard"] {
            try FileManager.default.createDirectory(atPath: dir.path + "/" + sub, withIntermediateDirectories: true)
        }
        for file in ["ethics_rules.json", "ethics_rules.json.sha256"] {
            let target = dir.path + "/graveyard/" + file
            try FileManager.default.copyItem(atPath: Repo.graveyard + "/" + file, toPath: target)
            try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: target)
        }
        let key = try Ed25519.PrivateKey.generate()
        guard FileManager.default.createFile(atPath: dir.path + "/audit_ed25519.pem", contents: Data(key.pem), attributes: [.posixPermissions: 0o600]),
              FileManager.default.createFile(atPath: dir.path + "/pinned_audit.pub", contents: Data(key.publicKey.pem)) else {
            throw TestSetupError("cannot write the audit key")
        }
    }
    deinit {
        redis.shutdown()
        dir.remove()
    }

    /// A production environment that passes every check.
    var good: [String: String] {
        [
            "ARK_ENV": "production", "REDIS_URL": redis.urlString, "ARK_STATE_DB": dir.path + "/state/ark_state.db",
            "ARK_BACKUP_DIR": dir.path + "/backups", "ARK_LOG_DIR": dir.path + "/logs", "ARK_GRAVEYARD_DIR": dir.path + "/graveyard",
            "SESSION_SECRET": String(repeating: "a1", count: 20), "JWT_SECRET": String(repeating: "b2", count: 20),
            "METRICS_PORT": String(try! freeTCPPort()), "API_PORT": String(try! freeTCPPort()),
            "ARK_AUDIT_KEY": dir.path + "/audit_ed25519.pem", "ARK_AUDIT_PUBLIC_KEY": dir.path + "/pinned_audit.pub",
        ]
    }

    func problems(_ env: [String: String], checkPorts: Bool = true) -> [ValidationCheck] {
        ConfigValidation(environment: env, checkPorts: checkPorts).run().filter { $0.status == .problem }
    }

    /// Production pins the log's key: without ARK_AUDIT_PUBLIC_KEY the .pub beside the
    /// private key would be trusted on its own; a witness key that is not one is named.
    @Test func productionNeedsAPinnedAuditKeyAndUsableWitnessKeys() {
        var env = good
        env["ARK_AUDIT_PUBLIC_KEY"] = nil
        #expect(problems(env, checkPorts: false).map(\.name) == ["ARK_AUDIT_PUBLIC_KEY"])
        env = good
        env["ARK_WITNESS_KEYS"] = dir.path + "/audit_ed25519.pem"
        let p = problems(env, checkPorts: false)
        #expect(p.map(\.name) == ["ARK_WITNESS_KEYS"] && p.first?.detail.contains("unusable") == true, "\(p.map(\.line))")
        env["ARK_WITNESS_KEYS"] = dir.path + "/pinned_audit.pub"
        #expect(problems(env, checkPorts: false).isEmpty)
    }

    @Test func aGoodProductionConfigurationIsValidAndNamesTheRedisVersion() {
        let checks = ConfigValidation(environment: good).run()
        #expect(checks.filter { $0.status != .ok } == [], "\(checks.map(\.line))")
        #expect(ConfigValidation.verdict(checks) == (true, "Production configuration is VALID ✓"))
        #expect(checks.contains { $0.name == "Redis" && $0.detail.contains("version 7.") }, "\(checks.map(\.line))")
        #expect(checks.contains { $0.name == "state store" && $0.detail.hasSuffix("opens in WAL mode") })
        // Secrets are counted, never printed.
        #expect(!checks.map(\.line).joined().contains("a1a1"))
    }

    @Test func anEvictingRedisIsAProblem() throws {
        _ = try redis.client().command(["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        let found = problems(good).filter { $0.name == "Redis" }
        #expect(found.count == 1 && found[0].detail.contains("maxmemory-policy allkeys-lru") && found[0].fix.contains("noeviction"), "\(found.map(\.line))")
        _ = try redis.client().command(["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        #expect(problems(good).isEmpty)
    }

    /// A Redis without an append-only file comes back empty after a crash of its host: every
    /// signal answered 202 since the last snapshot, the books and the idempotency records gone.
    /// Validation refuses it, and says what each durable setting can lose.
    @Test func aRedisThatWouldLoseAcceptedSignalsIsAProblem() throws {
        let c = try redis.client()
        #expect(problems(good).isEmpty)
        #expect(ConfigValidation(environment: good).run().contains { $0.name == "Redis" && $0.detail.hasSuffix("loses no accepted signal (appendfsync always)") })
        _ = try c.command(["CONFIG", "SET", "appendfsync", "everysec"])
        #expect(ConfigValidation(environment: good).run().contains { $0.name == "Redis" && $0.detail.hasSuffix("loses up to about a second of accepted signals (appendfsync everysec)") })
        _ = try c.command(["CONFIG", "SET", "appendfsync", "no"])
        var found = problems(good).filter { $0.name == "Redis" }
        #expect(found.count == 1 && found[0].detail.contains("appendfsync no") && found[0].fix.contains("everysec"), "\(found.map(\.line))")
        _ = try c.command(["CONFIG", "SET", "appendfsync", "always"])
        _ = try c.command(["CONFIG", "SET", "appendonly", "no"])
        found = problems(good).filter { $0.name == "Redis" }
        #expect(found.count == 1 && found[0].detail.contains("no append-only file") && found[0].fix.contains("appendonly yes"), "\(found.map(\.line))")
        let audit = SecurityAudit(config: try ARKConfig.load(environment: good), envFile: nil, runDir: nil).run()
        #expect(audit.findings.contains { $0.check == "redis_durability" && $0.severity == .high && $0.message.contains("no append-only file") }, "\(audit.findings.map(\.line))")
        _ = try c.command(["CONFIG", "SET", "appendonly", "yes"])
        #expect(waitFor(timeout: 10) { self.problems(self.good).isEmpty })
        #expect(SecurityAudit(config: try ARKConfig.load(environment: good), envFile: nil, runDir: nil).run().passed.contains("redis_durability"))
    }

    /// The configuration the deployment ships for the system's redis-server passes the check:
    /// a real redis-server started from it, as `include` in redis.conf would load it.
    @Test func theShippedRedisConfigurationIsDurable() throws {
        let conf = Repo.root + "/deployment/redis/ark-durable.conf"
        let socket = dir.path + "/durable.sock"
        let server = try ChildProcess(RedisServer.serverPath(), [conf, "--port", "0", "--unixsocket", socket, "--dir", dir.path],
                                      environment: [:], logPath: dir.path + "/durable.log")
        defer { server.terminate(grace: 5) }
        let c = RedisConnection(url: RedisURL(endpoint: .unix(path: socket)))
        #expect(waitFor(timeout: 10) { (try? c.connect()) != nil })
        defer { c.close() }
        let nodes = try RedisDurability.inspectAll(c)
        #expect(nodes.count == 1 && nodes[0].problem == nil && nodes[0].appendfsync == "everysec", "\(nodes.map { $0.problem?.message ?? "ok" })")
        #expect(nodes.first?.promise == "up to about a second of accepted signals (appendfsync everysec)")
    }

    @Test func eachKindOfBadSettingGivesItsOwnMessage() throws {
        func only(_ change: [String: String], removing: [String] = [], _ name: String, _ detail: String) {
            var env = good.merging(change) { $1 }
            for k in removing { env[k] = nil }
            let p = problems(env)
            #expect(p.count == 1 && p.first?.name == name && p.first?.detail.contains(detail) == true && p.first?.fix.isEmpty == false,
                    "\(change) \(removing): \(p.map(\.line))")
        }
        only(["ARK_BATCH_SIZE": "0"], "ARK_BATCH_SIZE", "not a whole number in 1...10000")
        only([:], removing: ["JWT_SECRET"], "JWT_SECRET", "not set (required when ARK_ENV=production)")
        only(["SESSION_SECRET": "change_me_to_a_long_random_string_please"], "SESSION_SECRET", "placeholder")
        only(["JWT_SECRET": "short-but-real-9f8e7d"], "JWT_SECRET", "fewer than 32")
        only(["ALPACA_API_KEY": "<your alpaca key>"], "ALPACA_API_KEY", "placeholder")
        only(["JWT_JWKS_FILE": dir.path + "/no-such-jwks.json"], "JWT_JWKS_FILE", "cannot read JWT_JWKS_FILE")
        let jwks = dir.path + "/jwks.json"
        try #"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.write(toFile: jwks, atomically: true, encoding: .utf8)
        only(["JWT_JWKS_FILE": jwks], "JWT_JWKS_FILE", "has no 'kid'")
        only(["ARK_LOG_DIR": dir.path + "/missing"], "ARK_LOG_DIR", "does not exist")
        let file = dir.path + "/state/plain-file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        only(["ARK_BACKUP_DIR": file], "ARK_BACKUP_DIR", "is not a directory")
        only(["REDIS_URL": "unix://" + dir.path + "/no.sock"], "Redis", "unreachable")
        only(["ARK_FAULT": "kenny:latency=10ms"], "ARK_FAULT", "refused when ARK_ENV=production")
        only([:], removing: ["ARK_AUDIT_KEY"], "ARK_AUDIT_KEY", "not set: Aletheia's audit log grows unsigned")
        only(["ARK_AUDIT_KEY": dir.path + "/no-key.pem"], "ARK_AUDIT_KEY", "cannot read the audit key")
        only(["ARK_AUDIT_KEY": dir.path + "/graveyard/ethics_rules.json"], "ARK_AUDIT_KEY", "readable by others (mode 444)")
        let notAKey = dir.path + "/state/not-a-key.pem"
        #expect(FileManager.default.createFile(atPath: notAKey, contents: Data("hello".utf8), attributes: [.posixPermissions: 0o600]))
        only(["ARK_AUDIT_KEY": notAKey], "ARK_AUDIT_KEY", "unusable: not a PEM private key")

        // A port already taken.
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        let port = try freeTCPPort()
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(bound == 0 && listen(holder, 1) == 0)
        only(["METRICS_PORT": String(port)], "METRICS_PORT", "cannot be bound")
        #expect(problems(good.merging(["METRICS_PORT": String(port)]) { $1 }, checkPorts: false).isEmpty)

        // A rule file that drifted from its pin, and one left writable in production.
        let rules = dir.path + "/graveyard/ethics_rules.json"
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: rules)
        only([:], "Graveyard files", "writable: ethics_rules.json")
        try Data("{}".utf8).write(to: URL(fileURLWithPath: rules))
        let drift = problems(good).map(\.name)
        #expect(drift.contains("Graveyard"), "\(drift)")
    }

    @Test func outsideProductionSecretsAndOpenBindsAreWarningsNotProblems() {
        var env = good
        env["ARK_ENV"] = "staging"
        env["SESSION_SECRET"] = "changeme"
        env["METRICS_BIND"] = "0.0.0.0"
        env["API_BIND"] = "0.0.0.0"
        env["JWT_SECRET"] = nil
        env["ARK_AUDIT_PUBLIC_KEY"] = nil
        let checks = ConfigValidation(environment: env).run()
        #expect(checks.filter { $0.status == .problem } == [], "\(checks.map(\.line))")
        // No JWT_SECRET outside production: the API would refuse to start, so it is said; an
        // unpinned audit key is trusted from beside the private key, and that is said too.
        #expect(Set(checks.filter { $0.status == .warning }.map(\.name)) == ["SESSION_SECRET", "METRICS_BIND", "API_BIND", "JWT_SECRET", "ARK_AUDIT_PUBLIC_KEY"])
        #expect(ConfigValidation.verdict(checks).valid)
    }

    /// KEY=VALUE lines of `.env.production.template`.
    static func template() throws -> [String: String] {
        let text = try String(contentsOfFile: Repo.root + "/.env.production.template", encoding: .utf8)
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    @Test func theTemplateHasEverySettingArkReadsAndOnlyItsSecretsNeedEditing() throws {
        let template = try Self.template()
        // Every variable ARKConfig reads.
        let read = Set(ARKConfig.catalog().map(\.name))
        #expect(read.count > 40)
        // ARK_FAULT is for rehearsals only and stays out of a production file; ARK_TRACK is
        // set by `ark canary start` for the agents it starts, never by hand.
        #expect(read.subtracting(template.keys).sorted() == ["ARK_FAULT", "ARK_TRACK"])
        #expect(Set(template.keys).subtracting(read).sorted() == [])
        // Pointed at real directories and Redis, the template fails on its placeholders only.
        var env = template
        for (k, v) in good where ["REDIS_URL", "ARK_STATE_DB", "ARK_BACKUP_DIR", "ARK_LOG_DIR", "ARK_GRAVEYARD_DIR", "METRICS_PORT", "API_PORT"].contains(k) {
            env[k] = v
        }
        // The audit key is made per installation too (ark audit-key generate), like the secrets,
        // and its pinned copy with it.
        #expect(problems(env).map(\.name).sorted() == ["ARK_AUDIT_KEY", "ARK_AUDIT_PUBLIC_KEY", "JWT_SECRET", "SESSION_SECRET"])
    }
}
