// `ark config validate`: every setting checked against the world it names.

import ARKBus
import ARKAuth
import ARKCore
import ARKState
import ARKStoreWriter
import Foundation
import Graveyard
import ARKRisk

/// One line of `ark config validate`.
public struct ValidationCheck: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case ok, warning, problem
    }

    public var name: String
    public var status: Status
    public var detail: String
    /// What to do, for a problem or a warning.
    public var fix: String

    public init(_ name: String, _ status: Status, _ detail: String, fix: String = "") {
        self.name = name
        self.status = status
        self.detail = detail
        self.fix = fix
    }

    public var line: String {
        let mark = switch status {
        case .ok: "✓"
        case .warning: "!"
        case .problem: "✗"
        }
        return "\(mark) \(name): \(detail)" + (fix.isEmpty ? "" : ". Fix: \(fix)")
    }
}

/// Everything `ark config validate` checks before ARK starts (DESIGN §8): the settings parse;
/// in production the required ones are set and secrets are real; the directories exist and
/// are writable; the state store opens in WAL mode; Redis answers (and is new enough); the
/// ports are free; the Graveyard matches its pin (read-only in production); a metrics server
/// open to the network is named.
public struct ConfigValidation: Sendable {
    public var environment: [String: String]
    public var base: ARKConfig
    /// False when ARK is already running (its own servers hold the ports).
    public var checkPorts = true

    public init(environment: [String: String], base: ARKConfig = ARKConfig(), checkPorts: Bool = true) {
        self.environment = environment
        self.base = base
        self.checkPorts = checkPorts
    }

