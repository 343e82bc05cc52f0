import ARKCore
import Metrics

/// An entry read from a stream through a consumer group.
public struct StreamEntry: Sendable, Equatable {
    public var stream: String
    public var id: String
    /// The `event` field; nil when the entry has none (or was trimmed while pending).
    public var payload: [UInt8]?
    /// Every field name, to say what an entry without `event` had instead.
    public var fieldNames: [String]
    /// How often Redis has delivered it, where known (claimed and recovered entries).
    public var deliveries: Int
    /// Fields other than `event` (dead letter entries carry their reason and origin here).
    public var otherFields: [String: String]
    /// Set on a dead letter that killed or stalled Aletheia ARK_MAX_DELIVERIES times: record it
    /// without decoding its payload (a dead letter is never re-lettered, so this is how its
    /// crash loop ends).
    public var recordRaw = false

    public init(stream: String, id: String, payload: [UInt8]?, fieldNames: [String] = ["event"], deliveries: Int = 1, otherFields: [String: String] = [:]) {
        self.stream = stream
        self.id = id
        self.payload = payload
        self.fieldNames = fieldNames
        self.deliveries = deliveries
        self.otherFields = otherFields
    }

    /// The millisecond timestamp Redis put in the entry id.
    public var idMilliseconds: Int64? {
        guard let dash = id.firstIndex(of: "-") else { return Int64(id) }
        return Int64(id[..<dash])
    }
}

/// A consumer group on a stream, as XINFO GROUPS reports it.
public struct StreamGroupInfo: Sendable, Equatable {
    public var name: String
    /// Delivered and not yet acknowledged.
    public var pending: Int
    /// Entries not yet delivered to the group; nil when Redis cannot tell (after deletions).
    public var lag: Int?
    public var lastDeliveredID: String
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
public struct StreamID: Comparable, Sendable, CustomStringConvertible {
    public var ms: UInt64
    public var seq: UInt64
    public static let zero = StreamID(ms: 0, seq: 0)
    public static let max = StreamID(ms: .max, seq: .max)

    public init(ms: UInt64, seq: UInt64) {
        self.ms = ms
        self.seq = seq
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, let ms = UInt64(parts[0]) else { return nil }
        self.ms = ms
        if parts.count == 2 {
            guard let seq = UInt64(parts[1]) else { return nil }
            self.seq = seq
        } else {
            self.seq = 0
        }
    }

    /// The smallest id after this one.
    public var next: StreamID { seq == .max ? StreamID(ms: ms + 1, seq: 0) : StreamID(ms: ms, seq: seq + 1) }
    public var description: String { "\(ms)-\(seq)" }
    public static func < (a: StreamID, b: StreamID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }
}

/// An entry that will not be processed, with why: it goes to `ark:deadletter` with its
/// original payload and is acknowledged, so it is neither lost nor retried forever.
public struct DeadLetter: Error, Sendable, Equatable {
    public var entry: StreamEntry
    public var reason: String

    public init(entry: StreamEntry, reason: String) {
        self.entry = entry
        self.reason = reason
    }
}

/// One stage's view of Redis Streams: its consumer group and consumer name, batched reads,
/// claims, and a commit that writes outputs, dead letters and acknowledgements atomically
/// (MULTI/EXEC) in one round trip.
public final class StreamBus {
    public let connection: RedisConnection
    public let group: String
    public let consumer: String
    private var claimCursors: [String: String] = [:]
    private let deadLetterCounter: Counter

    public init(connection: RedisConnection, group: String, consumer: String) {
        self.connection = connection
        self.group = group
        self.consumer = consumer
        self.deadLetterCounter = Counter(label: MetricName.deadLettered, dimensions: [("stage", group)])
    }

    /// Creates the consumer group on each stream (and the stream) if missing. A new group
    /// starts at the beginning, so entries written before the first start are processed.
    public func ensureGroups(_ streams: [String]) throws(RedisError) {
        for s in streams {
            let reply = try connection.command(["XGROUP", "CREATE", .text(s), .text(group), "0", "MKSTREAM"])
            if case .error(let e) = reply, !e.hasPrefix("BUSYGROUP") { throw .server(e) }
        }
    }

    /// Reads up to `count` entries per stream. `history: true` re-reads this consumer's own
    /// pending entries (after a reconnect or failed batch) instead of new ones.
    public func read(_ streams: [String], count: Int, blockMs: Int?, history: Bool = false) throws(RedisError) -> [StreamEntry] {
        try Self.entries(fromXREADGROUP: connection.command(readCommand(streams, count: count, blockMs: blockMs, history: history)))
    }

