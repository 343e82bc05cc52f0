// Every setting ARK reads from the environment, parsed and range-checked in one place.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A setting that cannot be used, named with the fix.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var variable: String
    public var message: String
    public var fix: String

    public var description: String { "\(variable): \(message). Fix: \(fix)" }

    public init(variable: String, message: String, fix: String) {
        self.variable = variable
        self.message = message
        self.fix = fix
    }
}

public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigProblem]
    public init(problems: [ConfigProblem]) { self.problems = problems }
    public var description: String {
        "invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Every setting ARK reads, from the environment (and `.env.production`), with the defaults
/// of DESIGN §8. Built and validated in one place; the rest of ARK takes this value.
public struct ARKConfig: Sendable, Equatable {
    public var environment: String = "development"
    public var redisURL: String = "redis://127.0.0.1:6379/0"
    public var redisPoolSize: Int = 4
    public var stateDB: String = "/var/lib/ark/ark_state.db"
    public var backupDir: String = "/var/backups/ark"
    public var logDir: String = "/var/log/ark"
    public var graveyardDir: String = "graveyard"
    /// Where releases live (one directory each, with `current` and `previous` links).
    public var releasesDir: String = "/opt/ark/releases"
    /// The track this process serves: agents started by a canary run are `canary`.
    public var track: Track = .baseline
    public var metricsPort: Int = 9090
    /// Address the metrics server binds; 0.0.0.0 exposes it to the network (logged as a risk).
    public var metricsBind: String = "127.0.0.1"
    public var metricsServerEnabled: Bool = true
    /// How long the per-second rollups are kept (METRICS_RETENTION_SECONDS); never less than
    /// the longest SLO window reads (`rollupRetentionSeconds`).
    public var metricsRetentionSeconds: Int = 3600
    /// The longest window the SLO engine reads: the slow burn rate's 6 hours.
    public static let longestSLOWindowSeconds = 6 * 3600
    /// How long Aletheia keeps each rollup row.
    public var rollupRetentionSeconds: Int { max(metricsRetentionSeconds, Self.longestSLOWindowSeconds) }
    public var sloAvailabilityTarget: Double = 0.995
    public var sloP95LatencyMs: Double = 400
    public var traceIDEnabled: Bool = true
    public var watchdogEnabled: Bool = true
    public var watchdogQuarantineEnabled: Bool = true
    public var watchdogMaxLatencyMs: Double = 5000
    public var watchdogMaxFailureRate: Double = 0.20
    /// Failures in a row that quarantine an instance.
    public var watchdogMaxConsecutiveFailures: Int = 5
    /// Batches an instance must have attempted in the window before its failure rate counts.
    public var watchdogMinRequests: Int = 10
    /// The window the failure rate is taken over.
    public var watchdogFailureWindowMs: Int = 60_000
    /// A heartbeat older than this means the instance is hung or gone.
    public var watchdogHeartbeatTimeoutMs: Int = 5_000
    /// The same, in seconds: when health, the dashboard and the live-instance gauge call an
    /// instance silent too, so they never disagree with the watchdog.
    public var heartbeatStaleSeconds: Double { Double(watchdogHeartbeatTimeoutMs) / 1000 }
    /// Quarantine before the first automatic release; doubles with each repeat offence...
    public var watchdogReleaseBackoffMs: Int = 30_000
    /// ...up to this.
    public var watchdogReleaseBackoffMaxMs: Int = 600_000
    /// After a release, a relapse within this long quarantines again at once.
    public var watchdogProbationMs: Int = 60_000
    /// A fault to inject for rehearsals (`ARK_FAULT`, see AgentFault); never in production.
    public var fault: AgentFault?
    public var dbCheckpointIntervalSeconds: Int = 300
    public var apiPort: Int = 8000
    /// Address the API server binds; 0.0.0.0 exposes it beyond this host (logged as a risk).
    public var apiBind: String = "127.0.0.1"
    /// Whether `ark run` serves the API (`ark api` always does).
    public var apiEnabled: Bool = true
    /// The `iss` every API token must carry.
    public var jwtIssuer: String = "ark"
    /// Longest lifetime (exp - iat) a token may have; longer ones are refused.
    public var jwtMaxTTLSeconds: Int = 86_400
    /// A JWKS file of RS256/EdDSA public keys whose tokens are accepted beside HS256 ones
    /// (an identity provider's); empty: HS256 with JWT_SECRET only.
    public var jwtJWKSFile: String = ""
    /// Token buckets per client (the token's `sub`): requests per minute and per hour.
    public var apiRateLimitPerMinute: Int = 60
    public var apiRateLimitPerHour: Int = 1_000
    /// Browser origins allowed to call the API (CORS); empty: none.
    public var apiCORSOrigins: [String] = []
    /// A request whose Redis or store work takes longer gets 503 and Retry-After.
    public var apiRequestTimeoutMs: Int = 10_000
    /// Largest request body (413 beyond it).
    public var apiMaxBodyBytes: Int = 16 * 1024 * 1024
    /// The memory all request bodies in flight may take together (503 with Retry-After for a
    /// request that does not fit, before its body is read); at least two bodies of the
    /// largest size.
    public var apiBodyMemoryBytes: Int = 256 * 1024 * 1024
    /// Signals in one POST /v1/signals.
    public static let apiMaxBatch = 1_000

    /// Entries pending this long on another consumer are taken over (XAUTOCLAIM).
    public var claimIdleMs: Int = 30_000
    /// Deliveries after which an entry goes to the dead letter stream.
    public var maxDeliveries: Int = 5
    /// Entries read per XREADGROUP and written per round trip.
    public var batchSize: Int = 256
    /// The most events a stage puts in one entry of an internal stream (ARK_ENVELOPE_MAX; 1:
    /// one event an entry).
    public var envelopeMax: Int = Self.defaultEnvelopeMax
    public static let defaultEnvelopeMax = 64
    /// How long a read waits for new entries.
    public var blockMs: Int = 100
    /// Approximate cap on each stream's length (XADD MAXLEN ~); keep it far above any backlog.
    public var streamMaxLen: Int = 1_000_000
    /// ARK_SHARDS: how many shards the pipeline has (nil: the one untagged shard of a single
    /// node; required on Redis Cluster). Every process of one pipeline must have the same.
    public var shards: Int?
    public var shardLayout: ShardLayout { ShardLayout(count: shards) }
    /// ARK_AGENT_SHARDS: the shards this process's agents serve (nil: all of them). Several
    /// hosts can split a pipeline's shards between them this way, or all serve all of them and
    /// share each shard's consumer groups.
    public var agentShards: [Int]?
    /// The shards this process's agents serve.
    public var servedShards: [Shard] {
        let all = shardLayout.shards
        guard let agentShards, shards != nil else { return all }
        return all.filter { agentShards.contains($0.index) }
    }
    /// ARK_INTAKE_REPLICAS: replicas that must have a signal (WAIT) before the intake confirms
    /// it; nil: 1 on a cluster, 0 on a single node.
    public var intakeReplicas: Int?
    /// How long the intake waits for them before answering 503.
    public var intakeReplicaTimeoutMs: Int = 1_000
    /// Largest `event` payload Kyle accepts.
    public var maxSignalBytes: Int = 65_536
    /// Paper account equity Kenny starts the book with.
    public var paperEquity: Double = 100_000
    /// How often HRM re-hashes the Graveyard rule file.
    public var graveyardCheckSeconds: Double = 5
    /// How often the metrics server reconciles the books with the audit (ARK_RECONCILE_SECONDS).
    public var reconcileSeconds: Double = 10
    /// Throttles on filled orders (ARK_MAX_ORDERS_PER_SECOND per account,
    /// ARK_MAX_SYMBOL_ORDERS_PER_SECOND per account and symbol; 0: off) and the window in which
    /// an order like an earlier one (account, symbol, side, size) is refused as duplicative
    /// (ARK_DUPLICATE_WINDOW_MS; 0: off).
    public var throttles = Throttles()
    /// ARK_INSTRUMENTS_FILE: the allow-list of instruments (`InstrumentList`); empty: every
    /// canonical symbol may trade.
    public var instrumentsFile: String = ""
    /// A pass not finished this long after t0 counts as failed.
    public var passTimeoutMs: Double = 5_000

    /// Aletheia's Ed25519 key for the audit's checkpoints (PEM, mode 600); empty: the audit
    /// tree grows unsigned (refused in production).
    public var auditKey: String = ""
    /// The pinned public key the log is verified from (`AuditTrust`); empty: outside
    /// production, `<auditKey>.pub`.
    public var auditPublicKey: String = ""
    /// The append-only checkpoint file; empty: `audit_checkpoints.jsonl` in the log directory.
    public var auditCheckpointsFile: String = ""
    /// The longest a new leaf waits for a signed checkpoint.
    public var auditCheckpointMs: Int = 1_000
    /// The public keys (PEM files) of the witnesses whose cosignatures ARK accepts (`ark
    /// witness`); empty: no witness.
    public var witnessKeys: [String] = []
    /// With witnesses: `/healthz` is degraded when a signed head waits longer than this for a
    /// cosignature.
    public var witnessMaxLagSeconds: Int = 60
    /// With witnesses: Aletheia takes no new input while a head waits longer than
    /// `witnessMaxLagSeconds` (the pipeline holds rather than extend an unwitnessed log).
    public var witnessHold = false
    /// `--local`: without ARK_AUDIT_KEY the key is `audit_ed25519.pem` beside the state store,
    /// where start_production.sh --local makes it, or else in `<root>/.ark/` (a command run
    /// on a backup elsewhere still finds the layout's key).
    public var auditKeyBesideStateDB = false
    var localRoot = ""

    /// Where checkpoints are appended and read from.
    public var auditCheckpointsPath: String { auditCheckpointsFile.isEmpty ? logDir + "/audit_checkpoints.jsonl" : auditCheckpointsFile }

    public var sessionSecret: String = ""
    public var jwtSecret: String = ""
    public var alpacaAPIKey: String = ""
    public var alpacaSecretKey: String = ""
    public var alphaVantageAPIKey: String = ""

    public init() {}

    /// Settings for `--local`: everything under `<root>/.ark/`, including the private Redis
    /// `start_production.sh --local` runs, once it has made its directory (REDIS_URL still
    /// wins). Its socket is named even while that Redis is down, so `ark health --local` says
    /// the private Redis is unreachable rather than some other address.
    public static func localDefaults(root: String) -> ARKConfig {
        var c = ARKConfig()
        c.environment = "local"
        if FileManager.default.fileExists(atPath: root + "/.ark/redis") { c.redisURL = "unix://" + root + "/.ark/redis/redis.sock" }
        c.stateDB = root + "/.ark/ark_state.db"
        c.backupDir = root + "/.ark/backups"
        c.logDir = root + "/.ark/logs"
        c.graveyardDir = root + "/graveyard"
        c.releasesDir = root + "/.ark/releases"
        c.auditKeyBesideStateDB = true
        c.localRoot = root
        if let secret = try? String(contentsOfFile: localJWTSecretPath(root: root), encoding: .utf8) {
            c.jwtSecret = secret.trimmed()
        }
        return c
    }

    /// Where `--local` keeps the API's signing secret (made once, mode 600), so the local API
    /// and `ark token --local` agree without a secret in the environment.
    public static func localJWTSecretPath(root: String) -> String { root + "/.ark/jwt_secret" }


    /// Reads the environment over `base`, collecting every problem before failing.
    public static func load(environment env: [String: String], base: ARKConfig = ARKConfig()) throws(ConfigError) -> ARKConfig {
        try read(env, base: base, catalog: nil)
    }

    /// Every variable `load` reads, in the order it reads them, with its type, default and
    /// range as the code has them: what docs/configuration.md is generated from.
    public static func catalog() -> [ConfigVariable] {
        let catalog = ConfigCatalog()
        _ = try? read([:], base: ARKConfig(), catalog: catalog)
        return catalog.variables
    }

    private static func read(_ env: [String: String], base: ARKConfig, catalog: ConfigCatalog?) throws(ConfigError) -> ARKConfig {
        var c = base
        var problems: [ConfigProblem] = []
        var reader = EnvReader(env: env, catalog: catalog)

        c.environment = reader.string("ARK_ENV", c.environment)
        c.redisURL = reader.string("REDIS_URL", c.redisURL)
        c.redisPoolSize = reader.int("REDIS_POOL_SIZE", c.redisPoolSize, 1...1024)
        c.stateDB = reader.string("ARK_STATE_DB", c.stateDB)
        c.backupDir = reader.string("ARK_BACKUP_DIR", c.backupDir)
        c.logDir = reader.string("ARK_LOG_DIR", c.logDir)
        c.graveyardDir = reader.string("ARK_GRAVEYARD_DIR", c.graveyardDir)
        c.releasesDir = reader.string("ARK_RELEASES_DIR", c.releasesDir)
        reader.declare("ARK_TRACK", "baseline or canary", "baseline")
        if let raw = reader.value("ARK_TRACK") {
            if let t = Track(rawValue: raw.lowercased()) {
                c.track = t
            } else {
                problems.append(ConfigProblem(variable: "ARK_TRACK", message: "'\(raw)' is neither baseline nor canary",
                                              fix: "unset ARK_TRACK (baseline); `ark canary start` sets canary for the agents it starts"))
            }
        }
        c.metricsPort = reader.int("METRICS_PORT", c.metricsPort, 1...65535)
        c.metricsBind = reader.string("METRICS_BIND", c.metricsBind)
        c.metricsServerEnabled = reader.bool("METRICS_SERVER_ENABLED", c.metricsServerEnabled)
        c.metricsRetentionSeconds = reader.int("METRICS_RETENTION_SECONDS", c.metricsRetentionSeconds, 60...604_800)
        c.sloAvailabilityTarget = reader.double("SLO_AVAILABILITY_TARGET", c.sloAvailabilityTarget, 0.5...0.99999)
        c.sloP95LatencyMs = reader.double("SLO_P95_LATENCY_MS", c.sloP95LatencyMs, 1...600_000)
        c.traceIDEnabled = reader.bool("TRACE_ID_ENABLED", c.traceIDEnabled)
        c.watchdogEnabled = reader.bool("WATCHDOG_ENABLED", c.watchdogEnabled)
        c.watchdogQuarantineEnabled = reader.bool("WATCHDOG_QUARANTINE_ENABLED", c.watchdogQuarantineEnabled)
        c.watchdogMaxLatencyMs = reader.double("WATCHDOG_MAX_LATENCY_MS", c.watchdogMaxLatencyMs, 1...3_600_000)
        c.watchdogMaxFailureRate = reader.double("WATCHDOG_MAX_FAILURE_RATE", c.watchdogMaxFailureRate, 0.0...1.0)
        c.watchdogMaxConsecutiveFailures = reader.int("WATCHDOG_MAX_CONSECUTIVE_FAILURES", c.watchdogMaxConsecutiveFailures, 1...1000)
        c.watchdogMinRequests = reader.int("WATCHDOG_MIN_REQUESTS", c.watchdogMinRequests, 1...1_000_000)
        c.watchdogFailureWindowMs = reader.int("WATCHDOG_FAILURE_WINDOW_MS", c.watchdogFailureWindowMs, 1000...86_400_000)
        c.watchdogHeartbeatTimeoutMs = reader.int("WATCHDOG_HEARTBEAT_TIMEOUT_MS", c.watchdogHeartbeatTimeoutMs, 1500...3_600_000)
        c.watchdogReleaseBackoffMs = reader.int("WATCHDOG_RELEASE_BACKOFF_MS", c.watchdogReleaseBackoffMs, 100...86_400_000)
        c.watchdogReleaseBackoffMaxMs = reader.int("WATCHDOG_RELEASE_BACKOFF_MAX_MS", c.watchdogReleaseBackoffMaxMs, 100...86_400_000)
        c.watchdogProbationMs = reader.int("WATCHDOG_PROBATION_MS", c.watchdogProbationMs, 0...86_400_000)
        c.dbCheckpointIntervalSeconds = reader.int("ARK_DB_CHECKPOINT_INTERVAL", c.dbCheckpointIntervalSeconds, 1...86_400)
        c.apiPort = reader.int("API_PORT", c.apiPort, 1...65535)
        c.apiBind = reader.string("API_BIND", c.apiBind)
        c.apiEnabled = reader.bool("API_ENABLED", c.apiEnabled)
        c.jwtIssuer = reader.string("JWT_ISSUER", c.jwtIssuer)
        c.jwtMaxTTLSeconds = reader.int("JWT_MAX_TTL_SECONDS", c.jwtMaxTTLSeconds, 60...31_536_000)
        c.jwtJWKSFile = reader.string("JWT_JWKS_FILE", c.jwtJWKSFile)
        c.apiRateLimitPerMinute = reader.int("API_RATE_LIMIT_PER_MINUTE", c.apiRateLimitPerMinute, 1...100_000_000)
        c.apiRateLimitPerHour = reader.int("API_RATE_LIMIT_PER_HOUR", c.apiRateLimitPerHour, 1...1_000_000_000)
        reader.declare("API_CORS_ORIGINS", "origins, comma-separated", "")
        if let origins = reader.value("API_CORS_ORIGINS") {
            c.apiCORSOrigins = origins.split(separator: ",").map { $0.trimmed() }.filter { !$0.isEmpty }
            for o in c.apiCORSOrigins where o != "*" && !(o.hasPrefix("http://") || o.hasPrefix("https://")) {
                problems.append(ConfigProblem(variable: "API_CORS_ORIGINS", message: "'\(o)' is not an origin",
                                              fix: "list origins as scheme://host[:port], comma-separated, e.g. https://desk.example.com"))
            }
        }
        c.apiRequestTimeoutMs = reader.int("API_REQUEST_TIMEOUT_MS", c.apiRequestTimeoutMs, 100...600_000)
        c.apiMaxBodyBytes = reader.int("API_MAX_BODY_BYTES", c.apiMaxBodyBytes, 1024...16 * 1024 * 1024)
        c.apiBodyMemoryBytes = reader.int("API_BODY_MEMORY_BYTES", c.apiBodyMemoryBytes, 64 * 1024...16 * 1024 * 1024 * 1024)
        c.claimIdleMs = reader.int("ARK_CLAIM_IDLE_MS", c.claimIdleMs, 100...86_400_000)
        c.maxDeliveries = reader.int("ARK_MAX_DELIVERIES", c.maxDeliveries, 1...1000)
        c.batchSize = reader.int("ARK_BATCH_SIZE", c.batchSize, 1...10_000)
        c.envelopeMax = reader.int("ARK_ENVELOPE_MAX", c.envelopeMax, 1...1000)
        c.blockMs = reader.int("ARK_BLOCK_MS", c.blockMs, 1...10_000)
        c.streamMaxLen = reader.int("ARK_STREAM_MAXLEN", c.streamMaxLen, 1000...1_000_000_000)
        reader.declare("ARK_SHARDS", "whole number", "unset", "1...1024")
        if reader.value("ARK_SHARDS") != nil { c.shards = reader.int("ARK_SHARDS", 1, 1...1024) }
        reader.declare("ARK_AGENT_SHARDS", "shard numbers, comma-separated", "every shard")
        if let list = reader.value("ARK_AGENT_SHARDS") {
            let parsed = list.split(separator: ",").map { Int($0.trimmed()) }
            if c.shards == nil || parsed.contains(where: { $0 == nil || $0! < 0 || $0! >= c.shards! }) || parsed.isEmpty {
                problems.append(ConfigProblem(variable: "ARK_AGENT_SHARDS", message: "'\(list)' is not a list of shard numbers below ARK_SHARDS (\(c.shards.map(String.init) ?? "unset"))",
                                              fix: "list shard numbers, comma-separated, each in 0..<ARK_SHARDS (e.g. 0,2), or unset it to serve every shard"))
            } else {
                c.agentShards = parsed.compactMap { $0 }
            }
        }
        reader.declare("ARK_INTAKE_REPLICAS", "whole number", "1 on a cluster, 0 on one node", "0...16")
        if reader.value("ARK_INTAKE_REPLICAS") != nil { c.intakeReplicas = reader.int("ARK_INTAKE_REPLICAS", 0, 0...16) }
        c.intakeReplicaTimeoutMs = reader.int("ARK_INTAKE_REPLICA_TIMEOUT_MS", c.intakeReplicaTimeoutMs, 1...60_000)
        c.maxSignalBytes = reader.int("ARK_MAX_SIGNAL_BYTES", c.maxSignalBytes, 256...16_777_216)
        c.paperEquity = reader.double("ARK_PAPER_EQUITY", c.paperEquity, 1...1e15)
        c.graveyardCheckSeconds = reader.double("ARK_GRAVEYARD_CHECK_SECONDS", c.graveyardCheckSeconds, 0.1...3600)
        c.reconcileSeconds = reader.double("ARK_RECONCILE_SECONDS", c.reconcileSeconds, 0.1...86_400)
        c.throttles.ordersPerSecond = reader.int("ARK_MAX_ORDERS_PER_SECOND", c.throttles.ordersPerSecond, 0...100_000)
        c.throttles.symbolOrdersPerSecond = reader.int("ARK_MAX_SYMBOL_ORDERS_PER_SECOND", c.throttles.symbolOrdersPerSecond, 0...100_000)
        c.throttles.duplicateWindowMs = reader.int("ARK_DUPLICATE_WINDOW_MS", c.throttles.duplicateWindowMs, 0...60_000)
        c.instrumentsFile = reader.string("ARK_INSTRUMENTS_FILE", c.instrumentsFile)
        c.passTimeoutMs = reader.double("ARK_PASS_TIMEOUT_MS", c.passTimeoutMs, 10...3_600_000)
        c.auditKey = reader.string("ARK_AUDIT_KEY", c.auditKey)
        if c.auditKey.isEmpty && c.auditKeyBesideStateDB {
            let beside = (c.stateDB.lastIndex(of: "/").map { String(c.stateDB[..<$0]) } ?? ".") + "/audit_ed25519.pem"
            let layout = c.localRoot + "/.ark/audit_ed25519.pem"
            c.auditKey = !FileManager.default.fileExists(atPath: beside) && FileManager.default.fileExists(atPath: layout) ? layout : beside
        }
        c.auditPublicKey = reader.string("ARK_AUDIT_PUBLIC_KEY", c.auditPublicKey)
        c.auditCheckpointsFile = reader.string("ARK_AUDIT_CHECKPOINTS", c.auditCheckpointsFile)
        c.auditCheckpointMs = reader.int("ARK_AUDIT_CHECKPOINT_MS", c.auditCheckpointMs, 100...60_000)
        reader.declare("ARK_WITNESS_KEYS", "PEM files, comma-separated", "")
        c.witnessKeys = reader.string("ARK_WITNESS_KEYS", c.witnessKeys.joined(separator: ",")).split(separator: ",").map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty }
        c.witnessMaxLagSeconds = reader.int("ARK_WITNESS_MAX_LAG_SECONDS", c.witnessMaxLagSeconds, 1...86_400)
        c.witnessHold = reader.bool("ARK_WITNESS_HOLD", c.witnessHold)
        c.sessionSecret = reader.string("SESSION_SECRET", c.sessionSecret)
        c.jwtSecret = reader.string("JWT_SECRET", c.jwtSecret)
        c.alpacaAPIKey = reader.string("ALPACA_API_KEY", c.alpacaAPIKey)
        c.alpacaSecretKey = reader.string("ALPACA_SECRET_KEY", c.alpacaSecretKey)
        c.alphaVantageAPIKey = reader.string("ALPHA_VANTAGE_API_KEY", c.alphaVantageAPIKey)
        problems += reader.problems
        if c.watchdogReleaseBackoffMaxMs < c.watchdogReleaseBackoffMs {
            problems.append(ConfigProblem(variable: "WATCHDOG_RELEASE_BACKOFF_MAX_MS", message: "\(c.watchdogReleaseBackoffMaxMs) is below WATCHDOG_RELEASE_BACKOFF_MS (\(c.watchdogReleaseBackoffMs))",
                                          fix: "set it to at least WATCHDOG_RELEASE_BACKOFF_MS"))
        }
        reader.declare("ARK_FAULT", "stage:fault", "")
        if let raw = reader.value("ARK_FAULT") {
            if c.environment == "production" {
                problems.append(ConfigProblem(variable: "ARK_FAULT", message: "fault injection is refused when ARK_ENV=production",
                                              fix: "unset ARK_FAULT; it exists for rehearsals outside production"))
            } else {
                do {
                    c.fault = try AgentFault(parsing: raw)
                } catch {
                    problems.append(ConfigProblem(variable: "ARK_FAULT", message: error.description,
                                                  fix: "use <stage>:latency=<ms>ms, errors=<fraction>, size=<fraction> (joey), evaluation=<ms>ms (hrm) or crash, e.g. kenny:latency=6000ms"))
                }
            }
        }

        do {
            _ = try RedisURL(parsing: c.redisURL)
        } catch {
            problems.append(ConfigProblem(variable: "REDIS_URL", message: error.description,
                                          fix: "use redis://[:password@]host:port/db or unix:///path/to/redis.sock"))
        }
        if !problems.isEmpty { throw ConfigError(problems: problems) }
        return c
    }
}

