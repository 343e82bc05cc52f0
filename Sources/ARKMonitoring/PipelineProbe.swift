import ARKBus
import ARKCore
import Foundation

/// A stage's consumer group on its input stream, as Redis reports it.
public struct GroupState: Sendable, Equatable {
    public var stage: Stage
    /// Delivered and not acknowledged.
    public var pending: Int
    /// Not yet delivered to the group (nil when Redis cannot tell, e.g. after a trim).
    public var lag: Int?
    public var lastDeliveredID: String
}

/// An instance's last heartbeat, as published in `ark:heartbeats`.
public struct LiveHeartbeat: Sendable, Equatable {
    public var instance: String
    public var stage: Stage
    public var host: String
    public var pid: Int
    public var processed: Int
    public var failed: Int
    public var pending: Int
    public var p50Ms: Double
    public var p95Ms: Double
    public var tsNs: Int64
    public var quarantined: Bool

    public init(instance: String, stage: Stage, host: String, pid: Int, processed: Int, failed: Int, pending: Int, p50Ms: Double, p95Ms: Double, tsNs: Int64, quarantined: Bool) {
        self.instance = instance
        self.stage = stage
        self.host = host
        self.pid = pid
        self.processed = processed
        self.failed = failed
        self.pending = pending
        self.p50Ms = p50Ms
        self.p95Ms = p95Ms
        self.tsNs = tsNs
        self.quarantined = quarantined
    }

    public func ageSeconds(nowNs: Int64) -> Double { Double(nowNs - tsNs) / 1e9 }
}

/// Read-only questions to Redis about the pipeline: group states, heartbeats, and how many
/// signals are still in flight past the pass timeout. Blocking (hiredis): call it from a
/// thread-bound actor.
public struct PipelineProbe {
    public let connection: RedisConnection
    /// At most this many overdue entries are counted per stream (a backlog that large is
    /// failing its SLO either way).
    public var overdueCap = 10_000

    public init(connection: RedisConnection) {
        self.connection = connection
    }

    public func ping() throws(RedisError) {
        let reply = try connection.command(["PING"])
        if case .error(let e) = reply { throw .server(e) }
    }

    /// Every stage's group on its input stream; a stream or group not created yet reads as empty.
    public func groups() throws(RedisError) -> [GroupState] {
        var out: [GroupState] = []
        for stage in Stage.allCases {
            let reply = try connection.command(["XINFO", "GROUPS", .text(stage.inputStream)])
            var state = GroupState(stage: stage, pending: 0, lag: 0, lastDeliveredID: "0-0")
            if let groups = reply.array {
                for g in groups {
                    let fields = Self.fields(g)
                    guard fields["name"]?.string == stage.group else { continue }
                    state.pending = Int(fields["pending"]?.integer ?? 0)
                    state.lag = fields["lag"]?.integer.map(Int.init)
                    state.lastDeliveredID = fields["last-delivered-id"]?.string ?? "0-0"
                }
            }
            out.append(state)
        }
        return out
    }

    /// Signals whose entry in some stage's input stream is older than `olderThanMs` and not
    /// yet acknowledged by that stage: pending on a consumer, or not delivered at all.
    public func overdueInFlight(groups: [GroupState], olderThanMs: Double, nowNs: Int64) throws(RedisError) -> Int {
        let cutoff = String(nowNs / 1_000_000 - Int64(olderThanMs))
        var total = 0
        for g in groups {
            let stream = RedisArg.text(g.stage.inputStream)
            if g.pending > 0 {
                let pending = try connection.command(["XPENDING", stream, .text(g.stage.group), "-", .text(cutoff), .int(overdueCap)])
                total += pending.array?.count ?? 0
            }
            if (g.lag ?? 1) > 0 {
                let undelivered = try connection.command(["XRANGE", stream, .text("(" + g.lastDeliveredID), .text(cutoff), "COUNT", .int(overdueCap)])
                total += undelivered.array?.count ?? 0
            }
        }
        return total
    }

    /// Every instance's last heartbeat.
    public func heartbeats() throws(RedisError) -> [LiveHeartbeat] {
        let reply = try connection.command(["HGETALL", .text(Streams.heartbeats)])
        guard let items = reply.array else { return [] }
        var out: [LiveHeartbeat] = []
        var i = 0
        while i + 1 < items.count {
            defer { i += 2 }
            guard case .bulk(let bytes) = items[i + 1], let beat = Self.heartbeat(bytes) else { continue }
            out.append(beat)
        }
        return out.sorted { ($0.stage.order, $0.instance) < ($1.stage.order, $1.instance) }
    }

    static func heartbeat(_ bytes: [UInt8]) -> LiveHeartbeat? {
        guard let o = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let stageName = o["stage"] as? String, let stage = Stage(name: stageName) else { return nil }
        func int(_ k: String) -> Int { (o[k] as? NSNumber)?.intValue ?? 0 }
        func double(_ k: String) -> Double { (o[k] as? NSNumber)?.doubleValue ?? 0 }
        return LiveHeartbeat(instance: o["instance"] as? String ?? "", stage: stage, host: o["host"] as? String ?? "",
                             pid: int("pid"), processed: int("processed"), failed: int("failed"), pending: int("pending"),
                             p50Ms: double("p50_ms"), p95Ms: double("p95_ms"), tsNs: (o["ts_ns"] as? NSNumber)?.int64Value ?? 0,
                             quarantined: (o["quarantined"] as? Bool) ?? false)
    }

    /// XINFO replies are flat field/value arrays (RESP2).
    static func fields(_ value: RedisValue) -> [String: RedisValue] {
        guard let items = value.array else { return [:] }
        var out: [String: RedisValue] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string { out[k] = items[i + 1] }
            i += 2
        }
        return out
    }
}
