// A blocking Redis connection on hiredis, to one node or a cluster, with typed replies.

import ARKCore
import CHiredis
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value in a Redis reply (RESP2).
public enum RedisValue: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisValue])

    public var string: String? {
        switch self {
        case .status(let s): s
        case .bulk(let b): String(decoding: b, as: UTF8.self)
        case .integer(let i): String(i)
        default: nil
        }
    }

    /// The field/value pairs of an HGETALL reply (empty for anything else).
    public var hashEntries: [(field: String, value: [UInt8])] {
        let items = array ?? []
        var out: [(field: String, value: [UInt8])] = []
        out.reserveCapacity(items.count / 2)
        var i = 0
        while i + 1 < items.count {
            if let field = items[i].string, case .bulk(let value) = items[i + 1] { out.append((field, value)) }
            i += 2
        }
        return out
    }

    public var array: [RedisValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var integer: Int64? {
        switch self {
        case .integer(let i): i
        case .bulk, .status: string.flatMap { Int64($0) }
        default: nil
        }
    }
}

/// What went wrong talking to Redis.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connection is down or broke; reconnect and retry. Nothing was acknowledged.
    case connection(String)
    /// Redis answered with an error to a command.
    case server(String)
    /// The reply did not have the shape the command promises.
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .connection(let m): "Redis connection: \(m)"
        case .server(let m): "Redis error: \(m)"
        case .unexpectedReply(let m): "unexpected Redis reply: \(m)"
        }
    }

    public var isConnectionError: Bool {
        if case .connection = self { return true }
        return false
    }

    /// Redis is there but cannot take the command now (out of memory under `noeviction`,
    /// loading, a busy script, a failed snapshot, a replica, a cluster slot moving or
    /// down): nothing about the entries, so their batch is retried, not charged.
    public var isServerUnavailable: Bool {
        guard case .server(let m) = self else { return false }
        return Self.unavailablePrefixes.contains { m.hasPrefix($0) }
    }

    static let unavailablePrefixes = ["OOM", "LOADING", "BUSY", "MISCONF", "READONLY", "MASTERDOWN", "NOREPLICAS", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK"]
}

/// One argument of a command: text or raw bytes. Arguments are passed to hiredis as an
/// argv array with lengths, never formatted into a command string.
public enum RedisArg: Sendable, ExpressibleByStringLiteral {
    case text(String)
    case bytes([UInt8])

    public init(stringLiteral value: String) { self = .text(value) }
    public static func int(_ v: Int) -> RedisArg { .text(String(v)) }
}

private struct ClusterDatabaseError: Error {}

/// A blocking hiredis connection. Not thread-safe: it lives inside one actor that runs on a
/// `ThreadExecutor`. After any I/O error the context is dropped and every call throws
/// `.connection` until `connect()` succeeds again.
///
/// On Redis Cluster (found out at `connect`, by CLUSTER SLOTS) a connection made for a
/// `slotKey` (a shard's hash tag) connects to the primary that serves that slot, so its
/// pipelines, transactions and blocking reads, which touch that slot only, go straight there.
/// A single command for a key of another slot (a heartbeat, the canary route) is sent to that
/// slot's node over a side connection. A reply saying the connection's own slot has moved
/// (a failover, a resharding) makes the next call throw `.connection`, so the owner
/// reconnects, as after any connection loss, and finds the new primary.
public final class RedisConnection {
    public let url: RedisURL
    public let commandTimeout: Duration
    /// A key of the slot this connection serves on a cluster (nil: whichever node it reached).
    public let slotKey: String?
    private let pinnedSlot: Int?
    private var context: UnsafeMutablePointer<redisContext>?
    /// The buffer `command` and `pipeline` write into, kept from one call to the next.
    private var scratch = RedisCommands()
    /// The node the context is connected to.
    public private(set) var node: RedisURL.Endpoint?
    /// The cluster's slot map as last read; nil on a single node (or before the first connect).
    public private(set) var cluster: ClusterMap?
    /// Connections to other nodes for single commands on keys of other slots.
    private var sideConnections: [RedisURL.Endpoint: RedisConnection] = [:]
    /// Set when a reply said this connection's slot is now served elsewhere.
    private var movedAway: String?
    /// Side connections follow no redirects of their own.
    private let followsRedirects: Bool

    public convenience init(url: RedisURL, commandTimeout: Duration = .seconds(15), slotKey: String? = nil) {
        self.init(url: url, commandTimeout: commandTimeout, slotKey: slotKey, followsRedirects: true)
    }

    private init(url: RedisURL, commandTimeout: Duration, slotKey: String?, followsRedirects: Bool) {
        self.url = url
        self.commandTimeout = commandTimeout
        self.slotKey = slotKey
        self.pinnedSlot = slotKey.map { ClusterSlot.of($0) }
        self.followsRedirects = followsRedirects
        _ = Self.ignoreBrokenPipe
    }

