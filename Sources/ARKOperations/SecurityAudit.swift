// `ark audit`: the security findings of a setup, each with its severity and fix.

import ARKBus
import ARKCore
import ARKState
import ARKStoreWriter
import Foundation
import Graveyard

/// One problem `ark audit` found: how bad, what, and the fix.
public struct AuditFinding: Sendable, Equatable {
    public enum Severity: String, Sendable, Comparable, CaseIterable {
        case high, medium, low

        var rank: Int { self == .high ? 2 : self == .medium ? 1 : 0 }
        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
    }

    /// A stable name for the check (`state_db_mode`, `redis_open`, …).
    public var check: String
    public var severity: Severity
    public var message: String
    public var fix: String

    public init(_ check: String, _ severity: Severity, _ message: String, fix: String) {
        self.check = check
        self.severity = severity
        self.message = message
        self.fix = fix
    }

    public var line: String { "✗ \(severity.rawValue.uppercased()) \(check): \(message). Fix: \(fix)" }
}

/// `ark audit`: is this ARK locked down? File modes of the store, its backups, the rules and
/// `.env.production`; the rules' pin; the secrets (present, real, long, and never in a log
/// file); services open to the network; Redis open without a password; token lifetimes;
/// processes running as root. Reads only; secrets are compared, never printed.
public struct SecurityAudit: Sendable {
    public var config: ARKConfig
    /// The `.env.production` to check, when there is one.
    public var envFile: String?
    /// Where the start script keeps its pid files, for the root check.
    public var runDir: String?

    /// The longest token lifetime the audit accepts in JWT_MAX_TTL_SECONDS.
    public static let maxTokenLifetimeSeconds = 86_400

    public init(config: ARKConfig, envFile: String?, runDir: String?) {
        self.config = config
        self.envFile = envFile
        self.runDir = runDir
    }

    var production: Bool { config.environment == "production" }

    /// Every finding, worst first, and the names of the checks that passed.
    public func run() -> (findings: [AuditFinding], passed: [String]) {
        var findings: [AuditFinding] = []
        var passed: [String] = []
        func record(_ check: String, _ found: [AuditFinding]) {
            if found.isEmpty { passed.append(check) } else { findings += found }
        }
        record("state_db_mode", stateStoreModes())
        record("backup_mode", backupModes())
        record("graveyard", graveyard())
        record("audit_key", auditKey())
        record("env_file_mode", envFileMode())
        record("secrets", secrets())
        record("secrets_in_logs", secretsInLogs())
        record("network_binds", binds())
        record("redis_open", redis())
        record("redis_durability", redisDurability())
        record("token_lifetime", tokenLifetime())
        record("root_processes", rootProcesses())
        return (findings.sorted { $0.severity > $1.severity }, passed)
    }

