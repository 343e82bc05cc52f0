// What each setting is for, and docs/configuration.md generated from it.

/// What each environment variable is for, and the generator of docs/configuration.md from
/// it and from what `ARKConfig.load` reads (`ARKConfig.catalog`): names, types, defaults and
/// ranges come from the code, so the reference cannot drift from it (`ConfigReferenceTests`).
extension ARKConfig {
    /// What each variable `load` reads is for. A variable read without a line here, or a
    /// line for one no longer read, fails `ConfigReferenceTests`.
    public static let meanings: [String: String] = [
        "ALPACA_API_KEY": "the original system's broker key, kept for its `.env.production`; ARK trades on paper and never sends it anywhere, `ark audit` checks it is not logged",
        "ALPACA_SECRET_KEY": "the same broker's secret; likewise unused beyond those checks",
        "ALPHA_VANTAGE_API_KEY": "the original system's market-data key; likewise unused beyond those checks",
        "API_BIND": "the API's address; `0.0.0.0` is warned about by `ark config validate` and in the log (put a TLS proxy in front)",
        "API_BODY_MEMORY_BYTES": "the memory all request bodies in flight may take together; a request that does not fit gets 503 with `Retry-After` before its body is read ([API](api.md#api))",
        "API_CORS_ORIGINS": "browser origins allowed (comma-separated); preflights from others get 403",
        "API_ENABLED": "`ark run` and the start script run the API",
        "API_MAX_BODY_BYTES": "largest request body (at most 16 MiB); 413 beyond",
        "API_PORT": "the API's address; `0.0.0.0` is warned about by `ark config validate` and in the log (put a TLS proxy in front)",
        "API_RATE_LIMIT_PER_HOUR": "token buckets per client (the token's `sub`)",
        "API_RATE_LIMIT_PER_MINUTE": "token buckets per client (the token's `sub`)",
        "API_REQUEST_TIMEOUT_MS": "a request waiting longer on Redis or the store gets 503 with `Retry-After`",
        "ARK_AGENT_SHARDS": "the shards this process's agents serve, e.g. `0,2` (never for Aletheia, which serves all)",
        "ARK_AUDIT_CHECKPOINTS": "the append-only checkpoint file",
        "ARK_AUDIT_CHECKPOINT_MS": "the longest a record waits for a signed head, busy or idle",
        "ARK_AUDIT_KEY": "Aletheia's Ed25519 key (PEM, mode 600) for the audit's signed checkpoints ([Audit](audit.md#audit))",
        "ARK_AUDIT_PUBLIC_KEY": "the pinned public key the log is verified from: a copy the ARK user cannot write; after a rotation it stays the first key ([Audit](audit.md#audit))",
        "ARK_BACKUP_DIR": "where `ark backup` writes (mode 600; the newest 10 kept)",
        "ARK_BATCH_SIZE": "events per read and per commit (a read of envelopes asks for as many entries as should hold about this many events)",
        "ARK_ENVELOPE_MAX": "the most events a stage writes in one entry of an internal stream (the `events` field, one JSON event a line); 1 writes one event an entry",
        "ARK_BLOCK_MS": "how long a read waits for new entries",
        "ARK_CLAIM_IDLE_MS": "entries pending this long on another consumer are taken over (XAUTOCLAIM)",
        "ARK_DB_CHECKPOINT_INTERVAL": "the longest, in seconds, Aletheia's WAL goes without a checkpoint; Aletheia also checkpoints at every 1,000 WAL pages (4 MB), on a thread of its own, never inside a commit (see [State store](audit.md#state-store))",
        "ARK_DUPLICATE_WINDOW_MS": "an order with the account, symbol, side and size of one filled this recently is refused as duplicative (`duplicate_order`); 0: off",
        "ARK_ENV": "`production` makes every problem `ark config validate` finds stop start-up, requires the audit key and its pin, and refuses `ARK_FAULT`; anything else is a development or local setup",
        "ARK_FAULT": "rehearsals only, refused when `ARK_ENV=production`: `kenny:latency=6000ms`, `kenny:errors=0.5` (every other batch fails), `joey:size=0.15` (Joey sizes every position at 15 %), `kenny:crash` (exits on its first batch), `hrm:evaluation=150ms` (each rule evaluation 150 ms slower), comma-separated; applies to the agents of that stage started with it",
        "ARK_GRAVEYARD_CHECK_SECONDS": "how often HRM re-hashes the rule file",
        "ARK_GRAVEYARD_DIR": "directory holding `ethics_rules.json`",
        "ARK_INSTRUMENTS_FILE": "an allow-list of instruments (JSON) with their own band, minimum notional and first reference; unset: every canonical symbol may trade ([Risk engine](risk.md#risk-engine))",
        "ARK_INTAKE_REPLICAS": "replicas that must have a signal (`WAIT`) before the API or the synthetic loop confirms it; fewer within the timeout: 503",
        "ARK_INTAKE_REPLICA_TIMEOUT_MS": "how long the intake waits for them",
        "ARK_LOG_DIR": "where every process's log file goes, and the default checkpoint file",
        "ARK_MAX_DELIVERIES": "deliveries (or, for an event of an envelope, failed attempts or deaths of a process handling it alone) after which an entry or event is dead-lettered",
        "ARK_MAX_ORDERS_PER_SECOND": "filled orders a second per account; more are refused (`max_orders_per_second`); 0: off ([Risk engine](risk.md#risk-engine))",
        "ARK_MAX_SIGNAL_BYTES": "largest payload Kyle accepts",
        "ARK_MAX_SYMBOL_ORDERS_PER_SECOND": "filled orders a second per account and symbol (`max_symbol_orders_per_second`); 0: off",
        "ARK_PAPER_EQUITY": "Kenny's starting paper equity, per account",
        "ARK_PASS_TIMEOUT_MS": "a pass slower than this counts as failed in the rollups",
        "ARK_RECONCILE_SECONDS": "how often the metrics server reconciles the books with the audit ([Ledger and reconciliation](risk.md#ledger-and-reconciliation))",
        "ARK_RELEASES_DIR": "releases for canary rollouts, with `current` and `previous` links",
        "ARK_SHARDS": "the pipeline's shards: unset, one untagged shard with the names above; N, N shards whose keys carry hash tags (`ark:{s3}:kyle`), signals routed by `account`. Required on a cluster, the same in every process",
        "ARK_STATE_DB": "the SQLite state store (WAL, mode 600)",
        "ARK_STREAM_MAXLEN": "the backlog bound (back-pressure, see Reliability): a stage whose next stage has more unread entries than this takes no input until it is under 90 % of it, and the API answers 503 with `Retry-After` while Kyle's backlog is over it. Streams are never capped: every stage trims only what all groups on its input stream have acknowledged, once a second (`XTRIM MINID ~`)",
        "ARK_TRACK": "set to `canary` by `ark canary start` for the agents it starts; never by hand",
        "ARK_WITNESS_HOLD": "with witnesses: Aletheia takes no new input while a head waits longer than that (the pipeline holds; upstream back-pressure and the API's 503 bound the wait)",
        "ARK_WITNESS_KEYS": "the witnesses' public keys (PEM files, comma-separated) whose cosignatures the API takes ([Witnesses](audit.md#witnesses))",
        "ARK_WITNESS_MAX_LAG_SECONDS": "with witnesses: `/healthz` is degraded while a signed head waits longer for a cosignature",
        "JWT_ISSUER": "the `iss` every token must carry; the longest lifetime (`exp - iat`) accepted",
        "JWT_JWKS_FILE": "a JWKS file (RFC 7517) of RS256 or EdDSA public keys, each with its `kid`, whose tokens (an identity provider's) are accepted beside HS256 ones; a bad file stops the API and the metrics server at start, and `ark config validate` names it",
        "JWT_MAX_TTL_SECONDS": "the `iss` every token must carry; the longest lifetime (`exp - iat`) accepted",
        "JWT_SECRET": "HS256 key of the API's tokens and the console's actions; at least 32 bytes in every environment (RFC 7518 §3.2); the API refuses to start without it, the console is read-only without it",
        "METRICS_BIND": "its address; `0.0.0.0` is logged as a warning naming the exposure",
        "METRICS_PORT": "the metrics server's port",
        "METRICS_RETENTION_SECONDS": "how long the per-second rollups (behind `/slos`, `/metrics/json` and the console's charts) are kept: Aletheia deletes older rows once a minute, and always keeps the 6 hours the slowest SLO burn-rate window reads",
        "METRICS_SERVER_ENABLED": "`ark run` and the start script run the metrics server",
        "REDIS_POOL_SIZE": "connections the API and the metrics server keep to Redis",
        "REDIS_URL": "`redis://[user:password@]host:port/db` or `unix:///path/redis.sock[?db=N]`; a Redis Cluster by one or more of its nodes, comma-separated (`redis://h1:7000,h2:7000`, database 0; see [Scale-out](scale-out.md#scale-out))",
        "SESSION_SECRET": "the console's session signing secret; at least 32 characters, never a placeholder, in production",
        "SLO_AVAILABILITY_TARGET": "availability objective over 5 minutes",
        "SLO_P95_LATENCY_MS": "p95 pass latency objective",
        "TRACE_ID_ENABLED": "keep producer trace ids (false: always derive from the entry id)",
        "WATCHDOG_ENABLED": "`ark run` and the start script run the watchdog",
        "WATCHDOG_FAILURE_WINDOW_MS": "that window",
        "WATCHDOG_HEARTBEAT_TIMEOUT_MS": "a heartbeat this old means hung or dead",
        "WATCHDOG_MAX_CONSECUTIVE_FAILURES": "failed batches in a row that quarantine",
        "WATCHDOG_MAX_FAILURE_RATE": "failed share of batches over the window that quarantines…",
        "WATCHDOG_MAX_LATENCY_MS": "batch latency (p95 of a heartbeat's batches, or the age of a batch still running) that quarantines",
        "WATCHDOG_MIN_REQUESTS": "…once at least this many batches were attempted in it",
        "WATCHDOG_PROBATION_MS": "after a release, a relapse within this long quarantines again at once",
        "WATCHDOG_QUARANTINE_ENABLED": "false: the watchdog only warns (\"would be quarantined\")",
        "WATCHDOG_RELEASE_BACKOFF_MAX_MS": "…up to this",
        "WATCHDOG_RELEASE_BACKOFF_MS": "quarantine before the first automatic release; doubles per repeat offence…",
    ]

