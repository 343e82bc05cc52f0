// One stage's view of Redis Streams: reads, claims, and an atomic commit of outputs and
// acknowledgements.

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
    /// The event's place in its entry when the entry is an envelope (`Envelope`): each of its
    /// events is a `StreamEntry` of its own, with the entry's stream, id and deliveries.
    public var envelope: EnvelopeSlot?

    /// What attempts and deaths are counted against: the entry, or the event of an envelope.
    public var key: String {
        guard let envelope else { return id }
        return id + "/" + String(envelope.index)
    }

    public init(stream: String, id: String, payload: [UInt8]?, fieldNames: [String] = StreamEntry.eventOnly, deliveries: Int = 1, otherFields: [String: String] = [:]) {
        self.stream = stream
        self.id = id
        self.payload = payload
        self.fieldNames = fieldNames
        self.deliveries = deliveries
        self.otherFields = otherFields
    }

    /// The field names of an entry that has only `event`: one array for all of them.
    public static let eventOnly = ["event"]

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
    /// The buffer each batch's commands are written into, kept from one batch to the next.
    private var commands = RedisCommands(capacity: 64 << 10)
    private let deadLetterCounter: Counter

    /// The shard whose dead letter stream and poison records this bus writes.
    public let shard: Shard
    /// The most events one output entry carries (ARK_ENVELOPE_MAX); 1: every event an entry.
    public var envelopeMax = ARKConfig.defaultEnvelopeMax
    /// Which events of partly handled envelopes are settled.
    var progress = EnvelopeProgress()
    /// The streams producers write (Kyle's, both tracks) and the dead letters: their entries
    /// are single events, so their backlog is their entries', not counted in events.
    private let uncountedStreams: [String]

    public init(connection: RedisConnection, group: String, consumer: String, shard: Shard = .untagged) {
        self.shard = shard
        self.uncountedStreams = [shard.stream(.kyle), shard.stream(.kyle, on: .canary), shard.deadLetter]
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
        commands.removeAll()
        appendReadCommand(streams, count: count, blockMs: blockMs, history: history)
        try connection.write(commands)
        return try connection.withReply { raw throws(RedisError) in try Self.entries(fromXREADGROUP: raw, streams: streams) }
    }

    /// Reads new entries as `read` does, and runs `along` in the same round trip. Redis runs
    /// a client's commands in order, so `along` runs the moment the read returns: what it
    /// reads is as fresh as a separate request made after the read, without its round trip.
    public func read(_ streams: [String], count: Int, blockMs: Int?, along: [[RedisArg]]) throws(RedisError) -> (entries: [StreamEntry], along: [RedisValue]) {
        commands.removeAll()
        appendReadCommand(streams, count: count, blockMs: blockMs, history: false)
        for c in along { commands.append(c) }
        try connection.write(commands)
        // Every reply is read, even when the first is not what XREADGROUP promises, so the
        // connection stays in step.
        let entries = Result { () throws(RedisError) in
            try connection.withReply { raw throws(RedisError) in try Self.entries(fromXREADGROUP: raw, streams: streams) }
        }
        // A broken connection has nothing more to read: its error is the one to report.
        if case .failure(let e) = entries, e.isConnectionError { throw e }
        var replies: [RedisValue] = []
        for _ in along { replies.append(try connection.readReply()) }
        return (try entries.get(), replies)
    }

    func appendReadCommand(_ streams: [String], count: Int, blockMs: Int?, history: Bool) {
        commands.begin(arguments: 7 + (blockMs == nil ? 0 : 2) + 2 * streams.count)
        commands.arg("XREADGROUP")
        commands.arg("GROUP")
        commands.arg(group)
        commands.arg(consumer)
        commands.arg("COUNT")
        commands.arg(count)
        if let blockMs {
            commands.arg("BLOCK")
            commands.arg(blockMs)
        }
        commands.arg("STREAMS")
        for s in streams { commands.arg(s) }
        for _ in streams { commands.arg(history ? "0" : ">") }
    }

    /// The entries of an XREADGROUP reply, read from hiredis's reply without a value tree.
    /// A stream's name is taken from `streams` when it is one of them (no new string).
    static func entries(fromXREADGROUP reply: RawReply, streams: [String] = []) throws(RedisError) -> [StreamEntry] {
        if reply.isNull { return [] }
        if reply.isError { throw .server(reply.text) }
        guard reply.isArray else { throw .unexpectedReply("XREADGROUP") }
        var out: [StreamEntry] = []
        for i in 0..<reply.count {
            guard let pair = reply[i], pair.count == 2, let nameReply = pair[0], nameReply.isString, let entries = pair[1], entries.isArray else {
                throw .unexpectedReply("XREADGROUP stream item")
            }
            let name = streams.first { s in s.utf8.elementsEqual(nameReply.bytes) } ?? nameReply.text
            out.reserveCapacity(out.count + entries.count)
            for k in 0..<entries.count {
                guard let e = entries[k] else { throw .unexpectedReply("stream entry") }
                try Self.appendEntry(e, stream: name, deliveries: 1, to: &out)
            }
        }
        return out
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
        for e in entries { try Self.appendEntry(e, stream: stream, deliveries: 0, to: &out) }
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
        for e in reply.array ?? [] where e != .null { try Self.appendEntry(e, stream: stream, deliveries: 0, to: &out) }
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
    ///
    /// Counted in events: where entries may be envelopes of up to `maxEventsPerEntry`, the
    /// entries' backlog plus the shard's count of the stream's unsettled events beyond one an
    /// entry (`Shard.backlogEvents`), kept between the entries' backlog and that many times it
    /// (so a count that drifted cannot hold a stage for ever).
    public static func backlog(of stream: String, group: String, on connection: RedisConnection, maxEventsPerEntry: Int = 1) throws(RedisError) -> Int {
        let entries = try backlogEntries(of: stream, group: group, on: connection)
        guard maxEventsPerEntry > 1, entries > 0, let shard = Shard(stream: stream) else { return entries }
        let reply = try connection.command(["HGET", .text(shard.backlogEvents), .text(stream)])
        if case .error(let e) = reply { throw .server(e) }
        let extra = reply.string.flatMap { Int($0) } ?? 0
        return min(max(entries + extra, entries), entries * maxEventsPerEntry)
    }

    static func backlogEntries(of stream: String, group: String, on connection: RedisConnection) throws(RedisError) -> Int {
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

    /// Writes into `commands` the transaction that adds `outputs` to their streams, records
    /// `deadLetters` and acknowledges `complete`: MULTI, `extra` (Kenny's book), the XADDs
    /// (each stream's outputs in envelopes of up to `envelopeMax` events, in order), the
    /// dead letters, the XACKs (one per stream, in the order of stream names), the backlog
    /// counts of the streams written and of those `acks` settled events of, EXEC.
    func appendCommit(outputs: [(stream: String, payload: [UInt8])], deadLetters: [DeadLetter], acks: [StreamEntry], complete: [StreamEntry], extra: [[RedisArg]]) {
        commands.begin(arguments: 1)
        commands.arg("MULTI")
        for c in extra { commands.append(c) }
        // No MAXLEN: a stream loses only entries every group acknowledged (trimAcknowledged);
        // its size is bounded by back-pressure instead (`backlog`, StageAgent.holdingBack).
        // Outputs go to one or two streams: their distinct names by a scan, not a dictionary;
        // with each, its events beyond one an entry (`Shard.backlogEvents`).
        var written: [(stream: String, extra: Int)] = []
        for o in outputs where !written.contains(where: { $0.stream == o.stream }) { written.append((o.stream, 0)) }
        let perEntry = Swift.max(1, envelopeMax)
        for w in written.indices {
            let stream = written[w].stream
            let mine = outputs.indices.filter { outputs[$0].stream == stream }
            written[w].extra = mine.count - (mine.count + perEntry - 1) / perEntry
            var from = 0
            while from < mine.count {
                let to = min(from + perEntry, mine.count)
                commands.begin(arguments: 5)
                commands.arg("XADD")
                commands.arg(stream)
                commands.arg("*")
                if to - from == 1 {
                    commands.arg("event")
                    commands.arg(outputs[mine[from]].payload)
                } else {
                    commands.arg("events")
                    commands.arg(joining: mine[from..<to].lazy.map { outputs[$0].payload }, separator: Envelope.separator)
                }
                from = to
            }
        }
        for d in deadLetters { commands.append(deadLetterCommand(d)) }
        var streams: [String] = []
        for e in complete where !streams.contains(e.stream) { streams.append(e.stream) }
        for stream in streams.sorted() {
            var n = 0
            for e in complete where e.stream == stream { n += 1 }
            commands.begin(arguments: 3 + n)
            commands.arg("XACK")
            commands.arg(stream)
            commands.arg(group)
            for e in complete where e.stream == stream { commands.arg(e.id) }
        }
        // The events beyond one an entry that each stream gains (its envelopes written) and
        // loses (each event of an envelope settled, less one for each envelope acknowledged):
        // nothing at all where every entry is one event, as at low rates.
        var settled: [(stream: String, extra: Int)] = []
        func count(_ stream: String, _ n: Int) {
            if let k = settled.firstIndex(where: { $0.stream == stream }) { settled[k].extra += n } else { settled.append((stream, n)) }
        }
        for e in acks where e.envelope != nil { count(e.stream, 1) }
        for e in complete where e.envelope != nil { count(e.stream, -1) }
        for (stream, extra) in written + settled.map({ ($0.stream, -$0.extra) }) where extra != 0 && !uncountedStreams.contains(stream) {
            commands.begin(arguments: 4)
            commands.arg("HINCRBY")
            commands.arg(shard.backlogEvents)
            commands.arg(stream)
            commands.arg(extra)
        }
        commands.begin(arguments: 1)
        commands.arg("EXEC")
    }

    /// XADD of a payload with extra fields (a routed signal keeps the trace id it was given).
    public func addCommand(stream: String, payload: [UInt8], fields: [(String, String)] = []) -> [RedisArg] {
        var cmd: [RedisArg] = ["XADD", .text(stream), "*", "event", .bytes(payload)]
        for (k, v) in fields { cmd += [.text(k), .text(v)] }
        return cmd
    }

    /// The dead letter of an entry, or of one event of an envelope (`event_index` says which;
    /// the rest of its envelope went on).
    func deadLetterCommand(_ d: DeadLetter) -> [RedisArg] {
        var command: [RedisArg] = [
            "XADD", .text(shard.deadLetter), "*",
            "event", .bytes(d.entry.payload ?? []),
            "reason", .text(d.reason),
            "stream", .text(d.entry.stream),
            "entry_id", .text(d.entry.id),
            "group", .text(group),
            "consumer", .text(consumer),
            "deliveries", .int(d.entry.deliveries),
            "ts_ns", .text(String(wallClockNanoseconds())),
        ]
        if let slot = d.entry.envelope { command += [.text(Self.eventIndexField), .int(slot.index)] }
        return command
    }

    /// The dead letter field naming which event of an envelope it holds.
    public static let eventIndexField = "event_index"

    /// Drops the events of `entries` that are settled already (this consumer's own pending
    /// envelopes, read again after a failure): only what is still to do is handed over.
    public func unsettled(_ entries: [StreamEntry]) -> [StreamEntry] {
        progress.isEmpty ? entries : entries.filter { !progress.isSettled($0) }
    }


    /// Runs the transaction of `appendCommit` and checks it. Returns false when a WATCHed key
    /// changed and nothing was applied. The replies are checked as hiredis holds them: a
    /// batch's hundreds of entry ids are never turned into values.
    @discardableResult
    public func commit(outputs: [(stream: String, payload: [UInt8])], deadLetters: [DeadLetter], acks: [StreamEntry], extra: [[RedisArg]] = []) throws(RedisError) -> Bool {
        if outputs.isEmpty && deadLetters.isEmpty && acks.isEmpty && extra.isEmpty { return true }
        let (complete, after) = progress.completing(acks)
        commands.removeAll()
        appendCommit(outputs: outputs, deadLetters: deadLetters, acks: acks, complete: complete, extra: extra)
        try connection.write(commands)
        let applied = try Self.checkTransaction(replies: commands.count, on: connection)
        if applied {
            if let after { progress = after }
            if !deadLetters.isEmpty { deadLetterCounter.increment(by: deadLetters.count) }
        }
        return applied
    }

    /// Reads the `replies` replies of a MULTI … EXEC sent on `connection` and checks them:
    /// every one is read (so the connection stays in step) before the first error is thrown.
    /// False when EXEC answered null (a WATCHed key changed).
    static func checkTransaction(replies: Int, on connection: RedisConnection) throws(RedisError) -> Bool {
        var firstError: String?
        for _ in 0..<(replies - 1) {
            try connection.withReply { r in
                if r.isError, firstError == nil { firstError = r.text }
            }
        }
        var execError: RedisError?
        let applied = try connection.withReply { r -> Bool in
            if r.isNull { return false }
            if r.isError {
                execError = .server(r.text)
            } else if !r.isArray {
                execError = .unexpectedReply("EXEC")
            }
            for i in 0..<r.count where r[i]?.isError == true {
                if firstError == nil { firstError = r[i]!.text }
            }
            return true
        }
        // A command refused while queued says more than the EXECABORT that follows it.
        if let firstError { throw .server(firstError) }
        if let execError { throw execError }
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

    /// The events of one stream entry from hiredis's reply, appended to `out`: the entry
    /// itself when it holds one `event` (its bytes copied once), each of its events when it is
    /// an envelope.
    static func appendEntry(_ reply: RawReply, stream: String, deliveries: Int, to out: inout [StreamEntry]) throws(RedisError) {
        guard reply.count == 2, let idReply = reply[0], idReply.isString else { throw .unexpectedReply("stream entry") }
        if let fields = reply[1], fields.count == 2, let name = fields[0], let value = fields[1], value.isString {
            if name.equals("event") {
                out.append(StreamEntry(stream: stream, id: idReply.text, payload: [UInt8](value.bytes), deliveries: deliveries))
                return
            }
            if name.equals("events") {
                appendEvents(of: value.bytes, stream: stream, id: idReply.text, deliveries: deliveries, to: &out)
                return
            }
        }
        out.append(try entry(reply, stream: stream, deliveries: deliveries))
    }

    /// Each event of an envelope's `events` field, a `StreamEntry` of its own.
    static func appendEvents(of field: UnsafeRawBufferPointer, stream: String, id: String, deliveries: Int, to out: inout [StreamEntry]) {
        let events = Envelope.split(field)
        out.reserveCapacity(out.count + events.count)
        for (i, payload) in events.enumerated() {
            var e = StreamEntry(stream: stream, id: id, payload: payload, deliveries: deliveries)
            e.envelope = EnvelopeSlot(index: i, count: events.count)
            out.append(e)
        }
    }

    /// The events of one stream entry of a decoded reply (claims), appended to `out` as
    /// `appendEntry` does.
    static func appendEntry(_ value: RedisValue, stream: String, deliveries: Int, to out: inout [StreamEntry]) throws(RedisError) {
        if let pair = value.array, pair.count == 2, let id = pair[0].string, let fields = pair[1].array, fields.count == 2,
           fields[0].string == Envelope.field, case .bulk(let bytes) = fields[1] {
            bytes.withUnsafeBytes { appendEvents(of: $0, stream: stream, id: id, deliveries: deliveries, to: &out) }
            return
        }
        out.append(try entry(value, stream: stream, deliveries: deliveries))
    }

    /// One stream entry from hiredis's reply as it is: its id and fields, the `event` field's
    /// bytes copied once.
    static func entry(_ reply: RawReply, stream: String, deliveries: Int) throws(RedisError) -> StreamEntry {
        guard reply.count == 2, let idReply = reply[0], idReply.isString else { throw .unexpectedReply("stream entry") }
        let id = idReply.text
        guard let fields = reply[1], fields.isArray else {
            // Pending, but deleted from the stream (trimmed): only the id is left.
            return StreamEntry(stream: stream, id: id, payload: nil, fieldNames: [], deliveries: deliveries)
        }
        if fields.count == 2, let name = fields[0], name.equals("event"), let value = fields[1], value.isString {
            return StreamEntry(stream: stream, id: id, payload: [UInt8](value.bytes), deliveries: deliveries)
        }
        var payload: [UInt8]?
        var names: [String] = []
        var others: [String: String] = [:]
        var i = 0
        while i + 1 < fields.count {
            let name = fields[i]?.text ?? ""
            names.append(name)
            if name == "event", let v = fields[i + 1], v.isString {
                payload = [UInt8](v.bytes)
            } else {
                others[name] = fields[i + 1]?.text ?? ""
            }
            i += 2
        }
        return StreamEntry(stream: stream, id: id, payload: payload, fieldNames: names, deliveries: deliveries, otherFields: others)
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
