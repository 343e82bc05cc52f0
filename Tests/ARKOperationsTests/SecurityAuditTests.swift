import ARKBus
import ARKCore
import ARKProcess
@testable import ARKOperations
import ARKState
import ARKTestSupport
import Foundation
import Testing

/// `ark audit` against a deliberately weak production setup: real files with real modes, a
/// tampered copy of the Graveyard, a secret leaked into a log, and a real redis-server
/// listening on every interface with protected-mode off.
@Suite struct SecurityAuditTests {
    @Test func aWeakSetupShowsEveryProblemWithItsFix() throws {
        let dir = try TempDir("ark-audit")
        defer { dir.remove() }
        let fm = FileManager.default
        for sub in ["state", "backups", "logs", "graveyard", "run"] { try fm.createDirectory(atPath: dir.path + "/" + sub, withIntermediateDirectories: true) }

        // Redis on TCP, bound to every interface, protected-mode off, no password.
        let port = try freeTCPPort()
        let redis = try ChildProcess(RedisServer.serverPath(), ["--port", String(port), "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--dir", dir.path],
                                     environment: [:], logPath: dir.path + "/redis.log")
        defer { redis.terminate(grace: 5) }
        let url = RedisURL(endpoint: .tcp(host: "127.0.0.1", port: port))
        #expect(waitFor(timeout: 10) { (try? RedisConnection(url: url).connect()) != nil })

        // A store and a backup anyone can read.
        let db = dir.path + "/state/ark_state.db"
        _ = try StateStore(path: db)
        chmod(db, 0o644)
        let backup = dir.path + "/backups/ark_state_backup_20261123T100000Z.db"
        try fm.copyItem(atPath: db, toPath: backup)
        chmod(backup, 0o644)
        // A writable, tampered copy of the rules.
        for f in try fm.contentsOfDirectory(atPath: Repo.graveyard) {
            try fm.copyItem(atPath: Repo.graveyard + "/" + f, toPath: dir.path + "/graveyard/" + f)
            chmod(dir.path + "/graveyard/" + f, 0o666)
        }
        let rules = dir.path + "/graveyard/ethics_rules.json"
        try (try String(contentsOfFile: rules, encoding: .utf8) + "\n").write(toFile: rules, atomically: false, encoding: .utf8)
        // An env file every user can read; a secret in a log.
        let jwt = "short-jwt-secret"
        let envFile = dir.path + "/.env.production"
        try "JWT_SECRET=\(jwt)\n".write(toFile: envFile, atomically: true, encoding: .utf8)
        chmod(envFile, 0o644)
        try "{\"msg\":\"debug dump\",\"token_key\":\"\(jwt)\"}\n".write(toFile: dir.path + "/logs/api.log", atomically: true, encoding: .utf8)
        // An audit key others can read, and the same key kept properly.
        let key = dir.path + "/audit_ed25519.pem"
        #expect(fm.createFile(atPath: key, contents: Data(try Ed25519.PrivateKey.generate().pem), attributes: [.posixPermissions: 0o644]))
        // This test process stands in for an ARK process started by the script.
        try String(getpid()).write(toFile: dir.path + "/run/api.pid", atomically: true, encoding: .utf8)

        let config = try ARKConfig.load(environment: [
            "ARK_ENV": "production", "ARK_STATE_DB": db, "ARK_BACKUP_DIR": dir.path + "/backups", "ARK_LOG_DIR": dir.path + "/logs",
            "ARK_GRAVEYARD_DIR": dir.path + "/graveyard", "REDIS_URL": "redis://127.0.0.1:\(port)/0",
            "SESSION_SECRET": "CHANGE_ME_session_secret", "JWT_SECRET": jwt, "METRICS_BIND": "0.0.0.0", "API_BIND": "0.0.0.0",
            "JWT_MAX_TTL_SECONDS": "604800", "ARK_AUDIT_KEY": key,
        ])
        let (findings, _) = SecurityAudit(config: config, envFile: envFile, runDir: dir.path + "/run").run()
        var expected: [String: AuditFinding.Severity] = [
            "state_db_mode": .high, "backup_mode": .high, "graveyard_pin": .high, "graveyard_mode": .high, "env_file_mode": .high,
            "secret_placeholder": .high, "secret_short": .high, "secret_logged": .high, "metrics_bind": .medium, "api_bind": .medium,
            "redis_protected_mode": .high, "redis_durability": .high, "token_lifetime": .medium, "audit_key": .high,
        ]
        if getuid() == 0 { expected["root_processes"] = .low }
        let found = Dictionary(findings.map { ($0.check, $0.severity) }) { a, _ in a }
        #expect(found == expected, "\(findings.map(\.line).joined(separator: "\n"))")
        #expect(findings.allSatisfy { !$0.fix.isEmpty })
        #expect(findings.first?.severity == .high && findings.last?.severity == (getuid() == 0 ? .low : .medium), "worst first")
        // Secrets are compared, never printed.
        #expect(!findings.contains { $0.line.contains(jwt) || $0.line.contains("CHANGE_ME_session_secret") })

        // The same setup, fixed, is clean of everything but what cannot be fixed here.
        for path in [db, backup, envFile, key] { chmod(path, 0o600) }
        for f in try fm.contentsOfDirectory(atPath: Repo.graveyard) {
            try fm.removeItem(atPath: dir.path + "/graveyard/" + f)
            try fm.copyItem(atPath: Repo.graveyard + "/" + f, toPath: dir.path + "/graveyard/" + f)
            chmod(dir.path + "/graveyard/" + f, 0o444)
        }
        try fm.removeItem(atPath: dir.path + "/logs/api.log")
        let fixed = try ARKConfig.load(environment: [
            "ARK_ENV": "production", "ARK_STATE_DB": db, "ARK_BACKUP_DIR": dir.path + "/backups", "ARK_LOG_DIR": dir.path + "/logs",
            "ARK_GRAVEYARD_DIR": dir.path + "/graveyard", "REDIS_URL": "redis://127.0.0.1:\(port)/0",
            "SESSION_SECRET": String(repeating: "s", count: 40), "JWT_SECRET": String(repeating: "j", count: 40), "ARK_AUDIT_KEY": key,
        ])
        let after = SecurityAudit(config: fixed, envFile: envFile, runDir: nil).run().findings.map(\.check)
        #expect(after == ["redis_protected_mode", "redis_durability"], "\(after)")
    }
}