/// One environment variable ARK reads: its name, what it takes, its default and its range.
public struct ConfigVariable: Sendable, Equatable {
    public var name: String
    /// text, whole number, number or boolean.
    public var kind: String
    /// The default as the code has it ("" when it has none).
    public var defaultValue: String
    public var range: String?
}

/// The variables a reading met, for `ARKConfig.catalog`.
final class ConfigCatalog {
    private(set) var variables: [ConfigVariable] = []
    private var seen: Set<String> = []

    func note(_ name: String, _ kind: String, _ defaultValue: String, _ range: String? = nil) {
        guard seen.insert(name).inserted else { return }
        variables.append(ConfigVariable(name: name, kind: kind, defaultValue: defaultValue, range: range))
    }
}

/// Parses typed variables and records each bad one with its expected form.
struct EnvReader {
    let env: [String: String]
    let catalog: ConfigCatalog?
    var problems: [ConfigProblem] = []

    init(env: [String: String], catalog: ConfigCatalog? = nil) {
        self.env = env
        self.catalog = catalog
    }

    /// Catalogues a variable read as text but taking something more specific.
    func declare(_ name: String, _ kind: String, _ defaultValue: String, _ range: String? = nil) {
        catalog?.note(name, kind, defaultValue, range)
    }

    /// The variable's text; read this way (not through a typed reader), it is catalogued as text.
    func value(_ name: String) -> String? {
        catalog?.note(name, "text", "")
        guard let v = env[name]?.trimmed(), !v.isEmpty else { return nil }
        return v
    }