    /// Reads new entries as `read` does, and runs `along` in the same round trip. Redis runs
    /// a client's commands in order, so `along` runs the moment the read returns: what it
    /// reads is as fresh as a separate request made after the read, without its round trip.
    public func read(_ streams: [String], count: Int, blockMs: Int?, along: [[RedisArg]]) throws(RedisError) -> (entries: [StreamEntry], along: [RedisValue]) {
        let replies = try connection.pipeline([readCommand(streams, count: count, blockMs: blockMs, history: false)] + along)
        return (try Self.entries(fromXREADGROUP: replies[0]), Array(replies.dropFirst()))
    }

    func readCommand(_ streams: [String], count: Int, blockMs: Int?, history: Bool) -> [RedisArg] {
        var args: [RedisArg] = ["XREADGROUP", "GROUP", .text(group), .text(consumer), "COUNT", .int(count)]
        if let blockMs { args += ["BLOCK", .int(blockMs)] }
        args.append("STREAMS")
        for s in streams { args.append(.text(s)) }
        for _ in streams { args.append(history ? "0" : ">") }
        return args
    }

    static func entries(fromXREADGROUP reply: RedisValue) throws(RedisError) -> [StreamEntry] {
        switch reply {
        case .null: return []
        case .error(let e): throw .server(e)
        case .array(let perStream):
            var out: [StreamEntry] = []
            for item in perStream {
                guard let pair = item.array, pair.count == 2, let name = pair[0].string, let entries = pair[1].array else {
                    throw .unexpectedReply("XREADGROUP stream item")
                }
                for e in entries { out.append(try Self.entry(e, stream: name, deliveries: 1)) }
            }
            return out
        default: throw .unexpectedReply("XREADGROUP")
        }
    }

    /// Takes over entries idle for `minIdleMs` on any consumer of the group (XAUTOCLAIM),
    /// with their delivery counts. Entries deleted from the stream while pending come back
    /// with a nil payload so they can be dead-lettered rather than silently dropped.
    public func claim(_ stream: String, minIdleMs: Int, count: Int) throws(RedisError) -> [StreamEntry] {
        let cursor = claimCursors[stream] ?? "0-0"
        let reply = try connection.command(["XAUTOCLAIM", .text(stream), .text(group), .text(consumer), .int(minIdleMs), .text(cursor), "COUNT", .int(count)])
        if case .error(let e) = reply { throw .server(e) }
        guard let parts = reply.array, parts.count >= 2, let next = parts[0].string, let entries = parts[1].array else {
            throw .unexpectedReply("XAUTOCLAIM")
        }
        claimCursors[stream] = next
        var out: [StreamEntry] = []
        for e in entries { out.append(try Self.entry(e, stream: stream, deliveries: 0)) }
        if parts.count >= 3, let deleted = parts[2].array {
            for d in deleted {
                if let id = d.string { out.append(StreamEntry(stream: stream, id: id, payload: nil, fieldNames: [], deliveries: 0)) }
            }
        }
        if !out.isEmpty { try fillDeliveryCounts(&out) }
        return out
    }

    /// Takes over the entries pending on one named consumer (a quarantined one) that have
    /// been idle `minIdleMs`, with XCLAIM. An entry trimmed from the stream while pending is
    /// not returned by Redis 7 and leaves the group's pending list with it.
    public func claim(_ stream: String, from owner: String, minIdleMs: Int, count: Int) throws(RedisError) -> [StreamEntry] {
        let pending = try connection.command(["XPENDING", .text(stream), .text(group), "IDLE", .int(minIdleMs), "-", "+", .int(count), .text(owner)])
        if case .error(let e) = pending {
            if e.hasPrefix("NOGROUP") { return [] }
            throw .server(e)
        }
        let ids = (pending.array ?? []).compactMap { $0.array?.first?.string }
        guard !ids.isEmpty else { return [] }
        let reply = try connection.command(["XCLAIM", .text(stream), .text(group), .text(consumer), .int(minIdleMs)] + ids.map { .text($0) })
        if case .error(let e) = reply { throw .server(e) }
        var out: [StreamEntry] = []
        for e in reply.array ?? [] where e != .null { out.append(try Self.entry(e, stream: stream, deliveries: 0)) }
        if !out.isEmpty { try fillDeliveryCounts(&out) }
        return out
    }

