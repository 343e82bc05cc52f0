// The health checks behind `/healthz`, `/readyz` and `ark health`.

import ARKCore
import ARKRisk
import ARKSLO
import ARKState
import ARKStoreWriter

public enum HealthStatus: String, Sendable, Comparable {
    case healthy, degraded, unhealthy

    var rank: Int {
        switch self {
        case .healthy: 0
        case .degraded: 1
        case .unhealthy: 2
        }
    }

    public static func < (a: HealthStatus, b: HealthStatus) -> Bool { a.rank < b.rank }

    /// `ark health`'s exit code: 0 healthy, 1 unhealthy, 2 degraded.
    public var exitCode: Int32 {
        switch self {
        case .healthy: 0
        case .unhealthy: 1
        case .degraded: 2
        }
    }
}

public struct HealthCheck: Sendable, Equatable {
    public var name: String
    public var status: HealthStatus
    public var detail: String
}

public struct HealthReport: Sendable, Equatable {
    public var status: HealthStatus
    public var checks: [HealthCheck]
    public var generatedNs: Int64
}

/// What the health checks look at, gathered by `MonitoringBackend`.
public struct HealthInputs: Sendable {
    /// nil when Redis answered PING.
    public var redisProblem: String?
    /// Shards whose node does not answer (a cluster with a primary down and no replica to
    /// take over), by name, with why: their signals wait or are refused; the others flow.
    public var shardProblems: [(shard: String, problem: String)] = []
    /// nil when the state store answered; `journalMode` is what it reported.
    public var storeProblem: String?
    public var journalMode: String?
    /// nil when a writer got the write lock in time; otherwise why not.
    public var storeWriteProblem: String?
    /// The file system holding the store, when it could be asked.
    public var storeSpace: FileSystemSpace?
    public var storeDirectory: String
    /// nil when they could not be read (Redis down).
    public var heartbeats: [HeartbeatRecord]?
    public var graveyardProblem: String?
    /// Trading states and unreadable books per shard; nil when Redis could not be asked.
    public var risk: [ShardRiskState]?
    /// The books reconciled with the audit (`LedgerWatch`); nil when not checked.
    public var ledger: HealthCheck?
    /// The witnesses' cosignatures in time (`WitnessWait`); nil without witnesses.
    public var witness: HealthCheck?
    public var slo: SLOReport?
    public var nowNs: Int64
    /// A heartbeat older than this is stale (the instance is hung, stopped or cut off).
    public var staleAfterSeconds: Double

    public init(redisProblem: String?, storeProblem: String?, journalMode: String?, storeWriteProblem: String? = nil, storeSpace: FileSystemSpace? = nil, storeDirectory: String = "",
                heartbeats: [HeartbeatRecord]?, graveyardProblem: String?, slo: SLOReport?, nowNs: Int64, staleAfterSeconds: Double = HeartbeatRecord.staleAfterSeconds) {
        self.redisProblem = redisProblem
        self.storeProblem = storeProblem
        self.journalMode = journalMode
        self.storeWriteProblem = storeWriteProblem
        self.storeSpace = storeSpace
        self.storeDirectory = storeDirectory
        self.heartbeats = heartbeats
        self.graveyardProblem = graveyardProblem
        self.slo = slo
        self.nowNs = nowNs
        self.staleAfterSeconds = staleAfterSeconds
    }
}

/// Below this much free space the store's file system counts as full: SQLite cannot grow
/// the WAL for long, and a full disk fails every write of Aletheia's.
public let storeFullBelowBytes: Int64 = 4 << 20
/// Below this share of the file system free, health is degraded: time to make room.
public let storeLowFraction = 0.05

/// The trading states and books: unhealthy when a book cannot be read (Kenny refuses its
/// fills) or a breaker halted trading (an operator must look); degraded when an operator
/// halted trading or set it to reduce only; healthy when everything is ACTIVE.
func tradingCheck(_ risk: [ShardRiskState], tagged: Bool) -> HealthCheck {
    var unhealthy: [String] = [], degraded: [String] = []
    var globalSeen = false
    for s in risk {
        let on = tagged ? " on shard \(s.shard)" : ""
        for (account, problem) in s.unreadableBooks {
            unhealthy.append("the book of account \(account)\(on) is unreadable (\(problem)): its fills are refused (RUNBOOK: book unreadable)")
        }
        for (scope, problem) in s.trading.unreadable.sorted(by: { $0.key.field < $1.key.field }) {
            unhealthy.append("\(scope)\(on): trading state \(problem), read as HALTED")
        }
        for (scope, c) in s.trading.controls.sorted(by: { $0.key.field < $1.key.field }) where c.mode != .active {
            if scope == .global {
                if globalSeen { continue }
                globalSeen = true
            }
            let text = "\(scope)\(scope == .global ? "" : on) is \(c.mode.rawValue) by \(c.by) since \(iso8601(c.atNs)): \(c.reason)"
            if c.byBreaker && c.mode == .halted { unhealthy.append(text) } else { degraded.append(text) }
        }
    }
    if !unhealthy.isEmpty { return HealthCheck(name: "trading", status: .unhealthy, detail: (unhealthy + degraded).joined(separator: "; ")) }
    if !degraded.isEmpty { return HealthCheck(name: "trading", status: .degraded, detail: degraded.joined(separator: "; ")) }
    return HealthCheck(name: "trading", status: .healthy, detail: "ACTIVE: every account may trade")
}