    /// Defaults that say more than the code's constant: another layout's, or one derived at start.
    public static let defaultNotes: [String: String] = [
        "ARK_STATE_DB": "`/var/lib/ark/ark_state.db` (`--local`: `./.ark/ark_state.db`)",
        "ARK_BACKUP_DIR": "`/var/backups/ark` (`--local`: `./.ark/backups`)",
        "ARK_LOG_DIR": "`/var/log/ark` (`--local`: `./.ark/logs`)",
        "ARK_RELEASES_DIR": "`/opt/ark/releases` (`--local`: `./.ark/releases`)",
        "REDIS_URL": "`redis://127.0.0.1:6379/0` (`--local`: the private Redis's socket under `./.ark/redis`)",
        "ARK_AUDIT_KEY": "none, required in production (`--local`: `audit_ed25519.pem` beside the state store, or else in `./.ark/`; made at first start by the start script, `ark run` or `ark agent`, never by a command that only reads)",
        "ARK_AUDIT_PUBLIC_KEY": "none, required in production (elsewhere `$ARK_AUDIT_KEY.pub` stands in, with a note)",
        "ARK_AUDIT_CHECKPOINTS": "`$ARK_LOG_DIR/audit_checkpoints.jsonl`",
        "JWT_SECRET": "none (`--local`: `./.ark/jwt_secret`, made once, mode 600)",
    ]

