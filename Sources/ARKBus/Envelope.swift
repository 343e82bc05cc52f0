// The wire format of an entry carrying several events, and which of an envelope's events are settled.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An entry on an internal stream carries either one event in its `event` field (as producers
/// write them) or several in its `events` field: their canonical JSON joined by newlines
/// (JSON Lines, readable with XRANGE). Canonical JSON never holds a raw newline (control
/// characters are escaped in strings), so splitting is a byte search, not a parse. Every
/// event keeps its own trace, hops, decision and outcome; the entry is only how they travel.
public enum Envelope {
    /// The field of an entry of several events.
    public static let field = "events"
    public static let separator: UInt8 = 0x0A

    /// The events of an `events` field: one per line; an empty line is an event with an empty
    /// payload (dead-lettered as undecodable, never dropped).
    public static func split(_ raw: UnsafeRawBufferPointer) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var start = 0
        let n = raw.count
        while true {
            let end: Int
            if start < n, let p = memchrIndex(raw, from: start) {
                end = p
            } else {
                end = n
            }
            out.append(Array(UnsafeRawBufferPointer(rebasing: raw[start..<end])))
            if end == n { break }
            start = end + 1
        }
        return out
    }

    private static func memchrIndex(_ raw: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard let base = raw.baseAddress else { return nil }
        guard let hit = memchr(base + from, Int32(separator), raw.count - from) else { return nil }
        return UnsafeRawPointer(hit) - base
    }
}

/// Where an event sits in the entry that carried it: its place among the entry's `count`
/// events. Nil on a `StreamEntry` read from an entry of one `event`.
public struct EnvelopeSlot: Sendable, Equatable, Hashable {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }
}

/// Which events of this consumer's partly handled envelopes are settled (committed or
/// dead-lettered): an entry is acknowledged when its last event is, and an entry read again
/// (its own pending entries, after a failure) hands over only the events still to do. Pure.
///
/// Normal batches hold whole envelopes and settle them at once: then nothing is kept here.
/// It fills only when a batch is split (a failing event, bisection, entries taken over one
/// event at a time) and empties as those entries are acknowledged.
public struct EnvelopeProgress: Sendable {
    struct Ref: Hashable {
        var stream: String
        var id: String
    }
    private var settled: [Ref: Set<Int>] = [:]
    /// Past this many partly settled entries everything is forgotten: memory stays bounded,
    /// and the cost is events handled twice (idempotent downstream), never one lost.
    static let cap = 50_000

    public init() {}

    public var isEmpty: Bool { settled.isEmpty }

    /// Whether `entry` (an event of an envelope) was settled already.
    public func isSettled(_ entry: StreamEntry) -> Bool {
        guard let slot = entry.envelope, !settled.isEmpty else { return false }
        return settled[Ref(stream: entry.stream, id: entry.id)]?.contains(slot.index) ?? false
    }

    /// The entries a commit acknowledging `acks` completes, in order, and the progress once
    /// it applied. An entry of one event is complete with it; an envelope when every one of
    /// its events is settled, by this commit or before.
    public func completing(_ acks: [StreamEntry]) -> (complete: [StreamEntry], after: EnvelopeProgress?) {
        var complete: [StreamEntry] = []
        complete.reserveCapacity(acks.count)
        var next: EnvelopeProgress?
        var i = 0
        while i < acks.count {
            let e = acks[i]
            guard let slot = e.envelope else {
                complete.append(e)
                i += 1
                continue
            }
            // The run of this entry's events in the batch (a batch keeps an envelope's events together).
            var j = i + 1
            while j < acks.count, acks[j].envelope != nil, acks[j].id == e.id, acks[j].stream == e.stream { j += 1 }
            let ref = Ref(stream: e.stream, id: e.id)
            let before = settled.isEmpty ? nil : settled[ref]
            if before == nil && j - i == slot.count && Self.coversAll(acks[i..<j]) {
                complete.append(e)  // the whole envelope, the normal case: nothing is kept
            } else {
                var done = (next ?? self).settled[ref] ?? before ?? []
                for k in i..<j { done.insert(acks[k].envelope!.index) }
                if next == nil { next = self }
                if done.count >= slot.count {
                    complete.append(e)
                    next!.settled[ref] = nil
                } else {
                    next!.settled[ref] = done
                }
            }
            i = j
        }
        if var n = next, n.settled.count > Self.cap {
            n.settled.removeAll()
            next = n
        }
        return (complete, next)
    }

    /// Whether a run of one entry's events holds each of its indices once.
    private static func coversAll(_ run: ArraySlice<StreamEntry>) -> Bool {
        var expected = 0
        for e in run {
            guard e.envelope?.index == expected else { return false }
            expected += 1
        }
        return true
    }

    /// Events before `index` of an entry taken over from a consumer that died handling its
    /// events one at a time, in order: they were settled by it.
    public mutating func settledBefore(_ index: Int, stream: String, id: String) {
        guard index > 0 else { return }
        settled[Ref(stream: stream, id: id), default: []].formUnion(0..<index)
    }
}