/// Judges health (pure). Unhealthy: Redis or the store unreachable, the store not in WAL
/// mode, locked by another writer or on a full disk, Graveyard drift, or a stage with no
/// live, unquarantined instance (its entries wait in Redis, nothing is lost, but nothing
/// moves). Degraded: an SLO violated, the store's disk under 5 % free, a stage running on
/// fewer instances than it had (some stale or quarantined), or a stage holding back because
/// its output's backlog is over its bound.
public func evaluateHealth(_ input: HealthInputs) -> HealthReport {
    var checks: [HealthCheck] = []
    checks.append(input.redisProblem.map { HealthCheck(name: "redis", status: .unhealthy, detail: "unreachable: \($0)") }
                  ?? HealthCheck(name: "redis", status: .healthy, detail: "PING answered"))
    for (shard, problem) in input.shardProblems {
        checks.append(HealthCheck(name: "shard_\(shard)", status: .unhealthy,
                                  detail: "shard \(shard) is down: \(problem); its accounts' signals are refused or wait, the other shards keep flowing"))
    }
    if let problem = input.storeProblem {
        checks.append(HealthCheck(name: "state_store", status: .unhealthy, detail: problem))
    } else if input.journalMode?.lowercased() != "wal" {
        checks.append(HealthCheck(name: "state_store", status: .unhealthy, detail: "journal mode is \(input.journalMode ?? "unknown"), not WAL"))
    } else if let problem = input.storeWriteProblem {
        checks.append(HealthCheck(name: "state_store", status: .unhealthy, detail: problem))
    } else if let space = input.storeSpace, space.freeBytes < storeFullBelowBytes {
        checks.append(HealthCheck(name: "state_store", status: .unhealthy,
                                  detail: "disk full: \(FileSystemSpace.describe(space.freeBytes)) free on the file system of \(input.storeDirectory); Aletheia cannot record outcomes (they wait in Redis)"))
    } else if let space = input.storeSpace, space.totalBytes > 0, Double(space.freeBytes) < storeLowFraction * Double(space.totalBytes) {
        checks.append(HealthCheck(name: "state_store", status: .degraded,
                                  detail: "disk low: \(FileSystemSpace.describe(space.freeBytes)) of \(FileSystemSpace.describe(space.totalBytes)) free on the file system of \(input.storeDirectory)"))
    } else {
        let free = input.storeSpace.map { ", \(FileSystemSpace.describe($0.freeBytes)) free" } ?? ""
        checks.append(HealthCheck(name: "state_store", status: .healthy, detail: "answering, WAL mode, writable\(free)"))
    }
    for stage in Stage.allCases {
        let name = "stage:\(stage.rawValue)"
        guard let beats = input.heartbeats else {
            checks.append(HealthCheck(name: name, status: .unhealthy, detail: "heartbeats unknown: Redis unreachable"))
            continue
        }
        let mine = beats.filter { $0.stage == stage.rawValue }
        let fresh = mine.filter { $0.ageSeconds(nowNs: input.nowNs) <= input.staleAfterSeconds }
        let live = mine.filter { $0.isLive(nowNs: input.nowNs, staleAfterSeconds: input.staleAfterSeconds) }
        // Instances silent for over a minute are gone (restarted under a new pid), not failing.
        let recentlyLost = mine.filter { let a = $0.ageSeconds(nowNs: input.nowNs); return a > input.staleAfterSeconds && a <= 60 }
        let quarantined = fresh.count - live.count
        var detail = "\(live.count) live instance\(live.count == 1 ? "" : "s")"
        if quarantined > 0 { detail += ", \(quarantined) quarantined" }
        if !recentlyLost.isEmpty { detail += ", \(recentlyLost.count) silent: \(recentlyLost.map(\.instance).joined(separator: ", "))" }
        let heldBack = live.filter { $0.backpressure != nil }
        if !heldBack.isEmpty {
            detail += ", \(heldBack.count) holding back: the backlog of \(Set(heldBack.compactMap(\.backpressure)).sorted().joined(separator: ", ")) is over ARK_STREAM_MAXLEN (a later stage is stopped or slow; nothing is dropped)"
        }
        if live.isEmpty {
            detail = mine.isEmpty ? "no instance is sending heartbeats; its entries wait in Redis until one starts" : "no healthy instance (\(detail)); its entries wait in Redis until one returns"
            checks.append(HealthCheck(name: name, status: .unhealthy, detail: detail))
        } else {
            checks.append(HealthCheck(name: name, status: quarantined > 0 || !recentlyLost.isEmpty || !heldBack.isEmpty ? .degraded : .healthy, detail: detail))
        }
    }
    checks.append(input.graveyardProblem.map { HealthCheck(name: "graveyard", status: .unhealthy, detail: "\($0); HRM denies every proposal") }
                  ?? HealthCheck(name: "graveyard", status: .healthy, detail: "rule file matches its pinned SHA-256"))
    if let risk = input.risk { checks.append(tradingCheck(risk, tagged: risk.contains { $0.shard.tagged })) }
    if let ledger = input.ledger { checks.append(ledger) }
    if let witness = input.witness { checks.append(witness) }
    if let slo = input.slo {
        let nonDrift = slo.violations.filter { !$0.hasPrefix("ethics_drift") }
        if nonDrift.isEmpty {
            let noData = slo.slos.filter { $0.state == .noData }.map(\.name)
            checks.append(HealthCheck(name: "slo", status: .healthy, detail: noData.isEmpty ? "all SLOs met" : "met; no data yet for \(noData.joined(separator: ", "))"))
        } else {
            checks.append(HealthCheck(name: "slo", status: .degraded, detail: nonDrift.joined(separator: "; ")))
        }
    } else {
        checks.append(HealthCheck(name: "slo", status: .degraded, detail: "SLOs could not be computed"))
    }
    let status = checks.map(\.status).max() ?? .healthy
    return HealthReport(status: status, checks: checks, generatedNs: input.nowNs)
}