    /// Variables read outside `ARKConfig`: by every process as it starts, or by the scripts.
    public static let processVariables: [(name: String, defaultValue: String, meaning: String)] = [
        ("ARK_LOG_LEVEL", "info", "trace … critical"),
        ("ARK_LOG_FORMAT", "`json`, or `text` on a terminal", "log line format"),
        ("ARK_RUN_DIR", "`./.ark/run` (`--local`), else `$ARK_LOG_DIR/../run`", "the start and stop scripts' pid files"),
        ("ARK_BUILD", "`release`", "which build the start script runs (the tests run the debug build)"),
        ("ARK_SKIP_BUILD", "0", "1: the start script runs the build as it is, without building it first"),
        ("ARK_API_TOKEN", "none", "the bearer token `ark synthetic-loop --api-url` sends when `--token` is not given (else one is minted from `JWT_SECRET`)"),
    ]

    /// docs/configuration.md: every variable, what it takes, its default and what it is for.
    public static func referenceMarkdown() -> String {
        func cell(_ s: String) -> String { s.replacing("|", with: "\\|") }
        var lines = [
            "# Configuration",
            "",
            "<!-- Generated from Sources/ARKCore/ARKConfig.swift and ConfigReference.swift by `ark config reference`;",
            "     edit those and regenerate: .build/debug/ark config reference > docs/configuration.md -->",
            "",
            "Every setting ARK reads, in the order `ARKConfig` reads it: from the environment, or from",
            "`.env.production` (`.env.production.template` lists every one, with its default). A bad",
            "value stops start-up with every problem listed, each naming the variable and its fix",
            "(exit 78); `ark config validate` also checks what needs the outside world",
            "([Configuration check](operations.md#configuration-check)).",
            "",
            "| variable | takes | default | meaning |",
            "|---|---|---|---|",
        ]
        for v in catalog() {
            let takes = v.range.map { "\(v.kind), \($0)" } ?? v.kind
            let shown = defaultNotes[v.name] ?? (v.defaultValue.isEmpty ? "none" : "`\(v.defaultValue)`")
            lines.append("| `\(v.name)` | \(cell(takes)) | \(cell(shown)) | \(cell(meanings[v.name] ?? "")) |")
        }
        lines += [
            "",
            "## Read by processes and scripts",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
        ]
        for v in processVariables {
            lines.append("| `\(v.name)` | \(cell(v.defaultValue)) | \(cell(v.meaning)) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
