// What the operator console reads and does, as JSON.

import ARKBus
import ARKCore
import ARKRisk
import ARKState
import ARKStoreWriter
import ARKWatchdog
import Foundation

/// What the operator console (`/` of the metrics server) reads and does, as JSON objects:
/// the pipeline's instances with their standing, the rollup series behind its charts, the
/// watchdog's events and releases, the newest canary run and its requests, the trading states
/// and their kill switch, traces with their proofs, and dead letters.
extension MonitoringBackend {
    /// Instances silent for longer than this are gone (a restart has a new pid): counted,
    /// not listed, as in `ark status`.
    public static let goneAfterSeconds = 60.0

    /// Every stage with its instances (standing, rate, pending, p95, the watchdog's view),
    /// its groups' pending and lag, the health checks and the SLO report: one poll's worth.
    public func consoleState() throws -> Data {
        let nowNs = wallClockNanoseconds()
        // Every open page polls every two seconds; the health check behind it takes the
        // store's write lock for a moment, so pages polling together share one answer.
        if let cached = lastConsoleState, nowNs - cached.atNs < 1_000_000_000 { return cached.data }
        let (health, beats, slo, risk) = healthReading()
        let standings: [String: WatchdogInstanceRecord] = (try? openStore().watchdogInstances()).map {
            Dictionary($0.map { ($0.instance, $0) }, uniquingKeysWith: { a, _ in a })
        } ?? [:]
        let groups: [GroupState] = if case .success(let g)? = ask({ p throws(RedisError) in try p.groups() }) { g } else { [] }
        var gone = 0
        var stages: [[String: Any]] = []
        for stage in Stage.allCases {
            var instances: [[String: Any]] = []
            for b in beats ?? [] where b.stage == stage.rawValue {
                let age = b.ageSeconds(nowNs: nowNs)
                guard age <= Self.goneAfterSeconds else { gone += 1; continue }
                let watchdog = standings[b.instance]
                instances.append(instanceObject(b, watchdog: watchdog, ageSeconds: age, nowNs: nowNs))
            }
            let stageGroups = groups.filter { $0.stage == stage }
            stages.append([
                "stage": stage.rawValue,
                "instances": instances,
                "live": instances.filter { $0["standing"] as? String == "live" || $0["standing"] as? String == "probation" }.count,
                "pending": stageGroups.reduce(0) { $0 + $1.pending },
                "lag": stageGroups.contains { $0.lag == nil } ? NSNull() : stageGroups.reduce(0) { $0 + ($1.lag ?? 0) } as Any,
            ])
        }
        var out: [String: Any] = [
            "generated_at": iso8601(nowNs),
            "health": healthJSON(health),
            "stages": stages,
            "gone_instances": gone,
            "redis_reachable": beats != nil,
            "shards": config.shardLayout.shards.map(\.description),
        ]
        if let slo { out["slos"] = sloJSON(slo) }
        if let risk {
            var trading = tradingJSON(risk)
            // The last reconciliation of the books with the audit (what /healthz's `ledger` says).
            if let check = ledger.healthCheck { trading["ledger"] = ["status": check.status.rawValue, "detail": check.detail] }
            out["trading"] = trading
        }
        let seen = Set((beats ?? []).map(\.instance))
        rateSamples = rateSamples.filter { seen.contains($0.key) }
        let data = try JSONDocument.data(out, .pretty)
        lastConsoleState = (data, nowNs)
        return data
    }

    private func instanceObject(_ b: HeartbeatRecord, watchdog: WatchdogInstanceRecord?, ageSeconds age: Double, nowNs: Int64) -> [String: Any] {
        // The watchdog's table is the authority on quarantine and probation; the heartbeat's
        // flag is the instance's own copy of it.
        let standing = b.quarantined || watchdog?.status == "quarantined" ? "quarantined"
            : age > config.heartbeatStaleSeconds ? "silent"
            : watchdog?.status == "probation" ? "probation" : "live"
        var o: [String: Any] = [
            "instance": b.instance, "host": b.host, "pid": b.pid, "shard": Shard(instance: b.instance).description,
            "standing": standing, "processed": b.processed, "failed": b.failed, "pending": b.pending,
            "p50_ms": (b.p50Ms * 1000).rounded() / 1000, "p95_ms": (b.p95Ms * 1000).rounded() / 1000,
            "heartbeat_age_s": (age * 10).rounded() / 10, "rate_per_s": rate(of: b).map { $0 as Any } ?? NSNull(),
            "backpressure": b.backpressure ?? NSNull(),
        ]
        if let w = watchdog {
            o["watchdog"] = [
                "status": w.status, "offences": w.offences, "reason": w.reason, "since_ns": w.sinceNs,
                "release_in_s": w.status == "quarantined" ? max(0, (w.releaseAtNs - nowNs) / 1_000_000_000) : NSNull(),
                "probation_left_s": w.status == "probation" ? max(0, (w.probationUntilNs - nowNs) / 1_000_000_000) : NSNull(),
            ] as [String: Any]
        }
        return o
    }