    /// Variables production cannot run on defaults.
    public static let requiredInProduction = ["REDIS_URL", "ARK_STATE_DB", "ARK_BACKUP_DIR", "ARK_LOG_DIR", "SESSION_SECRET", "JWT_SECRET"]
    public static let secrets = ["SESSION_SECRET", "JWT_SECRET", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPHA_VANTAGE_API_KEY"]
    /// Secrets the process itself signs with: long enough to resist guessing.
    public static let signingSecrets: Set<String> = ["SESSION_SECRET", "JWT_SECRET"]
    public static let minimumSecretLength = 32
    /// The oldest Redis with everything ARK uses (XAUTOCLAIM, XPENDING IDLE).
    public static let minimumRedis = (6, 2)

    public func run() -> [ValidationCheck] {
        let config: ARKConfig
        do {
            config = try ARKConfig.load(environment: environment, base: base)
        } catch {
            return error.problems.map { ValidationCheck($0.variable, .problem, $0.message, fix: $0.fix) }
        }
        let production = config.environment == "production"
        var checks = [ValidationCheck("ARK_ENV", .ok, "\(config.environment)")]
        checks += requiredVariables(production: production)
        checks += secretChecks(production: production)
        let stateDir = (config.stateDB as NSString).deletingLastPathComponent
        let dirs = [("state directory", "ARK_STATE_DB", stateDir), ("ARK_BACKUP_DIR", "ARK_BACKUP_DIR", config.backupDir),
                    ("ARK_LOG_DIR", "ARK_LOG_DIR", config.logDir)].map { Self.directoryCheck(name: $0.0, variable: $0.1, path: $0.2) }
        checks += dirs
        if dirs[0].status == .ok { checks.append(Self.stateStoreCheck(path: config.stateDB)) }
        checks.append(Self.redisCheck(config.redisURL, shards: config.shards))
        if checkPorts {
            checks.append(Self.portCheck(variable: "METRICS_PORT", host: config.metricsBind, port: config.metricsPort))
            if config.apiEnabled { checks.append(Self.portCheck(variable: "API_PORT", host: config.apiBind, port: config.apiPort)) }
        } else {
            checks.append(ValidationCheck("ports", .ok, "not checked: ARK is running and holds them"))
        }
        checks += Self.graveyardChecks(directory: config.graveyardDir, production: production)
        checks.append(Self.auditKeyCheck(config, production: production))
        checks.append(Self.auditPinCheck(config))
        if !config.witnessKeys.isEmpty { checks.append(Self.witnessKeysCheck(config)) }
        if config.metricsBind == "0.0.0.0" {
            checks.append(ValidationCheck("METRICS_BIND", .warning, "0.0.0.0 serves /metrics, /slos and /healthz to the whole network",
                                          fix: "bind 127.0.0.1 behind a proxy, or firewall port \(config.metricsPort)"))
        }
        if config.apiEnabled && config.apiBind == "0.0.0.0" {
            checks.append(ValidationCheck("API_BIND", .warning, "0.0.0.0 serves the API to the whole network without TLS",
                                          fix: "bind 127.0.0.1 and put a TLS-terminating proxy in front, or firewall port \(config.apiPort)"))
        }
        if !config.jwtJWKSFile.isEmpty { checks.append(Self.jwksCheck(config)) }
        if !config.instrumentsFile.isEmpty {
            // Read as HRM and Kenny will at start: a file they cannot read refuses every trade.
            switch InstrumentPolicy(file: config.instrumentsFile) {
            case .listed(let l):
                checks.append(ValidationCheck("ARK_INSTRUMENTS_FILE", .ok, "\(l.instruments.count) instrument\(l.instruments.count == 1 ? "" : "s") listed: only they trade"))
            case .unreadable(let why):
                checks.append(ValidationCheck("ARK_INSTRUMENTS_FILE", .problem, why + ": every trade would be refused",
                                              fix: "give {\"instruments\": [{\"symbol\": \"AAPL\", \"class\": \"equity\", \"band\": 0.05, \"min_notional\": 500, \"reference\": 190}]} or unset ARK_INSTRUMENTS_FILE"))
            case .open: break
            }
        }
        if config.apiEnabled && !production && config.jwtSecret.isEmpty {
            checks.append(ValidationCheck("JWT_SECRET", .warning, "not set: the API refuses to start without it",
                                          fix: "set JWT_SECRET (openssl rand -hex 32), use --local (which makes one), or API_ENABLED=false"))
        }
        return checks
    }

    /// JWT_JWKS_FILE read and checked as the API and the metrics server will at start (the
    /// secret's own length is checked with the secrets).
    static func jwksCheck(_ config: ARKConfig) -> ValidationCheck {
        var probe = config
        if probe.jwtSecret.utf8.count < JWTAuthority.minimumSecretBytes { probe.jwtSecret = String(repeating: "x", count: JWTAuthority.minimumSecretBytes) }
        do {
            _ = try JWTAuthority(config: probe)
            return ValidationCheck("JWT_JWKS_FILE", .ok, "a key set of RS256/EdDSA public keys, each with its kid")
        } catch {
            return ValidationCheck("JWT_JWKS_FILE", .problem, error.description, fix: "give a JWKS document of RS256 or EdDSA public keys, each with a kid, or unset JWT_JWKS_FILE")
        }
    }

    /// The last line: the verdict.
    public static func verdict(_ checks: [ValidationCheck]) -> (valid: Bool, line: String) {
        let problems = checks.filter { $0.status == .problem }.count
        if problems == 0 { return (true, "Production configuration is VALID ✓") }
        return (false, "Configuration is INVALID: \(problems) problem\(problems == 1 ? "" : "s") above ✗")
    }

    func requiredVariables(production: Bool) -> [ValidationCheck] {
        guard production else { return [] }
        let missing = Self.requiredInProduction.filter { (environment[$0] ?? "").trimmingCharacters(in: .whitespaces).isEmpty }
        if missing.isEmpty { return [ValidationCheck("required variables", .ok, "all \(Self.requiredInProduction.count) set")] }
        return missing.map { ValidationCheck($0, .problem, "not set (required when ARK_ENV=production)", fix: "set it in .env.production (see .env.production.template)") }
    }

    func secretChecks(production: Bool) -> [ValidationCheck] {
        var out: [ValidationCheck] = []
        for name in Self.secrets {
            let value = (environment[name] ?? "").trimmingCharacters(in: .whitespaces)
            if value.isEmpty { continue }  // required ones are reported above
            let severity: ValidationCheck.Status = production ? .problem : .warning
            if Self.isPlaceholder(value) {
                out.append(ValidationCheck(name, severity, "is a placeholder", fix: "set a real value (for a signing secret: openssl rand -hex 32)"))
            } else if Self.signingSecrets.contains(name) && value.utf8.count < Self.minimumSecretLength {
                // The API and the console refuse a short JWT_SECRET anywhere (RFC 7518 §3.2).
                out.append(ValidationCheck(name, name == "JWT_SECRET" ? .problem : severity,
                                           "is \(value.utf8.count) bytes, fewer than \(Self.minimumSecretLength)\(name == "JWT_SECRET" ? ": the API and the console refuse it (HS256 needs a key as long as its hash)" : "")",
                                           fix: "use openssl rand -hex 32"))
            } else {
                // Never the value itself: checks are printed and logged.
                out.append(ValidationCheck(name, .ok, "set (\(value.count) characters)"))
            }
        }
        return out
    }

    static func isPlaceholder(_ value: String) -> Bool {
        let v = value.lowercased()
        return ["change_me", "changeme", "change-me", "placeholder", "your_", "your-", "example", "xxxx", "<", "todo", "replace"]
            .contains { v.contains($0) }
    }

    static func directoryCheck(name: String, variable: String, path: String) -> ValidationCheck {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            return ValidationCheck(name, .problem, "\(path) does not exist", fix: "mkdir -p \(path) and give it to the user ARK runs as, or set \(variable)")
        }
        guard isDir.boolValue else { return ValidationCheck(name, .problem, "\(path) is not a directory", fix: "set \(variable) to a directory") }
        guard access(path, W_OK) == 0 else {
            return ValidationCheck(name, .problem, "\(path) is not writable by this user", fix: "chown it to the user ARK runs as, or set \(variable)")
        }
        return ValidationCheck(name, .ok, "\(path) is writable")
    }