    func string(_ name: String, _ fallback: String) -> String {
        catalog?.note(name, "text", fallback)
        return value(name) ?? fallback
    }

    mutating func int(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) -> Int {
        catalog?.note(name, "whole number", String(fallback), "\(range.lowerBound)...\(range.upperBound)")
        guard let raw = value(name) else { return fallback }
        guard let v = Int(raw), range.contains(v) else {
            problems.append(ConfigProblem(variable: name, message: "'\(raw)' is not a whole number in \(range.lowerBound)...\(range.upperBound)",
                                          fix: "set \(name) to a whole number in that range, or unset it for the default \(fallback)"))
            return fallback
        }
        return v
    }

    mutating func double(_ name: String, _ fallback: Double, _ range: ClosedRange<Double>) -> Double {
        catalog?.note(name, "number", Self.show(fallback), "\(Self.show(range.lowerBound))...\(Self.show(range.upperBound))")
        guard let raw = value(name) else { return fallback }
        guard let v = Double(raw), v.isFinite, range.contains(v) else {
            problems.append(ConfigProblem(variable: name, message: "'\(raw)' is not a number in \(range.lowerBound)...\(range.upperBound)",
                                          fix: "set \(name) to a number in that range, or unset it for the default \(fallback)"))
            return fallback
        }
        return v
    }

