// The metrics server's answers, from the state store and Redis.

import ARKBus
import ARKCore
import ARKProcess
import ARKSLO
import ARKState
import ARKStoreWriter
import Foundation
import Graveyard
import Logging
import Prometheus

/// Answers the metrics server's questions from the state store and Redis. An actor on its
/// own thread, since hiredis and GRDB's synchronous reads block; it reconnects to Redis and
/// reopens the store on the next request after either fails, so the server itself never
/// dies with them.
public actor MonitoringBackend {
    private nonisolated let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    let config: ARKConfig
    let engine: SLOEngine
    let registry: PrometheusCollectorRegistry?
    let logger: Logger
    let connection: RedisConnection
    var store: StateStore?
    private var redisDown = false
    /// Per instance, its newest heartbeat sample and the one before it a second or more
    /// earlier: the console's rates.
    var rateSamples: [String: (newest: (processed: Int, tsNs: Int64), older: (processed: Int, tsNs: Int64)?)] = [:]
    /// The console's last state answer and when it was made.
    var lastConsoleState: (data: Data, atNs: Int64)?
    /// The periodic reconciliation of the books with the audit.
    var ledger: LedgerWatch

    public init(config: ARKConfig, registry: PrometheusCollectorRegistry?, logger: Logger = Logger(label: "ark.metrics")) throws {
        self.config = config
        self.engine = SLOEngine(settings: SLOSettings(config: config))
        self.registry = registry
        self.logger = logger
        self.executor = ThreadExecutor(name: "ark-metrics")
        self.connection = RedisConnection(url: try RedisURL(parsing: config.redisURL), commandTimeout: .seconds(2))
        var ledger = LedgerWatch(startingEquity: config.paperEquity)
        ledger.intervalNs = Int64(config.reconcileSeconds * 1e9)
        self.ledger = ledger
    }

    /// The books reconciled with the audit, checked again when the last check is older than
    /// ARK_RECONCILE_SECONDS (nil: not checked yet, or Redis is unreachable).
    func ledgerCheck() -> HealthCheck? {
        let now = wallClockNanoseconds()
        if ledger.isDue(nowNs: now), probe() != nil {
            let before = ledger.verdict?.reconciled
            ledger.check(storePath: config.stateDB, connection: connection, layout: config.shardLayout, nowNs: now)
            if let v = ledger.verdict, v.reconciled != before, before != nil || !v.reconciled {
                if v.reconciled {
                    logger.notice("the books equal the audit again", metadata: ["accounts": .stringConvertible(v.accounts)])
                } else {
                    logger.critical("the books differ from the audit", metadata: [
                        "differences": .string(v.differences.map { "\($0.account): \($0.what.joined(separator: "; "))" }.joined(separator: " | ")),
                        "unproven_shards": .string(v.unproven.map(\.description).joined(separator: ","))])
                }
            }
        }
        return ledger.healthCheck
    }

    /// With witnesses (ARK_WITNESS_KEYS): degraded while a signed head has waited longer
    /// than ARK_WITNESS_MAX_LAG_SECONDS for a cosignature.
    func witnessCheck() -> HealthCheck? {
        guard !config.witnessKeys.isEmpty else { return nil }
        let keys: [Ed25519.PublicKey]
        do { keys = try WitnessKeys.load(config.witnessKeys) } catch {
            return HealthCheck(name: "audit_witness", status: .degraded, detail: error.description)
        }
        guard case .success(let cosignatures)? = ask({ p throws(RedisError) in try AuditCosignatureKey.read(on: p.connection) }) else { return nil }
        do {
            let waiting = try WitnessWait.oldestUnwitnessed(try AuditReader(path: config.stateDB), cosignatures: cosignatures, witnessKeys: keys)
            if let problem = WitnessWait.problem(waiting, nowNs: wallClockNanoseconds(), maxLagNs: Int64(config.witnessMaxLagSeconds) * 1_000_000_000) {
                return HealthCheck(name: "audit_witness", status: .degraded, detail: problem)
            }
            let newest = cosignatures.filter { c in keys.contains { c.verify(with: $0) } }.max { $0.checkpoint.size < $1.checkpoint.size }
            return HealthCheck(name: "audit_witness", status: .healthy, detail: newest.map { "cosigned up to \($0.checkpoint.size) leaves by \($0.witnessKeyID)" } ?? "no head signed yet")
        } catch {
            return HealthCheck(name: "audit_witness", status: .degraded, detail: "the audit's heads cannot be read: \(error)")
        }
    }

    deinit { executor.shutdown() }

    // MARK: sources

    func probe() -> PipelineProbe? {
        if !connection.isConnected {
            do {
                try connection.connect(timeout: .seconds(1))
                if redisDown { logger.notice("Redis reachable again") }
                redisDown = false
            } catch {
                if !redisDown { logger.warning("Redis unreachable", metadata: ["error": .string(error.description)]) }
                redisDown = true
                return nil
            }
        }
        return PipelineProbe(connection: connection, layout: config.shardLayout)
    }

    /// Runs a Redis question; a connection error closes the connection (reopened next time)
    /// and gives nil.
    func ask<T>(_ body: (PipelineProbe) throws(RedisError) -> T) -> Result<T, RedisError>? {
        guard let p = probe() else { return nil }
        do {
            return .success(try body(p))
        } catch {
            if error.isConnectionError {
                connection.close()
                redisDown = true
                return nil
            }
            return .failure(error)
        }
    }

    func openStore() throws -> StateStore {
        if let store { return store }
        let s = try StateStore(path: config.stateDB)
        store = s
        return s
    }

    // MARK: answers

    /// The SLO report over the configured window, or over `windowSeconds` (an operator
    /// checking a fix: `/slos?window=60` is met once the last minute is clean, while the
    /// 5-minute window and its alert still hold the failure). Burn windows never change.
    public func sloReport(windowSeconds: Int64? = nil) throws -> SLOReport {
        let store = try openStore()
        let nowNs = wallClockNanoseconds()
        var engine = engine
        if let windowSeconds {
            var settings = engine.settings
            settings.windowSeconds = windowSeconds
            engine = SLOEngine(settings: settings)
        }
        let overdue: Int? = switch ask({ p throws(RedisError) in
            try p.overdueInFlight(groups: try p.groups(), olderThanMs: config.passTimeoutMs, nowNs: nowNs)
        }) {
        case .success(let n)?: n
        default: nil
        }
        let integrity = Graveyard.check(directory: config.graveyardDir)
        return try engine.report(from: store, nowNs: nowNs, inFlightOverdue: overdue, ethicsDrift: !integrity.isIntact, driftProblem: integrity.problem)
    }

    public func health() -> HealthReport { healthReading().report }

    /// The health report with the heartbeats and the SLO report it was judged from (nil when
    /// Redis or the store did not answer), so the console reads each once a poll.
    func healthReading() -> (report: HealthReport, beats: [HeartbeatRecord]?, slo: SLOReport?, risk: [ShardRiskState]?) {
        let nowNs = wallClockNanoseconds()
        var redisProblem: String?
        var beats: [HeartbeatRecord]?
        var shardProblems: [(shard: String, problem: String)] = []
        var risk: [ShardRiskState]?
        switch ask({ p throws(RedisError) in try p.ping(); return (try p.heartbeats(), p.shardProblems(), try p.riskStates()) }) {
        case .success(let (b, s, r))?:
            beats = b
            shardProblems = s
            risk = r
        case .failure(let e)?: redisProblem = e.description
        case nil: redisProblem = "cannot connect to \(config.redisURL)"
        }
        var storeProblem: String?
        var journal: String?
        var writeProblem: String?
        do {
            let store = try openStore()
            journal = try store.probe()
            writeProblem = try store.probeWriteLock()
        } catch {
            storeProblem = "\(error)"
            store = nil
        }
        let slo = storeProblem == nil ? try? sloReport() : nil
        let directory = (config.stateDB as NSString).deletingLastPathComponent
        var inputs = HealthInputs(redisProblem: redisProblem, storeProblem: storeProblem, journalMode: journal,
                                  storeWriteProblem: writeProblem, storeSpace: FileSystemSpace(path: directory), storeDirectory: directory,
                                  heartbeats: beats, graveyardProblem: Graveyard.check(directory: config.graveyardDir).problem,
                                  slo: slo, nowNs: nowNs, staleAfterSeconds: config.heartbeatStaleSeconds)
        inputs.shardProblems = shardProblems
        inputs.risk = risk
        inputs.ledger = storeProblem == nil && redisProblem == nil ? ledgerCheck() : nil
        inputs.witness = storeProblem == nil && redisProblem == nil ? witnessCheck() : nil
        return (evaluateHealth(inputs), beats, slo, risk)
    }

    /// Ready to serve: the store opens and Redis answers.
    public func ready() -> (Bool, String) {
        do { _ = try openStore().probe() } catch { store = nil; return (false, "state store: \(error)") }
        if case .success? = ask({ p throws(RedisError) in try p.ping() }) { return (true, "ready") }
        return (false, "redis unreachable")
    }

    public func heartbeats() -> [HeartbeatRecord]? {
        if case .success(let b)? = ask({ p throws(RedisError) in try p.heartbeats() }) { return b }
        return nil
    }

    /// The Prometheus exposition of every ARK process: this one's registry, every other
    /// process's published text, and the SLO, stage and Redis gauges computed here.
    public func prometheusText() -> String {
        var merged = PrometheusExposition()
        let me = MetricsPublisher.processLabel()
        if let registry { merged.add(registry.emitToString(), process: me) }
        let published: [(String, String)] = switch ask({ p throws(RedisError) in try Self.publishedExpositions(p.connection) }) {
        case .success(let items)?: items
        default: []
        }
        for (label, text) in published {
            let (process, track) = MetricsPublisher.parse(label: label)
            if process != me { merged.add(text, process: process, track: track) }
        }
        merged.add(computedGauges(), process: me)
        for c in merged.conflicts { logger.warning("metric left out of /metrics: types disagree", metadata: ["metric": .string(c)]) }
        return merged.text()
    }

    static func publishedExpositions(_ connection: RedisConnection) throws(RedisError) -> [(String, String)] {
        // On a cluster each primary holds some of the keys, and MGET must not span slots.
        let keys = try connection.keysOnEveryPrimary(matching: Streams.metricsPrefix + "*")
        guard !keys.isEmpty else { return [] }
        var values: [RedisValue] = []
        if connection.isCluster {
            for key in keys { values.append(try connection.command(["GET", .text(key)])) }
        } else {
            values = try connection.command(["MGET"] + keys.map { .text($0) }).array ?? []
        }
        return zip(keys, values).compactMap { key, value in
            value.string.map { (String(key.dropFirst(Streams.metricsPrefix.count)), $0) }
        }
    }

    /// Gauges the server computes: SLOs (absent without data), per-stage pending, lag and
    /// live instances, signals overdue in flight, the store's disk space and the newest
    /// backup's time.
    func computedGauges() -> String {
        var out = ""
        func family(_ name: String, _ samples: [(String, Double)]) {
            guard !samples.isEmpty else { return }
            out += "# TYPE \(name) gauge\n"
            for (labels, v) in samples { out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(prometheusNumber(v))\n" }
        }
        if let report = try? sloReport() {
            family(MetricName.sloTarget, report.slos.map { ("slo=\"\($0.name)\"", $0.target) })
            family(MetricName.sloActual, report.slos.compactMap { s in s.actual.map { ("slo=\"\(s.name)\"", $0) } })
            family(MetricName.sloOK, report.slos.compactMap { s in s.ok.map { ("slo=\"\(s.name)\"", $0 ? 1 : 0) } })
            family(MetricName.sloBudget, report.slos.compactMap { s in s.budgetRemaining.map { ("slo=\"\(s.name)\"", $0) } })
            family(MetricName.sloBurnRate, report.slos.flatMap { s in
                BurnWindow.allCases.compactMap { w in (s.burnRates[w] ?? nil).map { ("slo=\"\(s.name)\",window=\"\(w.rawValue)\"", $0) } }
            })
            if let n = report.inFlightOverdue { family(MetricName.inFlightOverdue, [("", Double(n))]) }
        }
        if case .success(let groups)? = ask({ p throws(RedisError) in try p.groups() }) {
            family(MetricName.pendingEntries, groups.map { ($0.labels, Double($0.pending)) })
            family(MetricName.consumerLag, groups.compactMap { g in g.lag.map { (g.labels, Double($0)) } })
        }
        if let space = FileSystemSpace(path: (config.stateDB as NSString).deletingLastPathComponent) {
            family(MetricName.stateDiskFree, [("", Double(space.freeBytes))])
            family(MetricName.stateDiskSize, [("", Double(space.totalBytes))])
        }
        if let newest = BackupFiles.newestTimestamp(in: config.backupDir) {
            family(MetricName.backupLastSuccess, [("", newest)])
        }
        if case .success(let risk)? = ask({ p throws(RedisError) in try p.riskStates() }) {
            let tagged = risk.contains { $0.shard.tagged }
            func shardLabel(_ s: ShardRiskState) -> String { tagged ? ",shard=\"\(s.shard)\"" : "" }
            // Every account with a state set, and the global one (ACTIVE when never set).
            family(MetricName.tradingState, risk.flatMap { s in
                var scopes = Set(s.trading.controls.keys).union(s.trading.unreadable.keys)
                scopes.insert(.global)
                return scopes.sorted { $0.field < $1.field }.map { scope in
                    ("scope=\"\(PrometheusExposition.escapeLabelValue(scope.field))\"\(shardLabel(s))", Double(s.trading.mode(of: scope).gaugeValue))
                }
            })
            family(MetricName.bookUnreadable, risk.map { s in ("\(tagged ? "shard=\"\(s.shard)\"" : "")", Double(s.unreadableBooks.isEmpty ? 0 : 1)) })
        }
        _ = ledgerCheck()
        if let v = ledger.verdict {
            family(MetricName.bookReconciled, [("", v.reconciled ? 1 : 0)])
            family(MetricName.bookDifferences, [("", Double(v.differences.count + v.unproven.count))])
        }
        if let beats = heartbeats() {
            let now = wallClockNanoseconds()
            family(MetricName.stageLiveInstances, Stage.allCases.map { stage in
                ("stage=\"\(stage.rawValue)\"", Double(beats.filter { $0.stage == stage.rawValue && $0.isLive(nowNs: now, staleAfterSeconds: config.heartbeatStaleSeconds) }.count))
            })
            family(MetricName.stageBackpressure, Stage.allCases.map { stage in
                ("stage=\"\(stage.rawValue)\"", Double(beats.filter { $0.stage == stage.rawValue && $0.backpressure != nil && $0.isLive(nowNs: now, staleAfterSeconds: config.heartbeatStaleSeconds) }.count))
            })
        }
        return out
    }

    /// `/metrics/json`: the windowed histograms (ms) from the rollups, counters over the
    /// window, and the stage gauges.
    public func metricsJSON() throws -> Data {
        try JSONDocument.data(metricsObject(), .pretty)
    }

    func metricsObject() throws -> [String: Any] {
        let store = try openStore()
        let nowNs = wallClockNanoseconds()
        let window = engine.settings.windowSeconds
        let from = nowNs / 1_000_000_000 - window + 1
        let h = try store.rollupHistograms(since: from)
        let t = try store.rollupTotals(since: [from])[0]
        var histograms: [String: Any] = [
            "ark_pass_latency_ms": histogramJSON(h.latency),
            "ark_hrm_evaluation_ms": histogramJSON(h.hrm),
        ]
        for stage in Stage.allCases where stage != .aletheia {
            histograms["ark_stage_latency_ms{stage=\"\(stage.rawValue)\"}"] = histogramJSON(h.stages[stage])
        }
        var gauges: [String: Any] = [:]
        if case .success(let groups)? = ask({ p throws(RedisError) in try p.groups() }) {
            for g in groups {
                gauges["ark_pending_entries{\(g.labels)}"] = g.pending
                gauges["ark_consumer_lag{\(g.labels)}"] = g.lag.map { $0 as Any } ?? NSNull()
            }
        }
        gauges["ark_ethics_drift"] = Graveyard.check(directory: config.graveyardDir).isIntact ? 0 : 1
        if let beats = heartbeats() {
            for b in beats {
                gauges["ark_instance_heartbeat_age_seconds{instance=\"\(b.instance)\"}"] = (b.ageSeconds(nowNs: nowNs) * 1000).rounded() / 1000
            }
        }
        return [
            "window_seconds": window,
            "generated_at": iso8601(nowNs),
            "histograms": histograms,
            "counters": [
                "ark_passes_total": t.passes, "ark_passes_approved": t.approved, "ark_passes_denied": t.denied,
                "ark_passes_rejected": t.rejected, "ark_passes_errored": t.errors, "ark_passes_deadlettered": t.deadlettered,
                "ark_passes_failed": t.failed,
            ],
            "gauges": gauges,
        ]
    }
}

func histogramJSON(_ h: LogHistogram) -> [String: Any] {
    func ms(_ q: Double) -> Any { h.quantile(q).map { ($0 / 1000 * 1000).rounded() / 1000 } ?? NSNull() }
    return ["count": h.total, "p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99),
            "max": h.total == 0 ? NSNull() : (h.maxMicros / 1000 * 1000).rounded() / 1000]
}

func prometheusNumber(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
}