    /// The audit's signing key: usable (Ed25519, this user's, mode 600); required in
    /// production.
    static func auditKeyCheck(_ config: ARKConfig, production: Bool) -> ValidationCheck {
        guard !config.auditKey.isEmpty else {
            return ValidationCheck("ARK_AUDIT_KEY", production ? .problem : .warning, "not set: Aletheia's audit log grows unsigned, so whoever can write the store can rewrite it undetected",
                                   fix: "ark audit-key generate --out /etc/ark/audit_ed25519.pem, then set ARK_AUDIT_KEY to it (--local makes one)")
        }
        do {
            let key = try AuditSigner.loadKey(path: config.auditKey)
            return ValidationCheck("ARK_AUDIT_KEY", .ok, "\(config.auditKey): Ed25519, mode 600, key id \(key.publicKey.keyID); checkpoints to \(config.auditCheckpointsPath)")
        } catch {
            return ValidationCheck("ARK_AUDIT_KEY", .problem, error.description, fix: "see the message; verifiers need only \(config.auditKey).pub")
        }
    }

    /// The pinned public key the log is verified from: required in production, where a .pub
    /// beside the private key is not trusted on its own.
    static func auditPinCheck(_ config: ARKConfig) -> ValidationCheck {
        do {
            guard let trust = try AuditTrust.root(config) else {
                return ValidationCheck("ARK_AUDIT_PUBLIC_KEY", .ok, "not set (no audit key either)")
            }
            if let note = trust.note {
                return ValidationCheck("ARK_AUDIT_PUBLIC_KEY", .warning, note, fix: "copy \(trust.source) where the ARK user cannot write and set ARK_AUDIT_PUBLIC_KEY to the copy")
            }
            return ValidationCheck("ARK_AUDIT_PUBLIC_KEY", .ok, "\(trust.source): pinned key id \(trust.key.keyID)")
        } catch {
            return ValidationCheck("ARK_AUDIT_PUBLIC_KEY", .problem, error.description, fix: "set ARK_AUDIT_PUBLIC_KEY to a copy of the log's first public key the ARK user cannot write")
        }
    }

    static func witnessKeysCheck(_ config: ARKConfig) -> ValidationCheck {
        do {
            let keys = try WitnessKeys.load(config.witnessKeys)
            return ValidationCheck("ARK_WITNESS_KEYS", .ok, "\(keys.count) witness key(s): \(keys.map(\.keyID).joined(separator: ", ")); a head waits at most \(config.witnessMaxLagSeconds) s for a cosignature\(config.witnessHold ? ", Aletheia holds beyond" : "")")
        } catch {
            return ValidationCheck("ARK_WITNESS_KEYS", .problem, error.description, fix: "give the witnesses' public keys (ark witness key on their hosts prints them), comma-separated")
        }
    }

