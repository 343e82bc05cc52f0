// Which Redis Cluster primary serves each slot, and how a connection follows it.

import ARKCore

/// Which primary serves each of a Redis Cluster's 16,384 slots, as CLUSTER SLOTS told it.
public struct ClusterMap: Sendable, Equatable {
    /// The primary of each slot (nil: no node serves it, the cluster is down for that slot).
    private var owners: [RedisURL.Endpoint?]
    /// Each primary's replicas, as last read.
    public private(set) var replicas: [RedisURL.Endpoint: [RedisURL.Endpoint]] = [:]

    public init(owners: [RedisURL.Endpoint?]) {
        self.owners = owners
    }

    /// Reads a CLUSTER SLOTS reply: `[[start, end, [host, port, id…], replica…], …]`. A node
    /// listed without a host ("" or "?") is the one that was asked.
    public init?(slotsReply reply: RedisValue, askedNode: RedisURL.Endpoint) {
        guard let ranges = reply.array else { return nil }
        var owners = [RedisURL.Endpoint?](repeating: nil, count: ClusterSlot.count)
        var replicas: [RedisURL.Endpoint: [RedisURL.Endpoint]] = [:]
        func endpoint(_ v: RedisValue) -> RedisURL.Endpoint? {
            guard let a = v.array, a.count >= 2, let host = a[0].string, let port = a[1].integer, (1...65535).contains(port) else { return nil }
            if host.isEmpty || host == "?" { return askedNode }
            return .tcp(host: host, port: Int(port))
        }
        for range in ranges {
            guard let r = range.array, r.count >= 3, let start = r[0].integer, let end = r[1].integer,
                  start >= 0, end < ClusterSlot.count, start <= end, let primary = endpoint(r[2]) else { return nil }
            for slot in Int(start)...Int(end) { owners[slot] = primary }
            replicas[primary] = r.dropFirst(3).compactMap(endpoint)
        }
        self.owners = owners
        self.replicas = replicas
    }

    public func primary(of slot: Int) -> RedisURL.Endpoint? {
        slot >= 0 && slot < owners.count ? owners[slot] : nil
    }

    /// Every primary serving at least one slot, in slot order.
    public var primaries: [RedisURL.Endpoint] {
        var seen: [RedisURL.Endpoint] = []
        for case let o? in owners where !seen.contains(o) { seen.append(o) }
        return seen
    }

    /// Slots no node serves.
    public var uncovered: Int { owners.lazy.filter { $0 == nil }.count }

    mutating func assign(slot: Int, to endpoint: RedisURL.Endpoint) {
        guard slot >= 0 && slot < owners.count else { return }
        owners[slot] = endpoint
    }
}

/// A `-MOVED <slot> <host>:<port>` or `-ASK <slot> <host>:<port>` error reply; nil for any
/// other error, or one whose slot or port is out of range.
public struct ClusterRedirect: Equatable, Sendable {
    public var isMoved: Bool
    public var slot: Int
    public var endpoint: RedisURL.Endpoint

    public init?(_ error: String) {
        let parts = error.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
              slot >= 0, slot < ClusterSlot.count, let colon = parts[2].lastIndex(of: ":"),
              let port = Int(parts[2][parts[2].index(after: colon)...]), (1...65535).contains(port) else { return nil }
        let host = String(parts[2][..<colon])
        guard !host.isEmpty else { return nil }
        isMoved = parts[0] == "MOVED"
        self.slot = slot
        self.endpoint = .tcp(host: host, port: port)
    }
}