    /// Signals a second over the instance's last two heartbeats at least a second apart (the
    /// server keeps the earlier one, so any number of pages polling share one figure).
    private func rate(of b: HeartbeatRecord) -> Double? {
        let previous = rateSamples[b.instance]
        if previous == nil || b.tsNs - previous!.newest.tsNs >= 1_000_000_000 {
            rateSamples[b.instance] = (newest: (b.processed, b.tsNs), older: previous?.newest)
        }
        guard let sample = rateSamples[b.instance], let older = sample.older, sample.newest.tsNs > older.tsNs else { return nil }
        let r = Double(sample.newest.processed - older.processed) / (Double(sample.newest.tsNs - older.tsNs) / 1e9)
        return (max(0, r) * 10).rounded() / 10
    }

    /// The last `minutes` of rollups a minute at a time: throughput, availability and p95
    /// latency with their SLO targets.
    public func consoleHistory(minutes: Int) throws -> Data {
        let store = try openStore()
        let nowS = wallClockNanoseconds() / 1_000_000_000
        let bucket: Int64 = 60
        let from = nowS - Int64(minutes) * bucket + 1
        let points: [[String: Any]] = try store.rollupSeries(since: from, bucketSeconds: bucket).map { b in
            [
                "t": b.startSecond, "passes": b.passes, "failed": b.failed,
                "throughput_per_s": (Double(b.passes) / Double(bucket) * 100).rounded() / 100,
                "availability": b.passes == 0 ? NSNull() : (Double(b.passes - b.failed) / Double(b.passes) * 1e6).rounded() / 1e6 as Any,
                "p95_ms": b.latency.quantile(0.95).map { ($0 / 1000 * 1000).rounded() / 1000 as Any } ?? NSNull(),
            ]
        }
        return try JSONDocument.data([
            "from": from, "to": nowS, "bucket_seconds": bucket, "points": points,
            "targets": ["availability": engine.settings.availabilityTarget, "p95_ms": engine.settings.p95LatencyMs],
        ], .pretty)
    }

    /// The watchdog's latest events, newest first.
    public func consoleWatchdogEvents(limit: Int) throws -> Data {
        let events = try openStore().watchdogEvents(limit: limit)
        return try JSONDocument.data(["events": events.map { e in
            ["ts": iso8601(e.tsNs), "ts_ns": e.tsNs, "instance": e.instance, "stage": e.stage, "action": e.action,
             "reason": e.reason, "by": e.by, "figures": JSONDocument.parse(e.figures) ?? NSNull()]
        }], .pretty)
    }

    /// Releases the quarantined instances `selector` names onto probation, as
    /// `ark watchdog release` does; nil when none matches.
    public func consoleRelease(selector: String, by: String) throws -> Data? {
        guard let p = probe() else { throw ConsoleRefusal.unavailable("Redis is unreachable: the release cannot tell the instance to take work again; retry when /healthz shows redis ok") }
        let actions = try Watchdog.release(selector: selector, by: by, settings: WatchdogSettings(config: config), store: try openStore(), connection: p.connection)
        let released: [[String: Any]] = actions.compactMap {
            guard case .release(let instance, _, _, let until) = $0 else { return nil }
            return ["instance": instance, "probation_until": iso8601(until)]
        }
        return released.isEmpty ? nil : try JSONDocument.data(["released": released], .pretty)
    }

    /// The trading states set on every shard (the global one once) and the unreadable books.
    func tradingJSON(_ risk: [ShardRiskState]) -> [String: Any] {
        var states: [[String: Any]] = []
        var globalSeen = false
        for s in risk {
            for (scope, c) in s.trading.controls.sorted(by: { $0.key.field < $1.key.field }) {
                if scope == .global { if globalSeen { continue }; globalSeen = true }
                var o = Dictionary(uniqueKeysWithValues: c.fields.map { ($0.0, $0.1 as Any) })
                o["shard"] = s.shard.description
                o["breaker"] = c.byBreaker
                states.append(o)
            }
            for (scope, problem) in s.trading.unreadable { states.append(["scope": scope.field, "mode": "HALTED", "reason": "unreadable: " + problem, "shard": s.shard.description]) }
        }
        let unreadable = risk.flatMap { s in s.unreadableBooks.map { ["shard": s.shard.description, "account": $0.account, "problem": $0.problem] } }
        return ["states": states, "unreadable_books": unreadable]
    }

