import ARKBus
import ARKCore
import Synchronization

/// The API's way into `ark:kyle`: a few Redis connections, each owned by an actor on its
/// own thread (hiredis blocks), so a request never holds one of the HTTP event loops while
/// Redis answers. A request's signals go out in one pipelined round trip.
public final class SignalQueue: Sendable {
    let connections: [QueueConnection]
    private let next = Atomic<Int>(0)

    /// `backlogBound`: ARK_STREAM_MAXLEN, the unread backlog of `ark:kyle` past which signals
    /// are refused (503) instead of queued.
    public init(url: RedisURL, size: Int, backlogBound: Int) {
        connections = (0..<max(1, size)).map { QueueConnection(url: url, index: $0, backlogBound: backlogBound) }
    }

    private func connection() -> QueueConnection {
        connections[next.add(1, ordering: .relaxed).oldValue % connections.count]
    }

    /// Appends each payload as the `event` of a new entry of `ark:kyle`, all or none
    /// (MULTI/EXEC: a Redis out of memory refuses the whole request); returns the entry ids in
    /// order. Refused while Kyle's backlog is over its bound. A connection error is not retried
    /// here: whether EXEC ran is unknown, and only the client can tell a retry from a
    /// duplicate (by trace_id).
    public func enqueue(_ payloads: [[UInt8]]) async throws(EnqueueError) -> [String] {
        try await connection().xadd(payloads, stream: Stage.kyle.inputStream)
    }

    /// PING on one connection: is the queue reachable now?
    public func ping() async -> RedisError? {
        await connection().ping()
    }

    public func shutdown() async {
        for c in connections { await c.close() }
    }
}

/// Why signals were not queued. Nothing of the request was.
public enum EnqueueError: Error, Sendable, Equatable {
    case redis(RedisError)
    /// Kyle's unread backlog is over ARK_STREAM_MAXLEN: ARK is behind (a stage stopped or slow).
    case backlogFull(backlog: Int, bound: Int)
}

actor QueueConnection {
    private nonisolated let executor: ThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private let redis: RedisConnection
    private let backlogBound: Int
    /// Kyle's backlog as last measured, and when: measured at most every 100 ms, so a burst
    /// of requests costs Redis one XINFO per connection per 100 ms, not one per request.
    private var backlog = 0
    private var backlogMeasuredNs: Int64 = 0
    static let backlogMeasureIntervalNs: Int64 = 100_000_000

    init(url: RedisURL, index: Int, backlogBound: Int) {
        executor = ThreadExecutor(name: "ark-api-redis-\(index)")
        redis = RedisConnection(url: url, commandTimeout: .seconds(5))
        self.backlogBound = backlogBound
    }

    func xadd(_ payloads: [[UInt8]], stream: String) throws(EnqueueError) -> [String] {
        do {
            if !redis.isConnected { try redis.connect(timeout: .seconds(2)) }
            let now = wallClockNanoseconds()
            if now - backlogMeasuredNs >= Self.backlogMeasureIntervalNs || backlog > backlogBound {
                backlog = try StreamBus.backlog(of: stream, group: Stage.kyle.group, on: redis)
                backlogMeasuredNs = now
            }
            if backlog > backlogBound { throw EnqueueError.backlogFull(backlog: backlog, bound: backlogBound) }
            var commands: [[RedisArg]] = [["MULTI"]]
            commands += payloads.map { ["XADD", .text(stream), "*", "event", .bytes($0)] }
            commands.append(["EXEC"])
            let replies = try redis.pipeline(commands)
            guard try StreamBus.checkTransaction(replies), case .array(let ids) = replies.last, ids.count == payloads.count else {
                throw RedisError.unexpectedReply("EXEC of the XADDs")
            }
            backlog += payloads.count
            return ids.map { $0.string ?? "" }
        } catch let e as EnqueueError {
            throw e
        } catch let e as RedisError {
            throw .redis(e)
        } catch {
            throw .redis(.unexpectedReply("\(error)"))
        }
    }

    func ping() -> RedisError? {
        do {
            if !redis.isConnected { try redis.connect(timeout: .seconds(1)) }
            _ = try redis.command(["PING"])
            return nil
        } catch {
            return error
        }
    }

    func close() {
        redis.close()
        executor.shutdown()
    }
}
