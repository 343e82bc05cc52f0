// The API's way into Kyle's streams: a pool of connections, the backlog bound and replica waits.

import ARKCore
import Synchronization

/// The API's way into Kyle's streams: a few Redis connections, each owned by an actor on its
/// own thread (hiredis blocks), so a request never holds one of the HTTP event loops while
/// Redis answers. A request's signals go out in one pipelined round trip per shard they
/// belong to (by `account`), and with ARK_INTAKE_REPLICAS are confirmed only once WAIT says
/// that many replicas have them.
public final class SignalQueue: Sendable {
    let connections: [QueueConnection]
    private let next = Atomic<Int>(0)
    /// Bumped when a connection fails: every pool member then drops the connections it holds
    /// (to a primary that died, or one a failover demoted), instead of each failing a request
    /// on its own stale socket in turn while producers back off.
    let resets: QueueResets

    /// `backlogBound`: ARK_STREAM_MAXLEN, the unread backlog of a Kyle stream past which
    /// signals are refused (503) instead of queued. `replicas`: nil for 1 on a cluster, 0 on a
    /// single node.
    public init(url: RedisURL, size: Int, backlogBound: Int, layout: ShardLayout = .single,
                replicas: Int? = nil, replicaTimeoutMs: Int = 1_000) {
        let resets = QueueResets()
        self.resets = resets
        connections = (0..<max(1, size)).map {
            QueueConnection(url: url, index: $0, backlogBound: backlogBound, layout: layout, replicas: replicas, replicaTimeoutMs: replicaTimeoutMs, resets: resets)
        }
    }

    private func connection() -> QueueConnection {
        connections[next.add(1, ordering: .relaxed).oldValue % connections.count]
    }

    /// Appends each payload as the `event` of a new entry of its shard's Kyle stream, all or
    /// none per shard (MULTI/EXEC: a Redis out of memory refuses the whole request); returns,
    /// in order, the trace id Kyle gives each signal that names none: `ark-<entry id>` on the
    /// untagged shard; on tagged shards a random one, sent along in the entry's `trace_id`
    /// field, because a promoted replica can issue an entry id again (one lost with the old
    /// primary) and two signals must never share a trace. Refused while a Kyle backlog is over
    /// its bound. A connection error is not retried here: whether EXEC ran is unknown, and only
    /// the client can tell a retry from a duplicate (by trace_id).
    public func enqueue(_ payloads: [[UInt8]]) async throws(EnqueueError) -> [String] {
        try await connection().xadd(payloads, claims: nil).map(\.traceID)
    }

    /// `enqueue`, with the producer's trace ids claimed: a payload whose `claims` entry names a
    /// trace id this shard's intake already holds with another content digest is not queued
    /// (`.conflict`); the same digest is queued again (an idempotent retry: Kenny answers it with
    /// the trace's first outcome). Claims are kept in one hash per UTC day (`<shard>intake:<day>`),
    /// checked against today's and yesterday's, each living 48 h after its last write; the check
    /// and the XADDs are one Lua script, so two requests racing with one trace id cannot both
    /// be queued with different content.
    public func enqueue(_ payloads: [[UInt8]], claims: [TraceClaim?]) async throws(EnqueueError) -> [Enqueued] {
        try await connection().xadd(payloads, claims: claims)
    }

    /// PING on one connection: is the queue reachable now?
    public func ping() async -> RedisError? {
        await connection().ping()
    }

    public func shutdown() async {
        for c in connections { await c.close() }
    }
}

/// A producer's trace id and the digest of the signal's content (`ContentDigest`).
public struct TraceClaim: Sendable, Equatable {
    public var traceID: String
    public var digest: String
    public init(traceID: String, digest: String) {
        self.traceID = traceID
        self.digest = digest
    }
}

/// What became of one payload given to `enqueue(_:claims:)`.
public enum Enqueued: Sendable, Equatable {
    /// Queued; the trace id Kyle gives it when it names none.
    case queued(traceID: String)
    /// Not queued: the intake already holds its trace id with other content.
    case conflict(traceID: String)
    /// Not queued: its shard could not confirm it (a primary lost, no replica to confirm);
    /// the other shards' signals of the request were queued. Send it again.
    case unavailable(traceID: String, EnqueueError)

    public var traceID: String {
        switch self {
        case .queued(let t), .conflict(let t), .unavailable(let t, _): t
        }
    }
}

