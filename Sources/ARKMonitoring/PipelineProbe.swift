import ARKBus
import ARKCore
import ARKState
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
            var state = GroupState(stage: stage, pending: 0, lag: 0, lastDeliveredID: "0-0")
            if let g = try StreamBus.groups(of: stage.inputStream, on: connection).first(where: { $0.name == stage.group }) {
                state.pending = g.pending
                state.lag = g.lag
                state.lastDeliveredID = g.lastDeliveredID
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

    /// Every instance's last heartbeat, in pipeline order.
    public func heartbeats() throws(RedisError) -> [HeartbeatRecord] {
        let out: [(Int, HeartbeatRecord)] = try connection.hashEntries(Streams.heartbeats).compactMap {
            guard let beat = HeartbeatRecord(json: $0.value), let stage = Stage(name: beat.stage) else { return nil }
            return (stage.order, beat)
        }
        return out.sorted { ($0.0, $0.1.instance) < ($1.0, $1.1.instance) }.map(\.1)
    }

}