    /// Writing to a connection Redis has closed raises SIGPIPE, whose default action kills the
    /// process; ignored, the write fails with EPIPE and becomes a `.connection` error instead.
    private static let ignoreBrokenPipe: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    deinit { close() }

    public var isConnected: Bool { context != nil }
    public var isCluster: Bool { cluster != nil }

    public func close() {
        if let c = context { redisFree(c) }
        context = nil
        node = nil
        movedAway = nil
        for side in sideConnections.values { side.close() }
        sideConnections.removeAll()
    }

    /// Opens the connection, authenticates and selects the database; on a cluster, reads the
    /// slot map and connects to the node serving `slotKey`. Tries the node the last map named
    /// for the slot, then every seed, then every primary the last map knew.
    public func connect(timeout: Duration = .seconds(3)) throws(RedisError) {
        close()
        var candidates: [RedisURL.Endpoint] = []
        if let pinnedSlot, let owner = cluster?.primary(of: pinnedSlot) { candidates.append(owner) }
        for e in url.seeds + (cluster?.primaries ?? []) where !candidates.contains(e) { candidates.append(e) }
        var lastError = RedisError.connection("no node to connect to")
        for endpoint in candidates {
            do {
                try open(endpoint, timeout: timeout)
                guard followsRedirects else { return }
                try learnTopology(from: endpoint)
                guard let map = cluster else {
                    try selectDatabase()
                    return
                }
                if url.database != 0 {
                    close()
                    throw ClusterDatabaseError()
                }
                guard let slot = pinnedSlot else { return }
                guard let owner = map.primary(of: slot) else {
                    close()
                    lastError = .connection("no cluster node serves slot \(slot) (of \(slotKey ?? "")): the cluster is down for it")
                    continue
                }
                if owner == endpoint { return }
                try open(owner, timeout: timeout)
                return
            } catch is ClusterDatabaseError {
                throw .connection("a Redis Cluster has database 0 only; REDIS_URL names database \(url.database)")
            } catch let error as RedisError {
                lastError = error
            } catch {
                lastError = .connection("\(error)")
            }
        }
        throw lastError
    }

    private func open(_ endpoint: RedisURL.Endpoint, timeout: Duration) throws(RedisError) {
        if let c = context { redisFree(c) }
        context = nil
        node = nil
        let tv = Self.timeval(timeout)
        let ctx: UnsafeMutablePointer<redisContext>?
        let name: String
        switch endpoint {
        case .tcp(let host, let port):
            ctx = redisConnectWithTimeout(host, Int32(port), tv)
            name = "\(host):\(port)"
        case .unix(let path):
            ctx = redisConnectUnixWithTimeout(path, tv)
            name = path
        }
        guard let ctx else { throw .connection("cannot allocate a hiredis context") }
        if ctx.pointee.err != 0 {
            let message = Self.errorString(ctx)
            redisFree(ctx)
            throw .connection("cannot connect to \(name): \(message)")
        }
        redisSetTimeout(ctx, Self.timeval(commandTimeout))
        if case .tcp = endpoint { redisEnableKeepAlive(ctx) }
        context = ctx
        node = endpoint
        if let password = url.password {
            var args: [RedisArg] = ["AUTH"]
            if let user = url.username { args.append(.text(user)) }
            args.append(.text(password))
            if case .error(let e) = try plainCommand(args) {
                close()
                throw .connection("authentication failed: \(e)")
            }
        }
        // A restarted Redis accepts connections while it is still loading its data; it is
        // not usable until PING answers PONG.
        switch try plainCommand(["PING"]) {
        case .status("PONG"): break
        case .error(let e):
            close()
            throw .connection(e.hasPrefix("LOADING") ? "Redis is still loading its dataset" : "PING failed: \(e)")
        case let other:
            close()
            throw .connection("unexpected PING reply \(other)")
        }
    }

    /// Asks the node whether it is part of a cluster, and if so where every slot is.
    private func learnTopology(from endpoint: RedisURL.Endpoint) throws(RedisError) {
        switch try plainCommand(["CLUSTER", "SLOTS"]) {
        case .error:
            // "cluster support disabled", or a server or proxy that does not know or allow the
            // command (a cluster node always answers it): a single node.
            cluster = nil
        case let reply:
            guard let map = ClusterMap(slotsReply: reply, askedNode: endpoint) else {
                close()
                throw .connection("CLUSTER SLOTS on \(endpoint) gave no slot map")
            }
            cluster = map
        }
    }

    private func selectDatabase() throws(RedisError) {
        guard url.database != 0 else { return }
        if case .error(let e) = try plainCommand(["SELECT", .int(url.database)]) {
            close()
            throw .connection("cannot select database \(url.database): \(e)")
        }
    }