/// Why signals were not confirmed.
public enum EnqueueError: Error, Sendable, Equatable {
    /// Nothing of the request (of the shard that failed) was queued, or whether it was is unknown.
    case redis(RedisError)
    /// Kyle's unread backlog is over ARK_STREAM_MAXLEN: ARK is behind (a stage stopped or slow).
    case backlogFull(backlog: Int, bound: Int)
    /// Written to the primary, but fewer replicas than ARK_INTAKE_REPLICAS have them: a
    /// failover now could lose them, so they are not confirmed.
    case notReplicated(replicas: Int, wanted: Int, shard: String)
}

/// The pool's count of connection failures (see `SignalQueue.resets`).
final class QueueResets: Sendable {
    let count = Atomic<Int>(0)
}

actor QueueConnection {
    private nonisolated let executor: ThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private let url: RedisURL
    private let layout: ShardLayout
    /// One connection per shard (on a cluster, each to its shard's primary), made when first needed.
    private var redis: [Shard: RedisConnection] = [:]
    private let backlogBound: Int
    private let replicas: Int?
    private let replicaTimeoutMs: Int
    /// Each Kyle stream's backlog as last measured, and when: measured at most every 100 ms,
    /// so a burst of requests costs Redis one XINFO per connection per 100 ms, not one per request.
    private var backlog: [Shard: (entries: Int, measuredNs: Int64)] = [:]
    static let backlogMeasureIntervalNs: Int64 = 100_000_000

    private let resets: QueueResets
    private var resetsSeen = 0

    init(url: RedisURL, index: Int, backlogBound: Int, layout: ShardLayout, replicas: Int?, replicaTimeoutMs: Int, resets: QueueResets) {
        self.resets = resets
        executor = ThreadExecutor(name: "ark-api-redis-\(index)")
        self.url = url
        self.layout = layout
        self.backlogBound = backlogBound
        self.replicas = replicas
        self.replicaTimeoutMs = replicaTimeoutMs
    }

    private func connection(_ shard: Shard) throws(RedisError) -> RedisConnection {
        let failures = resets.count.load(ordering: .relaxed)
        if failures != resetsSeen {
            resetsSeen = failures
            for c in redis.values { c.close() }
            redis = [:]
        }
        let c = redis[shard] ?? RedisConnection(url: url, commandTimeout: .seconds(5), slotKey: shard.tagged ? shard.slotKey : nil)
        redis[shard] = c
        if !c.isConnected { try c.connect(timeout: .seconds(2)) }
        return c
    }

    /// Each shard's signals on their own: a shard that cannot take them (its primary lost, too
    /// few replicas, its backlog full) fails only its own (`.unavailable`); when every shard
    /// of the request failed, its first error is thrown. Without `claims`, any failure is thrown.
    func xadd(_ payloads: [[UInt8]], claims: [TraceClaim?]?) throws(EnqueueError) -> [Enqueued] {
        var out = [Enqueued](repeating: .queued(traceID: ""), count: payloads.count)
        var firstError: EnqueueError?
        var queuedAny = false
        for (shard, indices) in layout.route(payloads) {
            do {
                let got = try xadd(indices.map { payloads[$0] }, claims: claims.map { c in indices.map { c[$0] } }, shard: shard)
                for (i, r) in zip(indices, got) { out[i] = r }
                queuedAny = true
            } catch {
                guard claims != nil else { throw error }
                firstError = firstError ?? error
                for i in indices { out[i] = .unavailable(traceID: claims?[i]?.traceID ?? "", error) }
            }
        }
        if let firstError, !queuedAny { throw firstError }
        return out
    }

    /// Checks each claimed trace id against the intake's hashes of today and yesterday
    /// (KEYS[2], KEYS[3]), queues what does not conflict and records the new claims in today's.
    /// ARGV: count, TTL, then per payload: payload, claimed trace id (or ""), digest, the trace
    /// id to send along (tagged shards, or ""). Returns per payload its entry id, or 0.
    static let claimAndAdd = """
        local n = tonumber(ARGV[1])
        local out = {}
        for i = 0, n - 1 do
          local b = 3 + i * 4
          local trace, digest, assigned = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
          local held = false
          if trace ~= '' then
            held = redis.call('HGET', KEYS[2], trace)
            if not held then held = redis.call('HGET', KEYS[3], trace) end
          end
          if held and held ~= digest then
            out[#out + 1] = 0
          else
            if assigned ~= '' then
              out[#out + 1] = redis.call('XADD', KEYS[1], '*', 'event', ARGV[b], 'trace_id', assigned)
            else
              out[#out + 1] = redis.call('XADD', KEYS[1], '*', 'event', ARGV[b])
            end
            if trace ~= '' and not held then redis.call('HSET', KEYS[2], trace, digest) end
          end
        end
        if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
        return out
        """
    static let claimTTLSeconds = 172_800

    private func xadd(_ payloads: [[UInt8]], claims: [TraceClaim?]?, shard: Shard) throws(EnqueueError) -> [Enqueued] {
        let stream = shard.stream(.kyle)
        do {
            let redis = try connection(shard)
            if redis.isCluster && !shard.tagged {
                throw RedisError.server("REDIS_URL names a Redis Cluster and ARK_SHARDS is not set: Kyle's streams need their shard's hash tag. Set ARK_SHARDS for every ARK process")
            }
            let now = wallClockNanoseconds()
            var measured = backlog[shard] ?? (0, 0)
            if now - measured.measuredNs >= Self.backlogMeasureIntervalNs || measured.entries > backlogBound {
                measured = (try StreamBus.backlog(of: stream, group: Stage.kyle.group, on: redis), now)
            }
            backlog[shard] = measured
            if measured.entries > backlogBound { throw EnqueueError.backlogFull(backlog: measured.entries, bound: backlogBound) }
            let assigned = shard.tagged ? payloads.map { _ in Self.randomTraceID() } : []
            var commands: [[RedisArg]] = []
            let claimed = claims?.contains { $0 != nil } == true
            if claimed, let claims {
                let day = String(iso8601(now).prefix(10)), yesterday = String(iso8601(now - 86_400_000_000_000).prefix(10))
                var eval: [RedisArg] = ["EVAL", .text(Self.claimAndAdd), "3", .text(stream), .text(shard.intake(day: day)), .text(shard.intake(day: yesterday)),
                                        .int(payloads.count), .int(Self.claimTTLSeconds)]
                for (i, p) in payloads.enumerated() {
                    eval += [.bytes(p), .text(claims[i]?.traceID ?? ""), .text(claims[i]?.digest ?? ""), .text(shard.tagged ? assigned[i] : "")]
                }
                commands.append(eval)
            } else {
                commands.append(["MULTI"])
                for (i, p) in payloads.enumerated() {
                    var add: [RedisArg] = ["XADD", .text(stream), "*", "event", .bytes(p)]
                    if shard.tagged { add += ["trace_id", .text(assigned[i])] }
                    commands.append(add)
                }
                commands.append(["EXEC"])
            }
            let wanted = replicas ?? (redis.isCluster ? 1 : 0)
            if wanted > 0 { commands.append(["WAIT", .int(wanted), .int(replicaTimeoutMs)]) }
            let replies = try redis.pipeline(commands)
            let ids: [RedisValue]
            if claimed {
                if case .error(let e) = replies[0] { throw RedisError.server(e) }
                guard case .array(let got) = replies[0], got.count == payloads.count else { throw RedisError.unexpectedReply("the intake script's reply") }
                ids = got
            } else {
                let exec = replies[payloads.count + 1]
                guard try StreamBus.checkTransaction(Array(replies[..<(payloads.count + 2)])), case .array(let got) = exec, got.count == payloads.count else {
                    throw RedisError.unexpectedReply("EXEC of the XADDs")
                }
                ids = got
            }
            // The script answers 0 for a payload it did not queue, an entry id for one it did.
            func isEntry(_ v: RedisValue) -> Bool { if case .integer = v { false } else { v.string != nil } }
            let queued = ids.reduce(0) { $0 + (isEntry($1) ? 1 : 0) }
            backlog[shard]?.entries += queued
            if wanted > 0 && queued > 0 {
                let acked = replies.last?.integer ?? 0
                if acked < wanted { throw EnqueueError.notReplicated(replicas: Int(acked), wanted: wanted, shard: shard.description) }
            }
            return ids.enumerated().map { i, id in
                guard isEntry(id), let entry = id.string else { return .conflict(traceID: claims?[i]?.traceID ?? "") }
                return .queued(traceID: shard.tagged ? assigned[i] : SignalValidator.derivedTraceID(entryID: entry))
            }
        } catch let e as EnqueueError {
            throw e
        } catch let e as RedisError {
            if e.isConnectionError {
                redis[shard]?.close()
                redis[shard] = nil
                resets.count.add(1, ordering: .relaxed)
            }
            throw .redis(e)
        } catch {
            throw .redis(.unexpectedReply("\(error)"))
        }
    }

    static func randomTraceID() -> String {
        var g = SystemRandomNumberGenerator()
        let hex = [g.next(), g.next()].map { v -> String in
            let s = String(v as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return "ark-" + hex.joined()
    }

    func ping() -> RedisError? {
        do {
            _ = try connection(layout.shards[0]).command(["PING"])
            return nil
        } catch {
            return error
        }
    }

    func close() {
        for c in redis.values { c.close() }
        executor.shutdown()
    }
}