    /// Replaces each entry's delivery count with the one Redis keeps for this consumer.
    public func fillDeliveryCounts(_ entries: inout [StreamEntry]) throws(RedisError) {
        var byStream: [String: [Int]] = [:]
        for (i, e) in entries.enumerated() { byStream[e.stream, default: []].append(i) }
        for (stream, indices) in byStream {
            let ids = indices.map { entries[$0].id }
            let (lo, hi) = (ids.min(by: Self.idLess)!, ids.max(by: Self.idLess)!)
            let reply = try connection.command(["XPENDING", .text(stream), .text(group), .text(lo), .text(hi), .int(max(ids.count, 10) * 4), .text(consumer)])
            var counts: [String: Int] = [:]
            for row in reply.array ?? [] {
                guard let r = row.array, r.count >= 4, let id = r[0].string, let n = r[3].integer else { continue }
                counts[id] = Int(n)
            }
            for i in indices { entries[i].deliveries = max(entries[i].deliveries, counts[entries[i].id] ?? 1) }
        }
    }

    /// Deletes the entries of `stream` that every consumer group on it has acknowledged
    /// (`XTRIM MINID ~`), keeping each group's oldest pending entry and all it has not been
    /// delivered yet. Without this a stream keeps its acknowledged entries until
    /// ARK_STREAM_MAXLEN pushes them out: about 2 GB of Redis memory after ten minutes at 1 kHz.
    /// Approximate trimming frees whole nodes only, so it costs Redis next to nothing.
    public func trimAcknowledged(_ stream: String) throws(RedisError) {
        let groups = try Self.groups(of: stream, on: connection)
        guard !groups.isEmpty else { return }
        var keepFrom = StreamID.max
        for g in groups {
            // The first entry after the last one delivered is still to be read.
            var needed = (StreamID(g.lastDeliveredID) ?? .zero).next
            if g.pending > 0 {
                let summary = try connection.command(["XPENDING", .text(stream), .text(g.name)])
                if case .error(let e) = summary { throw .server(e) }
                if let oldest = summary.array?.dropFirst().first?.string.flatMap(StreamID.init) { needed = min(needed, oldest) }
            }
            keepFrom = min(keepFrom, needed)
        }
        guard keepFrom > .zero, keepFrom < .max else { return }
        let reply = try connection.command(["XTRIM", .text(stream), "MINID", "~", .text(keepFrom.description)])
        if case .error(let e) = reply { throw .server(e) }
    }

    /// The entries of `stream` that `group` has not finished: delivered and not acknowledged,
    /// plus not yet delivered. Redis's `lag` is unknown after some deletions; then the
    /// stream's length stands in, which can only overstate it. Other groups on the stream (a
    /// tap, an analytics reader) hold memory but do not hold ARK back.
    public static func backlog(of stream: String, group: String, on connection: RedisConnection) throws(RedisError) -> Int {
        let groups = try groups(of: stream, on: connection)
        var worst = 0
        var length: Int?
        for g in groups where g.name == group {
            var unread = g.lag
            if unread == nil {
                if length == nil { length = Int(try connection.command(["XLEN", .text(stream)]).integer ?? 0) }
                unread = length
            }
            worst = max(worst, g.pending + (unread ?? 0))
        }
        return worst
    }

    /// The consumer groups on `stream` (XINFO GROUPS); none when the stream does not exist.
    public static func groups(of stream: String, on connection: RedisConnection) throws(RedisError) -> [StreamGroupInfo] {
        let reply = try connection.command(["XINFO", "GROUPS", .text(stream)])
        if case .error(let e) = reply {
            if e.contains("no such key") { return [] }
            throw .server(e)
        }
        return (reply.array ?? []).compactMap { g in
            guard let items = g.array else { return nil }
            var fields: [String: RedisValue] = [:]
            var i = 0
            while i + 1 < items.count {
                if let k = items[i].string { fields[k] = items[i + 1] }
                i += 2
            }
            guard let name = fields["name"]?.string else { return nil }
            return StreamGroupInfo(name: name, pending: Int(fields["pending"]?.integer ?? 0), lag: fields["lag"]?.integer.map(Int.init),
                                   lastDeliveredID: fields["last-delivered-id"]?.string ?? "0-0")
        }
    }

    /// Number of entries delivered to the group and not yet acknowledged.
    public func pendingCount(_ stream: String) throws(RedisError) -> Int {
        let reply = try connection.command(["XPENDING", .text(stream), .text(group)])
        if case .error(let e) = reply {
            if e.hasPrefix("NOGROUP") { return 0 }
            throw .server(e)
        }
        return Int(reply.array?.first?.integer ?? 0)
    }

