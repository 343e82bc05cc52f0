// The canary's unfinished entries handed to the baseline's streams.

import ARKBus
import ARKCore

/// Hands the canary's unfinished work to the baseline: every entry of a canary stage stream
/// that its group has not acknowledged (pending on a canary consumer, or not yet delivered)
/// is added to the same stage's baseline stream, fields and all, and acknowledged on the
/// canary stream in the same MULTI/EXEC. The baseline then finishes those traces, so a
/// rollback loses none; one a canary agent had half-done before it died is redone, which
/// Kenny's and Aletheia's idempotency by trace id make harmless.
/// Each shard's canary streams go back to the same shard's baseline streams (one slot, so one
/// transaction, on a connection to the shard's own node on a cluster).
public struct StreamHandback {
    let connection: RedisConnection
    let consumer: String
    let layout: ShardLayout

    public init(connection: RedisConnection, consumer: String = "canary-handback", layout: ShardLayout = .single) {
        self.connection = connection
        self.consumer = consumer
        self.layout = layout
    }

    /// A connection for `shard`'s transactions: this one, unless it is a tagged shard on a
    /// cluster, whose keys live on their own node.
    func connection(for shard: Shard) throws(RedisError) -> RedisConnection {
        guard shard.tagged, connection.isCluster else { return connection }
        let c = RedisConnection(url: connection.url, commandTimeout: connection.commandTimeout, slotKey: shard.slotKey)
        try c.connect()
        return c
    }

    /// Entries of each canary stage stream not yet acknowledged by its group, over every shard.
    public func unfinished() throws(RedisError) -> [Stage: Int] {
        var out: [Stage: Int] = [:]
        for shard in layout.shards {
            for stage in Stage.allCases {
                let stream = shard.stream(stage, on: .canary)
                let pending = try StreamBus(connection: connection, group: stage.group, consumer: consumer).pendingCount(stream)
                // Entries after the group's last delivered id: the group's lag (Redis ≥ 7).
                let lag = try StreamBus.groups(of: stream, on: connection).first { $0.name == stage.group }?.lag ?? 0
                if pending + lag > 0 { out[stage, default: 0] += pending + lag }
            }
        }
        return out
    }

    /// Moves every unfinished canary entry to the baseline; returns how many, per stage.
    @discardableResult
    public func run() throws(RedisError) -> [Stage: Int] {
        var moved: [Stage: Int] = [:]
        for shard in layout.shards {
            let connection = try connection(for: shard)
            defer { if connection !== self.connection { connection.close() } }
            for (stage, n) in try run(shard, on: connection) { moved[stage, default: 0] += n }
        }
        return moved
    }

    private func run(_ shard: Shard, on connection: RedisConnection) throws(RedisError) -> [Stage: Int] {
        var moved: [Stage: Int] = [:]
        for stage in Stage.allCases {
            let stream = shard.stream(stage, on: .canary)
            let bus = StreamBus(connection: connection, group: stage.group, consumer: consumer, shard: shard)
            try bus.ensureGroups([stream])
            var quietRounds = 0
            while quietRounds < 2 {
                var entries = try bus.claim(stream, minIdleMs: 0, count: 500)
                entries += try bus.read([stream], count: 500, blockMs: nil)
                entries += try bus.read([stream], count: 500, blockMs: nil, history: true)
                var seen: Set<String> = []
                // By event: an envelope's events share its id, and each is handed back alone.
                entries = entries.filter { seen.insert($0.key).inserted }
                if entries.isEmpty { quietRounds += 1; continue }
                quietRounds = 0
                var adds: [[RedisArg]] = []
                var dead: [DeadLetter] = []
                for e in entries {
                    if let payload = e.payload {
                        adds.append(bus.addCommand(stream: shard.stream(stage), payload: payload,
                                                   fields: e.otherFields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
                    } else {
                        dead.append(DeadLetter(entry: e, reason: "entry was removed from \(stream) before the canary processed it"))
                    }
                }
                try bus.commit(outputs: [], deadLetters: dead, acks: entries, extra: adds)
                moved[stage, default: 0] += entries.count
            }
            _ = try connection.command(["XGROUP", "DELCONSUMER", .text(stream), .text(stage.group), .text(consumer)])
        }
        return moved
    }
}
