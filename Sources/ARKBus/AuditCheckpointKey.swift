import ARKCore

/// The Redis copy of the newest audit checkpoint (`ark:audit:checkpoint`): one of the places
/// outside the state store where the log's signed head is kept.
public enum AuditCheckpointKey {
    /// Sets the key unless it holds a larger checkpoint (two Aletheia instances sign in turn);
    /// a restore's checkpoint replaces whatever is there, since the log starts again from it.
    static let setIfNewer = """
        local cur = redis.call('GET', KEYS[1])
        if cur and ARGV[3] ~= 'restore' then
            local size = tonumber(string.match(cur, '"size":(%d+)'))
            if size and size > tonumber(ARGV[2]) then return 0 end
        end
        redis.call('SET', KEYS[1], ARGV[1])
        return 1
        """

    public static func publish(json: [UInt8], size: Int, kind: String, on connection: RedisConnection) throws(RedisError) {
        _ = try connection.command(["EVAL", .text(setIfNewer), "1", .text(Streams.auditCheckpoint), .bytes(json), .int(size), .text(kind)])
    }

    /// The key's value, nil when absent.
    public static func read(on connection: RedisConnection) throws(RedisError) -> [UInt8]? {
        if case .bulk(let b) = try connection.command(["GET", .text(Streams.auditCheckpoint)]) { return b }
        return nil
    }
}
