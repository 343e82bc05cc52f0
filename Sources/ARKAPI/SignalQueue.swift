import ARKBus
import ARKCore
import Synchronization

/// The API's way into `ark:kyle`: a few Redis connections, each owned by an actor on its
/// own thread (hiredis blocks), so a request never holds one of the HTTP event loops while
/// Redis answers. A request's signals go out in one pipelined round trip.
public final class SignalQueue: Sendable {
    let connections: [QueueConnection]
    private let next = Atomic<Int>(0)
    let streamMaxLen: Int

    public init(url: RedisURL, size: Int, streamMaxLen: Int) {
        connections = (0..<max(1, size)).map { QueueConnection(url: url, index: $0) }
        self.streamMaxLen = streamMaxLen
    }

    private func connection() -> QueueConnection {
        connections[next.add(1, ordering: .relaxed).oldValue % connections.count]
    }

    /// Appends each payload as the `event` of a new entry of `ark:kyle`; returns the entry
    /// ids in order. A connection error is not retried here: part of the pipeline may have
    /// been written, and only the client can tell a retry from a duplicate (by trace_id).
    public func enqueue(_ payloads: [[UInt8]]) async throws(RedisError) -> [String] {
        try await connection().xadd(payloads, stream: Stage.kyle.inputStream, maxLen: streamMaxLen)
    }

    /// PING on one connection: is the queue reachable now?
    public func ping() async -> RedisError? {
        await connection().ping()
    }

    public func shutdown() async {
        for c in connections { await c.close() }
    }
}

actor QueueConnection {
    private nonisolated let executor: ThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private let redis: RedisConnection

    init(url: RedisURL, index: Int) {
        executor = ThreadExecutor(name: "ark-api-redis-\(index)")
        redis = RedisConnection(url: url, commandTimeout: .seconds(5))
    }

    func xadd(_ payloads: [[UInt8]], stream: String, maxLen: Int) throws(RedisError) -> [String] {
        if !redis.isConnected { try redis.connect(timeout: .seconds(2)) }
        let replies = try redis.pipeline(payloads.map { ["XADD", .text(stream), "MAXLEN", "~", .int(maxLen), "*", "event", .bytes($0)] })
        return try replies.map { reply throws(RedisError) -> String in
            switch reply {
            case .bulk, .status: return reply.string ?? ""
            case .error(let e): throw .server(e)
            default: throw .unexpectedReply("XADD answered \(reply)")
            }
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
