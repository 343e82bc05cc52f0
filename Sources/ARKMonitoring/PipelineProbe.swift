// The pipeline as Redis reports it: groups, backlogs and heartbeats.

import ARKBus
import ARKCore
import ARKRisk
import ARKState
import ARKStoreWriter
import Foundation

/// A stage's consumer group on one shard's input stream, as Redis reports it.
public struct GroupState: Sendable, Equatable {
    public var stage: Stage
    public var shard: Shard = .untagged
    /// Delivered and not acknowledged.
    public var pending: Int
    /// Not yet delivered to the group (nil when Redis cannot tell, e.g. after a trim).
    public var lag: Int?
    public var lastDeliveredID: String

    /// Its Prometheus labels: the stage, and the shard when there are tagged shards.
    public var labels: String { "stage=\"\(stage.rawValue)\"" + (shard.tagged ? ",shard=\"\(shard)\"" : "") }
}

/// Read-only questions to Redis about the pipeline: group states, heartbeats, and how many
/// signals are still in flight past the pass timeout. Blocking (hiredis): call it from a
/// thread-bound actor.
public struct PipelineProbe {
    public let connection: RedisConnection
    public let layout: ShardLayout
    /// At most this many overdue entries are counted per stream (a backlog that large is
    /// failing its SLO either way).
    public var overdueCap = 10_000

    public init(connection: RedisConnection, layout: ShardLayout = .single) {
        self.connection = connection
        self.layout = layout
    }

    public func ping() throws(RedisError) {
        let reply = try connection.command(["PING"])
        if case .error(let e) = reply { throw .server(e) }
    }

    /// Every stage's group on its input stream of every shard that answers; a stream or group
    /// not created yet reads as empty. A shard that does not answer is left out (see
    /// `shardProblems`) unless it is the only one.
    public func groups() throws(RedisError) -> [GroupState] {
        var out: [GroupState] = []
        for shard in layout.shards {
            do {
                out += try groups(of: shard)
            } catch {
                if layout.shards.count == 1 { throw error }
            }
        }
        return out
    }

    func groups(of shard: Shard) throws(RedisError) -> [GroupState] {
        var out: [GroupState] = []
        for stage in Stage.allCases {
            var state = GroupState(stage: stage, shard: shard, pending: 0, lag: 0, lastDeliveredID: "0-0")
            if let g = try StreamBus.groups(of: shard.stream(stage), on: connection).first(where: { $0.name == stage.group }) {
                state.pending = g.pending
                state.lag = g.lag
                state.lastDeliveredID = g.lastDeliveredID
            }
            out.append(state)
        }
        return out
    }

    /// The shards whose node does not answer a read of their Kyle stream, with why (only with
    /// several shards: one shard down is Redis down).
    public func shardProblems() -> [(shard: String, problem: String)] {
        guard layout.shards.count > 1 else { return [] }
        var out: [(shard: String, problem: String)] = []
        for shard in layout.shards {
            do {
                let reply = try connection.command(["XLEN", .text(shard.stream(.kyle))])
                if case .error(let e) = reply { out.append((shard.description, e)) }
            } catch {
                out.append((shard.description, error.description))
            }
        }
        return out
    }

    /// Signals whose entry in some stage's input stream is older than `olderThanMs` and not
    /// yet acknowledged by that stage: pending on a consumer, or not delivered at all. An
    /// envelope counts its events (`Envelope`), all of them while it is unacknowledged.
    public func overdueInFlight(groups: [GroupState], olderThanMs: Double, nowNs: Int64) throws(RedisError) -> Int {
        let cutoff = String(nowNs / 1_000_000 - Int64(olderThanMs))
        var total = 0
        for g in groups {
            let stream = RedisArg.text(g.shard.stream(g.stage))
            if g.pending > 0 {
                let pending = try connection.command(["XPENDING", stream, .text(g.stage.group), "-", .text(cutoff), .int(overdueCap)])
                let ids = (pending.array ?? []).compactMap { $0.array?.first?.string }
                if !ids.isEmpty {
                    // Their fields, to count their events: one round trip for all of them.
                    let entries = try connection.pipeline(ids.map { ["XRANGE", stream, .text($0), .text($0)] })
                    for entry in entries { total += entry.array?.first.map(Self.events(in:)) ?? 1 }
                }
            }
            if (g.lag ?? 1) > 0 {
                let undelivered = try connection.command(["XRANGE", stream, .text("(" + g.lastDeliveredID), .text(cutoff), "COUNT", .int(overdueCap)])
                for entry in undelivered.array ?? [] { total += Self.events(in: entry) }
            }
        }
        return total
    }

    /// The events an entry of an XRANGE reply carries: those of its `events` field, else one.
    static func events(in entry: RedisValue) -> Int {
        guard let fields = entry.array?.last?.array, fields.count == 2, fields[0].string == Envelope.field, case .bulk(let bytes) = fields[1] else { return 1 }
        return bytes.reduce(1) { $0 + ($1 == Envelope.separator ? 1 : 0) }
    }

    /// Each shard's trading states (`global` appears in every shard) and the accounts whose
    /// book cannot be read, with why; a shard that does not answer is left out.
    public func riskStates() throws(RedisError) -> [ShardRiskState] {
        var out: [ShardRiskState] = []
        for shard in layout.shards {
            do {
                let trading = try TradingStateStore.read(connection, shard: shard)
                var unreadable: [(account: String, problem: String)] = []
                for (account, read) in PortfolioHash.books(try connection.hashEntries(shard.portfolio)).sorted(by: { $0.key < $1.key }) {
                    if case .failure(let p) = read { unreadable.append((account, p.description)) }
                }
                out.append(ShardRiskState(shard: shard, trading: trading, unreadableBooks: unreadable))
            } catch {
                if layout.shards.count == 1 { throw error }
            }
        }
        return out
    }

    /// Every instance's last heartbeat, in pipeline order.
    public func heartbeats() throws(RedisError) -> [HeartbeatRecord] {
        let out: [(Int, HeartbeatRecord)] = try ControlPlane(connection).heartbeats().compactMap { beat in
            Stage(name: beat.stage).map { ($0.order, beat) }
        }
        return out.sorted { ($0.0, $0.1.instance) < ($1.0, $1.1.instance) }.map(\.1)
    }

}

/// What health, metrics, the console and `ark status` say of one shard's risk engine.
public struct ShardRiskState: Sendable {
    public var shard: Shard
    public var trading: TradingStates
    public var unreadableBooks: [(account: String, problem: String)]
}
