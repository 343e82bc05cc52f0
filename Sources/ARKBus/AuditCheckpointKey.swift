// The Redis copy of the newest signed audit checkpoint.

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

    public static func publish(_ c: AuditCheckpoint, on connection: RedisConnection) throws(RedisError) {
        _ = try connection.command(["EVAL", .text(setIfNewer), "1", .text(Streams.auditCheckpoint), .bytes(c.json), .int(c.size), .text(c.kind.rawValue)])
    }

    /// The key's checkpoint; nil when the key is absent.
    public static func read(on connection: RedisConnection) throws(RedisError) -> AuditCheckpoint? {
        guard case .bulk(let b) = try connection.command(["GET", .text(Streams.auditCheckpoint)]) else { return nil }
        guard let c = AuditCheckpoint(json: b) else { throw RedisError.server("\(Streams.auditCheckpoint) does not hold a checkpoint") }
        return c
    }

    /// Runs `body` on a short-lived connection to `redisURL` (the commands that touch the key
    /// once: verify-audit, restore, Aletheia's start-up check).
    public static func briefly<T>(_ redisURL: String, _ body: (RedisConnection) throws -> T) throws -> T {
        try briefly(try RedisURL(parsing: redisURL), body)
    }

    public static func briefly<T>(_ redisURL: RedisURL, _ body: (RedisConnection) throws -> T) throws -> T {
        let connection = RedisConnection(url: redisURL, commandTimeout: .seconds(3))
        try connection.connect(timeout: .seconds(2))
        defer { connection.close() }
        return try body(connection)
    }
}

/// The newest cosigned head of each witness (`ark:audit:cosignatures`, by witness key id).
public enum AuditCosignatureKey {
    /// Sets a witness's field unless it holds a head the log signed later (by the head's
    /// `time_ns`: after a restore the witness, reset, cosigns smaller heads that are newer).
    static let setIfNewer = """
        local cur = redis.call('HGET', KEYS[1], ARGV[1])
        if cur then
            local t = tonumber(string.match(cur, '"time_ns":(%d+)'))
            if t and t > tonumber(ARGV[3]) then return 0 end
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        return 1
        """

    public static func publish(_ c: AuditCosignature, on connection: RedisConnection) throws(RedisError) {
        _ = try connection.command(["EVAL", .text(setIfNewer), "1", .text(Streams.auditCosignatures), .text(c.witnessKeyID), .bytes(c.json), .text(String(c.checkpoint.timeNs))])
    }

    /// Every witness's newest cosigned head; unreadable fields are left out.
    public static func read(on connection: RedisConnection) throws(RedisError) -> [AuditCosignature] {
        try connection.hashEntries(Streams.auditCosignatures).compactMap { AuditCosignature(json: $0.value) }
    }
}
