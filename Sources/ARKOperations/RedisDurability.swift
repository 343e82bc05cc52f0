// What a crash of a Redis host can lose, read from the node itself.

import ARKBus
import ARKCore
import Foundation

/// What a crash of a Redis host can lose of the signals ARK answered 202 for, read from the
/// node itself: its append-only file, how often that file is synced, and its eviction
/// policy. The streams, the books and the idempotency records all live in that Redis, so a
/// node without an append-only file comes back empty after a crash (docs/risk.md: Ledger and
/// reconciliation, what 202 means).
public struct RedisDurability: Sendable, Equatable {
    /// The node asked (`host:port` or the socket).
    public var node: String
    public var aofEnabled: Bool
    /// `always`, `everysec` or `no`; nil when CONFIG is not allowed (a managed Redis).
    public var appendfsync: String?
    public var evictionPolicy: String

    /// Why the node cannot keep ARK's promise, and the fix; nil when it can.
    public var problem: (message: String, fix: String)? {
        guard evictionPolicy == "noeviction" else {
            return ("\(node) has maxmemory-policy \(evictionPolicy): when it fills it would evict signals no stage has read",
                    "set maxmemory-policy noeviction (redis.conf, or CONFIG SET maxmemory-policy noeviction): a full Redis then refuses writes, which ARK reports and retries")
        }
        guard aofEnabled else {
            return ("\(node) has no append-only file (appendonly no): a crash of its host loses every signal ARK answered 202 for since the last snapshot, and the books and idempotency records with them",
                    "set appendonly yes and appendfsync everysec (or always) in redis.conf, or CONFIG SET appendonly yes then CONFIG REWRITE (deployment/redis/ark-redis.conf is a durable configuration)")
        }
        if appendfsync == "no" {
            return ("\(node) has appendfsync no: the kernel decides when the append-only file reaches the disk, so a crash of its host can lose about 30 s of accepted signals",
                    "set appendfsync everysec (at most about a second lost) or always (none lost) in redis.conf")
        }
        return nil
    }

    /// What a crash of the host can lose, in words.
    public var promise: String {
        switch (aofEnabled, appendfsync) {
        case (false, _): return "everything since the last snapshot"
        case (true, "always"): return "no accepted signal (appendfsync always)"
        case (true, "everysec"): return "up to about a second of accepted signals (appendfsync everysec)"
        case (true, "no"): return "up to about 30 s of accepted signals (appendfsync no)"
        default: return "up to about a second of accepted signals, if appendfsync is everysec (CONFIG is not allowed here to say)"
        }
    }

    /// Reads INFO persistence and memory, and CONFIG GET appendfsync where allowed.
    public static func inspect(_ c: RedisConnection, node: String) throws(RedisError) -> RedisDurability {
        func field(_ section: String, _ name: String) throws(RedisError) -> String? {
            let info = try c.command(["INFO", .text(section)]).string ?? ""
            return info.split(whereSeparator: \.isNewline).first { $0.hasPrefix(name + ":") }
                .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
        }
        let aof = try field("persistence", "aof_enabled") == "1"
        let policy = try field("memory", "maxmemory_policy") ?? "unknown"
        let fsync = (try? c.command(["CONFIG", "GET", "appendfsync"]))?.array?.last?.string
        return RedisDurability(node: node, aofEnabled: aof, appendfsync: fsync, evictionPolicy: policy)
    }

    /// Every node that holds ARK's keys: each primary of a cluster (a replica is promoted with
    /// the configuration it has: redis_cluster.sh and the template give all nodes the same),
    /// or the node itself.
    public static func inspectAll(_ c: RedisConnection) throws(RedisError) -> [RedisDurability] {
        var out: [RedisDurability] = []
        for (node, connection) in try c.everyPrimary() {
            out.append(try inspect(connection, node: node))
        }
        return out
    }
}
