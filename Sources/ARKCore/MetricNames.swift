// The names of ARK's metrics, shared by the code that emits them and the code that reads them.

/// Names of ARK's metrics, shared by the code that emits them (through swift-metrics) and
/// the metrics server, which documents them in `/metrics` and merges every process's
/// exposition. Prometheus metrics are in base units (seconds); the JSON view keeps ms.
public enum MetricName {
    // Every stage (label `stage`).
    public static let stageProcessed = "ark_stage_processed_total"
    public static let stageFailed = "ark_stage_failed_total"
    public static let stageLatency = "ark_stage_batch_seconds"
    public static let deadLettered = "ark_deadlettered_total"
    public static let redisReconnects = "ark_redis_reconnects_total"
    public static let pendingEntries = "ark_pending_entries"
    public static let consumerLag = "ark_consumer_lag"
    // Kyle.
    public static let signalsRejected = "ark_signals_rejected_total"
    public static let canaryRouted = "ark_canary_routed_total"
    // HRM.
    public static let hrmEvaluation = "ark_hrm_evaluation_seconds"
    public static let ethicsDrift = "ark_ethics_drift"
    public static let hrmDecisions = "ark_hrm_decisions_total"
    public static let hrmLimitDenials = "ark_hrm_limit_denials_total"
    // Aletheia and the store.
    public static let passLatency = "ark_pass_latency_seconds"
    public static let passes = "ark_passes_total"
    public static let dbWrite = "ark_db_write_seconds"
    public static let auditCheckpointFailures = "ark_audit_checkpoint_failures_total"
    // The metrics server (from the state store and Redis).
    public static let sloActual = "ark_slo_actual"
    public static let sloTarget = "ark_slo_target"
    public static let sloOK = "ark_slo_ok"
    public static let sloBudget = "ark_slo_error_budget_remaining"
    public static let sloBurnRate = "ark_slo_burn_rate"
    public static let inFlightOverdue = "ark_inflight_overdue"
    public static let stageLiveInstances = "ark_stage_live_instances"
    public static let stageBackpressure = "ark_stage_backpressure"
    public static let executionLimited = "ark_execution_limit_denials_total"
    public static let bookUnreadable = "ark_book_unreadable"
    public static let bookReconciled = "ark_book_reconciled"
    public static let bookDifferences = "ark_book_differences"
    public static let tradingState = "ark_trading_state"
    public static let stateDiskFree = "ark_state_disk_free_bytes"
    public static let stateDiskSize = "ark_state_disk_size_bytes"
    public static let backupLastSuccess = "ark_backup_last_success_timestamp_seconds"
    // The API server.
    public static let apiRequests = "ark_api_requests_total"
    public static let apiLatency = "ark_api_request_seconds"
    public static let apiSignals = "ark_api_signals_total"
    public static let apiBodyRefused = "ark_api_body_refused_total"
    // The watchdog (DESIGN §5 names it without the prefix).
    public static let quarantines = "watchdog_quarantines_total"
    public static let quarantined = "watchdog_quarantined_instances"

    /// Help text for `# HELP` lines.
    public static let help: [String: String] = [
        stageProcessed: "Entries a stage processed (label stage).",
        stageFailed: "Entries a stage failed: dead-lettered, errored or in a failed batch (label stage).",
        stageLatency: "Time from reading a batch to committing it, per batch (label stage).",
        deadLettered: "Entries sent to ark:deadletter (label stage).",
        redisReconnects: "Redis connections lost and re-established (label stage).",
        pendingEntries: "Entries delivered to a stage and not yet acknowledged (label stage).",
        consumerLag: "Entries in a stage's input stream not yet delivered to its group (label stage).",
        signalsRejected: "Signals Kyle rejected as invalid, each recorded with its reason.",
        canaryRouted: "Signals the baseline Kyle routed to the canary track during a canary rollout.",
        hrmEvaluation: "Time HRM took to evaluate one proposal against the Graveyard rules.",
        ethicsDrift: "1 when the Graveyard rule file does not match its pinned SHA-256 (HRM then denies everything).",
        hrmDecisions: "HRM decisions (label decision: approved or denied).",
        hrmLimitDenials: "HRM denials for a portfolio limit reached only (the rest of the denials broke a rule of the proposal itself).",
        passLatency: "End-to-end pass latency, producer t0 to Aletheia's record.",
        passes: "Passes recorded by Aletheia (label verdict).",
        dbWrite: "Time of one state store write transaction (one batch).",
        auditCheckpointFailures: "Audit checkpoints Aletheia could not sign or publish (checkpoint file, Redis); the next one covers the same records.",
        sloActual: "Current value of an SLO over its window (label slo); absent when there is no data.",
        sloTarget: "Target of an SLO (label slo).",
        sloOK: "1 when an SLO is met, 0 when violated (label slo); absent when there is no data.",
        sloBudget: "Fraction of the error budget left over the SLO window (label slo).",
        sloBurnRate: "Error budget burn rate (labels slo, window).",
        inFlightOverdue: "Signals still in the pipeline longer than the pass timeout (counted as failed).",
        stageLiveInstances: "Instances of a stage with a fresh heartbeat that are not quarantined (label stage).",
        executionLimited: "Approved orders Kenny refused at execution because the fill would break a portfolio limit of the book as it was then.",
        bookReconciled: "1 while every book equals the audit's fold (the metrics server reconciles every ARK_RECONCILE_SECONDS), 0 while one differs or a shard's books are lost (RUNBOOK: ARKBookNotReconciled).",
        bookDifferences: "Books that differ from the audit, and shards whose books are lost, at the last reconciliation.",
        bookUnreadable: "1 while a book of the shard cannot be read: Kenny refuses that account's fills and leaves the book as found for an operator (RUNBOOK: book unreadable).",
        tradingState: "Trading state per scope (label scope: global or account:<name>): 0 ACTIVE, 1 REDUCING, 2 HALTED.",
        stageBackpressure: "Live instances of a stage taking no input because an output stream's unread backlog is over ARK_STREAM_MAXLEN (label stage).",
        stateDiskFree: "Bytes free on the file system holding the state store.",
        stateDiskSize: "Size in bytes of the file system holding the state store.",
        backupLastSuccess: "Unix time the newest good backup in ARK_BACKUP_DIR was written; absent when there is none.",
        apiRequests: "API requests answered (labels method, status).",
        apiLatency: "Time the API took to answer a request.",
        apiSignals: "Signals the API enqueued to Kyle (label result: accepted or rejected; a rejected one is recorded by Kyle with its reasons).",
        apiBodyRefused: "Requests refused with 503 before their body was read: the bodies in flight took API_BODY_MEMORY_BYTES.",
        quarantines: "Quarantines the watchdog imposed (label agent).",
        quarantined: "Instances quarantined now (label agent).",
    ]
}