    /// The commands that add `outputs` to their streams, record `deadLetters` and acknowledge
    /// `acks`, wrapped in MULTI/EXEC so they happen together or not at all. Stages that need
    /// more in the same transaction (Kenny's book) put their commands in `extra`.
    public func commitCommands(outputs: [(stream: String, payload: [UInt8])], deadLetters: [DeadLetter], acks: [StreamEntry], extra: [[RedisArg]] = []) -> [[RedisArg]] {
        var cmds: [[RedisArg]] = [["MULTI"]]
        cmds.reserveCapacity(outputs.count + deadLetters.count + 4 + extra.count)
        cmds += extra
        // No MAXLEN: a stream loses only entries every group acknowledged (trimAcknowledged);
        // its size is bounded by back-pressure instead (`backlog`, StageAgent.holdingBack).
        for o in outputs {
            cmds.append(["XADD", .text(o.stream), "*", "event", .bytes(o.payload)])
        }
        for d in deadLetters { cmds.append(deadLetterCommand(d)) }
        var idsByStream: [String: [RedisArg]] = [:]
        for e in acks { idsByStream[e.stream, default: []].append(.text(e.id)) }
        for (stream, ids) in idsByStream.sorted(by: { $0.key < $1.key }) {
            cmds.append(["XACK", .text(stream), .text(group)] + ids)
        }
        cmds.append(["EXEC"])
        return cmds
    }

    /// XADD of a payload with extra fields (a routed signal keeps the trace id it was given).
    public func addCommand(stream: String, payload: [UInt8], fields: [(String, String)] = []) -> [RedisArg] {
        var cmd: [RedisArg] = ["XADD", .text(stream), "*", "event", .bytes(payload)]
        for (k, v) in fields { cmd += [.text(k), .text(v)] }
        return cmd
    }

    func deadLetterCommand(_ d: DeadLetter) -> [RedisArg] {
        [
            "XADD", .text(Streams.deadLetter), "*",
            "event", .bytes(d.entry.payload ?? []),
            "reason", .text(d.reason),
            "stream", .text(d.entry.stream),
            "entry_id", .text(d.entry.id),
            "group", .text(group),
            "consumer", .text(consumer),
            "deliveries", .int(d.entry.deliveries),
            "ts_ns", .text(String(wallClockNanoseconds())),
        ]
    }

    /// Runs `commitCommands` and checks the transaction. Returns false when a WATCHed key
    /// changed and nothing was applied.
    @discardableResult
    public func commit(outputs: [(stream: String, payload: [UInt8])], deadLetters: [DeadLetter], acks: [StreamEntry], extra: [[RedisArg]] = []) throws(RedisError) -> Bool {
        if outputs.isEmpty && deadLetters.isEmpty && acks.isEmpty && extra.isEmpty { return true }
        let replies = try connection.pipeline(commitCommands(outputs: outputs, deadLetters: deadLetters, acks: acks, extra: extra))
        let applied = try Self.checkTransaction(replies)
        if applied && !deadLetters.isEmpty { deadLetterCounter.increment(by: deadLetters.count) }
        return applied
    }

    public static func checkTransaction(_ replies: [RedisValue]) throws(RedisError) -> Bool {
        for r in replies.dropLast() {
            if case .error(let e) = r { throw .server(e) }
        }
        switch replies.last {
        case .array(let results):
            for r in results {
                if case .error(let e) = r { throw .server(e) }
            }
            return true
        case .null: return false
        case .error(let e): throw .server(e)
        default: throw .unexpectedReply("EXEC")
        }
    }

    static func entry(_ value: RedisValue, stream: String, deliveries: Int) throws(RedisError) -> StreamEntry {
        guard let pair = value.array, pair.count == 2, let id = pair[0].string else { throw .unexpectedReply("stream entry") }
        guard let fields = pair[1].array else {
            // Pending, but deleted from the stream (trimmed): only the id is left.
            return StreamEntry(stream: stream, id: id, payload: nil, fieldNames: [], deliveries: deliveries)
        }
        var payload: [UInt8]?
        var names: [String] = []
        var others: [String: String] = [:]
        var i = 0
        while i + 1 < fields.count {
            let name = fields[i].string ?? ""
            names.append(name)
            if name == "event", case .bulk(let b) = fields[i + 1] {
                payload = b
            } else {
                others[name] = fields[i + 1].string ?? ""
            }
            i += 2
        }
        return StreamEntry(stream: stream, id: id, payload: payload, fieldNames: names, deliveries: deliveries, otherFields: others)
    }

    static func idLess(_ a: String, _ b: String) -> Bool {
        (StreamID(a) ?? .zero) < (StreamID(b) ?? .zero)
    }
}