    /// Sets a trading state from the console, as `ark trading` does.
    public func consoleTrading(_ mode: TradingMode, change: TradingChangeRequest, by: String) throws -> Data {
        let url = try RedisURL(parsing: config.redisURL)
        let set: [TradingControl]
        do {
            set = try TradingStateStore.set(mode, scope: change.account.map { .account($0) } ?? .global, reason: change.reason, by: by, layout: config.shardLayout, url: url)
        } catch let e as TradingStateStore.Problem {
            throw ConsoleRefusal.invalid(e.description)
        } catch {
            throw ConsoleRefusal.unavailable("the trading state cannot be set: Redis is unreachable or refused (\(error)); nothing changed")
        }
        lastConsoleState = nil
        logger.notice("trading state set from the console", metadata: ["mode": .string(mode.rawValue), "by": .string(by), "reason": .string(change.reason)])
        return try JSONDocument.data(["changes": set.map { c in Dictionary(uniqueKeysWithValues: c.fields.map { ($0.0, $0.1 as Any) }) }], .pretty)
    }

    /// `{"run": …}`: the newest canary run with its checks, or null when none is recorded.
    public func consoleCanary() throws -> Data {
        let store = try openStore()
        guard let run = try store.canaryRun() else { return try JSONDocument.data(["run": NSNull()], .pretty) }
        var o = run.statusObject(checks: try store.canaryChecks(runID: run.runID))
        o["controller_alive"] = run.isFinished ? NSNull() : run.controllerIsAlive as Any
        return try JSONDocument.data(["run": o], .pretty)
    }

    /// Asks the newest run's controller to promote or abort. The controller acts on it within
    /// a second; the page watches the run's status.
    public func consoleCanaryRequest(_ action: String) throws -> Data {
        let store = try openStore()
        guard let run = try store.canaryRun(), !run.isFinished else { throw ConsoleRefusal.conflict("no canary run is in progress") }
        guard run.controllerIsAlive else {
            throw ConsoleRefusal.conflict("the controller of \(run.runID) (pid \(run.controllerPID)) is gone, so nothing here can act on the request. Fix: run 'ark canary abort' on the host: it rolls the canary back without its controller")
        }
        guard try store.requestCanary(action, runID: run.runID) else { throw ConsoleRefusal.conflict("\(run.runID) ended meanwhile") }
        return try JSONDocument.data(["run_id": run.runID, "requested": action], .pretty)
    }

    /// A recorded pass, as the API's `GET /v1/traces/{id}` gives it.
    public func consoleTrace(_ traceID: String) async throws -> Data? {
        try await openStore().readPass(traceID: traceID).map { try JSONDocument.data($0.traceObject, .pretty) }
    }

    /// A recorded pass's audit proof, as the API's `GET /v1/traces/{id}/proof` gives it.
    public func consoleProof(_ traceID: String) async throws -> [UInt8]? {
        do {
            return try await openStore().readAuditProof(traceID: traceID)?.json
        } catch let e as AuditReader.Problem {
            throw ConsoleRefusal.conflict("the audit log cannot prove \(traceID): \(e.description); run ark verify-audit")
        }
    }

    /// The audit's public key (PEM), which the page checks checkpoints' signatures with:
    /// parsed as an Ed25519 public key and written out again, so a setting that names the
    /// private key (or any other file) never sends its bytes.
    public func auditPublicKeyPEM() -> String? {
        // Only a public key file's key: never one the console would derive by reading the
        // private key file on a page's behalf.
        guard let trust = try? AuditTrust.root(config), trust.source != config.auditKey else { return nil }
        return String(decoding: trust.key.pem, as: UTF8.self)
    }

    /// The newest dead letters with a preview of each payload.
    public func consoleDeadLetters(limit: Int) throws -> Data {
        let (letters, total) = try openStore().recentDeadLetters(limit: limit)
        return try JSONDocument.data(["total": total, "dead_letters": letters.map { d in
            [
                "id": d.deadLetterID, "stream": d.stream, "entry_id": d.entryID, "group": d.group, "consumer": d.consumer,
                "reason": d.reason, "deliveries": d.deliveries, "trace_id": d.traceID ?? NSNull(), "ts": iso8601(d.tsNs),
                "payload_bytes": d.payload.count, "payload_preview": Self.preview(d.payload),
            ] as [String: Any]
        }], .pretty)
    }

    /// The first 240 bytes of a payload as text, invalid UTF-8 shown as U+FFFD: the page
    /// writes it as text, never as markup.
    static func preview(_ payload: [UInt8]) -> String {
        let cut = payload.count > 240
        return String(decoding: payload.prefix(240), as: UTF8.self) + (cut ? "…" : "")
    }
}

/// A console request ARK refuses, with the status it answers.
public enum ConsoleRefusal: Error, CustomStringConvertible {
    case invalid(String)
    case conflict(String)
    case unavailable(String)

    public var description: String {
        switch self {
        case .invalid(let m), .conflict(let m), .unavailable(let m): m
        }
    }
}