    private func plainCommand(_ args: [RedisArg]) throws(RedisError) -> RedisValue {
        scratch.removeAll()
        scratch.append(args)
        try write(scratch)
        return try readReply()
    }

    /// Sends one command and returns its reply. A Redis error reply is returned as `.error`.
    /// On a cluster, a command on a key of another slot goes to that slot's node.
    public func command(_ args: [RedisArg]) throws(RedisError) -> RedisValue {
        guard followsRedirects, let map = cluster, let key = Self.key(of: args) else { return try plainCommand(args) }
        let slot = ClusterSlot.of(key)
        if slot != pinnedSlot, let owner = map.primary(of: slot), owner != node {
            return try side(owner).plainCommand(args)
        }
        var reply = try plainCommand(args)
        // A slot that moved since the map was read: follow the redirect (twice at most).
        for _ in 0..<2 {
            guard case .error(let e) = reply, let redirect = ClusterRedirect(e) else { break }
            if redirect.isMoved { cluster?.assign(slot: redirect.slot, to: redirect.endpoint) }
            if redirect.slot == pinnedSlot && redirect.isMoved {
                close()
                throw .connection("cluster slot \(redirect.slot) moved to \(redirect.endpoint); reconnecting")
            }
            let target = try side(redirect.endpoint)
            if !redirect.isMoved { _ = try target.plainCommand(["ASKING"]) }
            reply = try target.plainCommand(args)
        }
        return reply
    }

    /// Every key matching `pattern` on every primary of the cluster (SCAN on each; a primary
    /// that does not answer is left out: its keys are out of reach anyway), or on this node
    /// when it is not a cluster.
    public func keysOnEveryPrimary(matching pattern: String) throws(RedisError) -> [String] {
        guard let primaries = cluster?.primaries else { return try keys(on: self, matching: pattern) }
        var keys: [String] = []
        for endpoint in primaries {
            do {
                keys += try self.keys(on: endpoint == node ? self : try side(endpoint), matching: pattern)
            } catch where endpoint != node {
                continue
            }
        }
        return keys
    }

    /// This node, or on a cluster each primary serving slots (a connection of its own for each
    /// other one), named as `host:port` or the socket path.
    public func everyPrimary() throws(RedisError) -> [(node: String, connection: RedisConnection)] {
        guard let primaries = cluster?.primaries else { return [(node.map(\.description) ?? url.description, self)] }
        var out: [(node: String, connection: RedisConnection)] = []
        for endpoint in primaries { out.append((endpoint.description, endpoint == node ? self : try side(endpoint))) }
        return out
    }

    private func keys(on target: RedisConnection, matching pattern: String) throws(RedisError) -> [String] {
        var keys: [String] = []
        var cursor = "0"
        repeat {
            let reply = try target.plainCommand(["SCAN", .text(cursor), "MATCH", .text(pattern), "COUNT", "1000"])
            guard let parts = reply.array, parts.count == 2 else { break }
            cursor = parts[0].string ?? "0"
            keys += parts[1].array?.compactMap(\.string) ?? []
        } while cursor != "0"
        return keys
    }

    private func side(_ endpoint: RedisURL.Endpoint) throws(RedisError) -> RedisConnection {
        if let c = sideConnections[endpoint], c.isConnected { return c }
        let c = RedisConnection(url: url.at(endpoint), commandTimeout: commandTimeout, slotKey: nil, followsRedirects: false)
        try c.connect()
        sideConnections[endpoint] = c
        return c
    }

    /// The key a command is routed by: its first key (nil for commands without one).
    static func key(of args: [RedisArg]) -> [UInt8]? {
        guard case .text(let name)? = args.first else { return nil }
        let index: Int
        switch name.uppercased() {
        case "PING", "INFO", "CLUSTER", "AUTH", "ASKING", "MULTI", "EXEC", "DISCARD", "SCRIPT", "CLIENT", "CONFIG",
             "DBSIZE", "WAIT", "READONLY", "SELECT", "FLUSHALL", "FLUSHDB", "TIME", "COMMAND", "SCAN", "KEYS":
            return nil
        case "XINFO", "XGROUP", "OBJECT", "MEMORY": index = 2
        case "EVAL", "EVALSHA": index = 3
        case "XREAD", "XREADGROUP":
            guard let s = args.firstIndex(where: { if case .text(let t) = $0 { t.uppercased() == "STREAMS" } else { false } }) else { return nil }
            index = s + 1
        default: index = 1
        }
        guard index < args.count else { return nil }
        switch args[index] {
        case .text(let t): return Array(t.utf8)
        case .bytes(let b): return b
        }
    }