    static func mode(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_mode & 0o7777) : nil
    }

    static func octal(_ mode: Int) -> String { String(mode, radix: 8) }

    func stateStoreModes() -> [AuditFinding] {
        [config.stateDB, config.stateDB + "-wal", config.stateDB + "-shm"].compactMap { path in
            guard let m = Self.mode(path), m & 0o077 != 0 else { return nil }
            return AuditFinding("state_db_mode", .high, "\(path) is mode \(Self.octal(m)): others can read the passes, orders and audit chain",
                                fix: "chmod 600 \(path)")
        }
    }

    func backupModes() -> [AuditFinding] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: config.backupDir)) ?? []).filter { $0.hasPrefix(BackupFiles.prefix) }.sorted()
        let open = names.filter { (Self.mode(config.backupDir + "/" + $0) ?? 0) & 0o077 != 0 }
        guard !open.isEmpty else { return [] }
        return [AuditFinding("backup_mode", .high, "\(open.count) backup(s) readable by others in \(config.backupDir): \(open.prefix(3).joined(separator: ", "))",
                             fix: "chmod 600 \(config.backupDir)/ark_state_backup_*.db")]
    }

    func graveyard() -> [AuditFinding] {
        var out: [AuditFinding] = []
        if let problem = Graveyard.check(directory: config.graveyardDir).problem {
            out.append(AuditFinding("graveyard_pin", .high, problem,
                                    fix: "restore \(config.graveyardDir)/\(Graveyard.ruleFileName) from the release; never change the pin"))
        }
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: config.graveyardDir)) ?? []).sorted()
        let writable = files.filter { (Self.mode(config.graveyardDir + "/" + $0) ?? 0) & 0o222 != 0 }
        if !writable.isEmpty {
            out.append(AuditFinding("graveyard_mode", production ? .high : .medium, "writable rule files: \(writable.joined(separator: ", "))",
                                    fix: "chmod 444 \(writable.map { config.graveyardDir + "/" + $0 }.joined(separator: " "))"))
        }
        return out
    }

    /// The key that signs the audit's checkpoints: whoever reads it can sign a rewritten log.
    func auditKey() -> [AuditFinding] {
        guard !config.auditKey.isEmpty else {
            return [AuditFinding("audit_key_missing", production ? .high : .medium, "ARK_AUDIT_KEY is not set: the audit log is not signed, so an edit of the store file cannot be told from the truth",
                                 fix: "ark audit-key generate --out /etc/ark/audit_ed25519.pem and set ARK_AUDIT_KEY")]
        }
        do {
            _ = try AuditSigner.loadKey(path: config.auditKey)
            return []
        } catch {
            return [AuditFinding("audit_key", .high, error.description, fix: "chmod 600 \(config.auditKey), owned by the user ARK runs as")]
        }
    }

    func envFileMode() -> [AuditFinding] {
        guard let envFile, let m = Self.mode(envFile) else { return [] }
        if m & 0o007 != 0 {
            return [AuditFinding("env_file_mode", .high, "\(envFile) is mode \(Self.octal(m)): every user can read its secrets", fix: "chmod 600 \(envFile)")]
        }
        if m & 0o070 != 0 {
            return [AuditFinding("env_file_mode", .medium, "\(envFile) is mode \(Self.octal(m)): its group can read its secrets", fix: "chmod 600 \(envFile)")]
        }
        return []
    }

    var secretValues: [(name: String, value: String)] {
        [("SESSION_SECRET", config.sessionSecret), ("JWT_SECRET", config.jwtSecret), ("ALPACA_API_KEY", config.alpacaAPIKey),
         ("ALPACA_SECRET_KEY", config.alpacaSecretKey), ("ALPHA_VANTAGE_API_KEY", config.alphaVantageAPIKey)]
    }

    func secrets() -> [AuditFinding] {
        var out: [AuditFinding] = []
        let severity: AuditFinding.Severity = production ? .high : .medium
        for (name, value) in secretValues {
            let signing = ConfigValidation.signingSecrets.contains(name)
            if value.isEmpty {
                if signing && (production || (name == "JWT_SECRET" && config.apiEnabled)) {
                    out.append(AuditFinding("secret_missing", severity, "\(name) is not set", fix: "set \(name) (openssl rand -hex 32)"))
                }
            } else if ConfigValidation.isPlaceholder(value) {
                out.append(AuditFinding("secret_placeholder", severity, "\(name) is a placeholder", fix: "set a real value (openssl rand -hex 32)"))
            } else if signing && value.count < ConfigValidation.minimumSecretLength {
                out.append(AuditFinding("secret_short", severity, "\(name) is \(value.count) characters, fewer than \(ConfigValidation.minimumSecretLength)",
                                        fix: "use openssl rand -hex 32"))
            }
        }
        return out
    }

    /// A secret's value in any log file (rotated ones too) has leaked: whoever reads logs has it.
    func secretsInLogs() -> [AuditFinding] {
        let needles = secretValues.filter { $0.value.count >= 8 }.map { ($0.name, Array($0.value.utf8)) }
        guard !needles.isEmpty, let files = try? FileManager.default.contentsOfDirectory(atPath: config.logDir) else { return [] }
        var out: [AuditFinding] = []
        for file in files.sorted() where !file.hasSuffix(".gz") {
            guard let data = FileManager.default.contents(atPath: config.logDir + "/" + file) else { continue }
            let bytes = [UInt8](data)
            for (name, needle) in needles where Self.contains(bytes, needle) {
                out.append(AuditFinding("secret_logged", .high, "\(name)'s value appears in \(config.logDir)/\(file)",
                                        fix: "rotate \(name) now (it is exposed), then remove or truncate \(file) and find what wrote it"))
            }
        }
        return out
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    func binds() -> [AuditFinding] {
        var out: [AuditFinding] = []
        if config.metricsServerEnabled && ["0.0.0.0", "::"].contains(config.metricsBind) {
            out.append(AuditFinding("metrics_bind", .medium, "METRICS_BIND=\(config.metricsBind) serves /metrics, /slos and /healthz to the network without auth",
                                    fix: "METRICS_BIND=127.0.0.1 behind an authenticating proxy, or firewall port \(config.metricsPort)"))
        }
        if config.apiEnabled && ["0.0.0.0", "::"].contains(config.apiBind) {
            out.append(AuditFinding("api_bind", .medium, "API_BIND=\(config.apiBind) serves the API to the network without TLS",
                                    fix: "API_BIND=127.0.0.1 behind a TLS-terminating proxy"))
        }
        return out
    }

    func redis() -> [AuditFinding] {
        guard let url = try? RedisURL(parsing: config.redisURL) else { return [] }
        let connection = RedisConnection(url: url, commandTimeout: .seconds(3))
        guard (try? connection.connect(timeout: .seconds(2))) != nil else {
            return [AuditFinding("redis_unreachable", .low, "Redis at \(url) did not answer, so its exposure was not checked", fix: "run ark audit while Redis is up")]
        }
        defer { connection.close() }
        var out: [AuditFinding] = []
        let tcp: Bool
        let loopbackHost: Bool
        switch url.endpoint {
        case .tcp(let host, _):
            tcp = true
            loopbackHost = host == "localhost" || host.hasPrefix("127.") || host == "::1"
        case .unix:
            tcp = false
            loopbackHost = true
        }
        let passwordless = url.password == nil
        // What Redis listens on, when CONFIG is allowed (it may be renamed away, which is fine).
        let binds = (try? connection.command(["CONFIG", "GET", "bind"]))?.array?.last?.string ?? ""
        let protected = (try? connection.command(["CONFIG", "GET", "protected-mode"]))?.array?.last?.string
        let port = (try? connection.command(["CONFIG", "GET", "port"]))?.array?.last?.string ?? "0"
        let listensBeyondLoopback = port != "0" && binds.split(separator: " ").contains { b in
            let a = b.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
            return !(a.hasPrefix("127.") || a == "::1" || a == "localhost")
        }
        if passwordless && tcp && !loopbackHost {
            out.append(AuditFinding("redis_open", .high, "Redis at \(url) on a non-loopback address takes commands without a password",
                                    fix: "set requirepass (or an ACL user) in redis.conf and put the password in REDIS_URL"))
        }
        if protected == "no" && listensBeyondLoopback && passwordless {
            out.append(AuditFinding("redis_protected_mode", .high, "Redis listens on \(binds) with protected-mode no and no password: anyone who reaches it can run any command",
                                    fix: "protected-mode yes, bind 127.0.0.1 (or a unix socket), and requirepass"))
        }
        return out
    }

    /// A Redis that would lose accepted signals in a crash breaks the promise a 202 makes.
    func redisDurability() -> [AuditFinding] {
        guard let url = try? RedisURL(parsing: config.redisURL) else { return [] }
        let connection = RedisConnection(url: url, commandTimeout: .seconds(3))
        defer { connection.close() }
        guard (try? connection.connect(timeout: .seconds(2))) != nil, let nodes = try? RedisDurability.inspectAll(connection) else { return [] }
        return nodes.compactMap { n in n.problem.map { AuditFinding("redis_durability", .high, $0.message, fix: $0.fix) } }
    }

    func tokenLifetime() -> [AuditFinding] {
        guard config.jwtMaxTTLSeconds > Self.maxTokenLifetimeSeconds else { return [] }
        return [AuditFinding("token_lifetime", .medium, "JWT_MAX_TTL_SECONDS=\(config.jwtMaxTTLSeconds) lets an API token live longer than \(Self.maxTokenLifetimeSeconds) s",
                             fix: "JWT_MAX_TTL_SECONDS=\(Self.maxTokenLifetimeSeconds) or less; mint tokens with a short --ttl")]
    }

    /// ARK's processes (from the start script's pid files) running as root.
    func rootProcesses() -> [AuditFinding] {
        guard let runDir, let names = try? FileManager.default.contentsOfDirectory(atPath: runDir) else { return [] }
        var rooted: [String] = []
        for name in names.sorted() where name.hasSuffix(".pid") && name != "redis.pid" {
            guard let text = try? String(contentsOfFile: runDir + "/" + name, encoding: .utf8),
                  let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) == 0,
                  let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let uidLine = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { continue }
            if uidLine.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first == "0" {
                rooted.append(String(name.dropLast(4)))
            }
        }
        guard !rooted.isEmpty else { return [] }
        return [AuditFinding("root_processes", .low, "running as root: \(rooted.joined(separator: ", "))",
                             fix: "run ARK as its own user (the systemd units use User=ark)")]
    }
}