    static func stateStoreCheck(path: String) -> ValidationCheck {
        do {
            let mode = try StateStore(path: path).journalMode()
            guard mode.lowercased() == "wal" else {
                return ValidationCheck("state store", .problem, "\(path) is in \(mode) journal mode, not WAL", fix: "sqlite3 \(path) 'PRAGMA journal_mode=WAL'")
            }
            return ValidationCheck("state store", .ok, "\(path) opens in WAL mode")
        } catch {
            return ValidationCheck("state store", .problem, "\(path): \(error)", fix: "check the file and its directory, or set ARK_STATE_DB")
        }
    }

    static func redisCheck(_ text: String, shards: Int? = nil) -> ValidationCheck {
        do {
            let url = try RedisURL(parsing: text)
            let c = RedisConnection(url: url, commandTimeout: .seconds(2))
            defer { c.close() }
            // A Redis just started may still be loading its data: wait that out (15 s), as
            // the agents do, rather than call it unreachable.
            let deadline = Date().addingTimeInterval(15)
            while true {
                do {
                    try c.connect(timeout: .seconds(2))
                    break
                } catch {
                    guard error.description.contains("still loading"), Date() < deadline else { throw error }
                    c.close()
                    usleep(200_000)
                }
            }
            let info = try c.command(["INFO", "server"]).string ?? ""
            let version = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("redis_version:") }
                .map { String($0.dropFirst("redis_version:".count)) } ?? "unknown"
            let parts = version.split(separator: ".").compactMap { Int($0) }
            if parts.count >= 2 && (parts[0], parts[1]) < minimumRedis {
                return ValidationCheck("Redis", .problem, "\(url) answers but is version \(version)",
                                       fix: "use Redis \(minimumRedis.0).\(minimumRedis.1) or newer (XAUTOCLAIM)")
            }
            // An evicting Redis drops stream entries no group has read when it fills, and one
            // without an append-only file comes back empty after a crash: either loses signals
            // ARK answered 202 for. Read from INFO, which a managed Redis that hides CONFIG
            // still answers.
            let nodes = try RedisDurability.inspectAll(c)
            if let weak = nodes.first(where: { $0.problem != nil }), let p = weak.problem {
                return ValidationCheck("Redis", .problem, p.message, fix: p.fix)
            }
            let promise = nodes.first?.promise ?? "unknown"
            if c.isCluster {
                guard let shards else {
                    return ValidationCheck("Redis", .problem, "\(url) is a Redis Cluster and ARK_SHARDS is not set: a shard's transactions need its keys in one slot",
                                           fix: "set ARK_SHARDS (for instance 4 per primary) in every ARK process's environment")
                }
                let primaries = c.cluster?.primaries.count ?? 0
                return ValidationCheck("Redis", .ok, "\(url) answers: a Redis Cluster of \(primaries) primaries, version \(version) (the node asked), \(shards) shards, maxmemory-policy noeviction; a crash of a node's host loses \(promise)")
            }
            return ValidationCheck("Redis", .ok, "\(url) answers, version \(version), maxmemory-policy noeviction; a crash of its host loses \(promise)")
        } catch {
            return ValidationCheck("Redis", .problem, "\(text) is unreachable: \(error)", fix: "start Redis or correct REDIS_URL")
        }
    }

    static func portCheck(variable: String, host: String, port: Int) -> ValidationCheck {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return ValidationCheck(variable, .warning, "could not test port \(port): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let why = String(cString: strerror(errno))
            return ValidationCheck(variable, .problem, "\(host):\(port) cannot be bound: \(why)", fix: "stop what holds it (ss -ltnp 'sport = :\(port)') or set \(variable)")
        }
        return ValidationCheck(variable, .ok, "\(host):\(port) is free")
    }

    static func graveyardChecks(directory: String, production: Bool) -> [ValidationCheck] {
        var out: [ValidationCheck] = []
        if let problem = Graveyard.check(directory: directory).problem {
            out.append(ValidationCheck("Graveyard", .problem, problem, fix: "restore \(directory)/\(Graveyard.ruleFileName) from the release; never change the pin"))
        } else {
            out.append(ValidationCheck("Graveyard", .ok, "rule file matches its pinned SHA-256"))
        }
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        let writable = files.filter {
            let mode = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0)[.posixPermissions] as? Int) ?? 0
            return mode & 0o222 != 0
        }
        if !writable.isEmpty {
            out.append(ValidationCheck("Graveyard files", production ? .problem : .warning, "writable: \(writable.joined(separator: ", "))",
                                       fix: "chmod 444 \(writable.map { directory + "/" + $0 }.joined(separator: " "))"))
        }
        return out
    }
}