    /// A number as a person writes it: 400, 0.995, 1000000000000000.
    static func show(_ d: Double) -> String {
        d == d.rounded() && abs(d) <= 1e15 ? String(Int64(d)) : String(d)
    }

    mutating func bool(_ name: String, _ fallback: Bool) -> Bool {
        catalog?.note(name, "boolean", String(fallback))
        guard let raw = value(name) else { return fallback }
        switch raw.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default:
            problems.append(ConfigProblem(variable: name, message: "'\(raw)' is not a boolean",
                                          fix: "set \(name) to true or false"))
            return fallback
        }
    }
}

/// Order throttles, as a pre-trade risk gate has them (FIA: order throttles; SEC 15c3-5:
/// duplicative orders). Counted on filled orders, in the account's book, by Kenny at the fill.
public struct Throttles: Sendable, Equatable {
    /// Filled orders a second, per account (0: no limit).
    public var ordersPerSecond = 100
    /// Filled orders a second, per account and symbol (0: no limit).
    public var symbolOrdersPerSecond = 20
    /// An order with the account, symbol, side and size of one filled this recently is
    /// refused as duplicative (0: never).
    public var duplicateWindowMs = 1_000

    public init(ordersPerSecond: Int = 100, symbolOrdersPerSecond: Int = 20, duplicateWindowMs: Int = 1_000) {
        self.ordersPerSecond = ordersPerSecond
        self.symbolOrdersPerSecond = symbolOrdersPerSecond
        self.duplicateWindowMs = duplicateWindowMs
    }

    public static let off = Throttles(ordersPerSecond: 0, symbolOrdersPerSecond: 0, duplicateWindowMs: 0)

    /// How far back the fills they count go.
    public var windowNs: Int64 { max(1_000_000_000, Int64(duplicateWindowMs) * 1_000_000) }
}