    /// Every field of a hash with its value (HGETALL); empty when the key is missing.
    public func hashEntries(_ key: String) throws(RedisError) -> [(field: String, value: [UInt8])] {
        let reply = try command(["HGETALL", .text(key)])
        if case .error(let e) = reply { throw .server(e) }
        return reply.hashEntries
    }

    /// Sends every command in one write and reads every reply: one round trip.
    public func pipeline(_ commands: [[RedisArg]]) throws(RedisError) -> [RedisValue] {
        scratch.removeAll()
        for c in commands { scratch.append(c) }
        return try send(scratch)
    }

    /// Sends the commands in one write and reads their replies: one round trip.
    public func send(_ commands: RedisCommands) throws(RedisError) -> [RedisValue] {
        try write(commands)
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in 0..<commands.count { replies.append(try readReply()) }
        return replies
    }

    /// Queues the commands for sending; the first read sends them. Each must then have its
    /// reply read (`readReply` or `withReply`), in order.
    public func write(_ commands: RedisCommands) throws(RedisError) {
        if let movedAway {
            close()
            throw .connection(movedAway)
        }
        guard let ctx = context else { throw .connection("not connected to \(url)") }
        guard commands.count > 0 else { return }
        let rc = commands.bytes.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(ctx, $0.baseAddress, $0.count) }
        }
        if rc != 0 { try fail(ctx) }
    }

    /// Reads the next reply.
    public func readReply() throws(RedisError) -> RedisValue {
        try withReply { Self.convert($0.pointer) }
    }

    /// Reads the next reply and hands it to `body` as hiredis holds it, so a large reply (a
    /// batch of stream entries) is read without a `RedisValue` tree. The reply is freed when
    /// `body` returns: nothing of it may escape.
    public func withReply<T>(_ body: (RawReply) throws(RedisError) -> T) throws(RedisError) -> T {
        guard let ctx = context else { throw .connection("not connected to \(url)") }
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(ctx, &raw) != 0 || raw == nil { try fail(ctx) }
        defer { freeReplyObject(raw) }
        let reply = RawReply(pointer: raw!.assumingMemoryBound(to: redisReply.self))
        if cluster != nil, reply.isError, let redirect = ClusterRedirect(reply.text) {
            // Inside a pipeline nothing can be resent: the owner retries after reconnecting.
            if redirect.isMoved { cluster?.assign(slot: redirect.slot, to: redirect.endpoint) }
            movedAway = "cluster slot \(redirect.slot) is served by \(redirect.endpoint) now; reconnecting"
        }
        return try body(reply)
    }

    private func fail(_ ctx: UnsafeMutablePointer<redisContext>) throws(RedisError) -> Never {
        let message = Self.errorString(ctx)
        close()
        throw .connection(message.isEmpty ? "I/O error" : message)
    }

    static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisValue {
        switch r.pointee.type {
        case REDIS_REPLY_STRING:
            return .bulk(Self.bytes(r))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: Self.bytes(r), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: Self.bytes(r), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(r.pointee.integer)
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(r.pointee.elements)
            for i in 0..<r.pointee.elements {
                if let e = r.pointee.element[i] { items.append(convert(e)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }

    @inline(__always)
    static func bytes(_ r: UnsafeMutablePointer<redisReply>) -> [UInt8] {
        guard let s = r.pointee.str, r.pointee.len > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: s, count: r.pointee.len))
    }

    static func errorString(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    static func timeval(_ d: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = d.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}

/// A reply as hiredis holds it, valid only inside `RedisConnection.withReply`.
public struct RawReply {
    let pointer: UnsafeMutablePointer<redisReply>

    public var isArray: Bool { pointer.pointee.type == REDIS_REPLY_ARRAY }
    public var isNull: Bool { pointer.pointee.type == REDIS_REPLY_NIL }
    public var isString: Bool { pointer.pointee.type == REDIS_REPLY_STRING || pointer.pointee.type == REDIS_REPLY_STATUS }
    public var isError: Bool { pointer.pointee.type == REDIS_REPLY_ERROR }
    public var count: Int { isArray ? pointer.pointee.elements : 0 }

    /// An array's element; a missing one reads as null.
    public subscript(i: Int) -> RawReply? {
        guard isArray, i >= 0, i < pointer.pointee.elements, let e = pointer.pointee.element[i] else { return nil }
        return RawReply(pointer: e)
    }

    /// A string's, status's or error's bytes, borrowed.
    public var bytes: UnsafeRawBufferPointer {
        guard let s = pointer.pointee.str, pointer.pointee.len > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: s, count: pointer.pointee.len)
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// True when the string's bytes are exactly `literal`.
    public func equals(_ literal: StaticString) -> Bool {
        let b = bytes
        guard b.count == literal.utf8CodeUnitCount else { return false }
        return b.elementsEqual(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}
