// The event's key table, and where a message's values are so a stage can splice in its own.

/// The parts of a message a stage may leave undecoded (checked, not kept).
public struct EventParts: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let hops = EventParts(rawValue: 1)
    public static let decision = EventParts(rawValue: 2)
    /// The decision's violations and warnings (with `.decision`).
    public static let decisionLists = EventParts(rawValue: 4)
    public static let execution = EventParts(rawValue: 8)
    public static let rejection = EventParts(rawValue: 16)
    public static let all: EventParts = [.hops, .decision, .decisionLists, .execution, .rejection]
}

/// The top-level keys of a message, in the order the canonical encoder writes them.
public enum EventKey: Int, CaseIterable, Sendable {
    // Raw values are the decoder's key numbers (its duplicate check), not the order.
    case traceID = 0, id, symbol, price, volume, ts, source, t0Ns, action, positionSizePct, leverage, stopLoss,
        riskRewardRatio, intent, injectedViolation, hops, decision, execution, rejection, track, account

    public var name: StaticString {
        switch self {
        case .traceID: "trace_id"
        case .id: "id"
        case .symbol: "symbol"
        case .price: "price"
        case .volume: "volume"
        case .ts: "ts"
        case .source: "source"
        case .t0Ns: "t0_ns"
        case .action: "action"
        case .positionSizePct: "position_size_pct"
        case .leverage: "leverage"
        case .stopLoss: "stop_loss"
        case .riskRewardRatio: "risk_reward_ratio"
        case .intent: "intent"
        case .injectedViolation: "injected_violation"
        case .hops: "hops"
        case .decision: "decision"
        case .execution: "execution"
        case .rejection: "rejection"
        case .track: "track"
        case .account: "account"
        }
    }

    /// The name as a String.
    public var text: String { name.description }

    /// The keys a producer may send, in key-number order: what Kyle accepts. The others
    /// (hops, decision, execution, rejection, track) are the stages' own additions.
    public static let producerKeys: [EventKey] = allCases.filter { ![.hops, .decision, .execution, .rejection, .track].contains($0) }

    /// Position in the canonical form (`EventCodec.encode`): `account` and `track` sit before
    /// `hops`.
    var rank: Int {
        switch self {
        case .account: 15
        case .track: 16
        case .hops, .decision, .execution, .rejection: rawValue + 2
        default: rawValue
        }
    }

    static let count = 21
}

/// Where a message's top-level values are, as the decoder found them, so a stage can change
/// a few values and add its hop to the bytes it received instead of decoding every value and
/// encoding the event again: a middle stage's output is its input with its additions spliced
/// in. On a message in canonical form the result is byte for byte what encoding the changed
/// event would give (`EventLayoutTests`); on any other form it decodes to the same event.
public struct EventLayout {
    var starts = InlineArray<21, Int>(repeating: -1)
    var ends = InlineArray<21, Int>(repeating: -1)
    /// Where the `hops` array's closing bracket is; nil without a `hops` key.
    public internal(set) var hopsClose: Int?
    /// How many hops the message has (also when they were not kept).
    public internal(set) var hopCount = 0
    /// Whether the message carries a rejection (also when it was not kept).
    public internal(set) var rejected = false

    public init() {}

    mutating func record(key: Int, from start: Int, to end: Int) {
        guard key < EventKey.count else { return }
        starts[key] = start
        ends[key] = end
    }

    public func has(_ key: EventKey) -> Bool { starts[key.rawValue] >= 0 }

    /// `payload` (the message this layout was read from) with each of `values` set (an
    /// existing value replaced, a missing key inserted where the canonical form has it) and
    /// `hop` appended to the hops (a `hops` key made when there is none). Each value is the
    /// JSON of one value, written by `JSONWriter`; `hops` is not one of them.
    public func splice(_ payload: [UInt8], setting values: [(key: EventKey, json: [UInt8])], appending hop: Hop) -> [UInt8] {
        precondition(!values.contains { $0.key == .hops }, "hops are appended, not set")
        // Each edit: replace payload[at..<until] with its bytes. Sorted by position, then by
        // canonical rank, so keys inserted at one place come out in canonical order.
        var edits: [(at: Int, until: Int, rank: Int, bytes: [UInt8])] = []
        edits.reserveCapacity(values.count + 1)
        var extra = 0
        for (key, json) in values {
            if has(key) {
                edits.append((starts[key.rawValue], ends[key.rawValue], key.rank, json))
            } else {
                var w = JSONWriter(capacity: json.count + 24)
                w.bytes.append(UInt8(ascii: ","))
                w.key(key.name)
                w.bytes.append(contentsOf: json)
                edits.append((insertionPoint(for: key), -1, key.rank, w.bytes))
            }
            extra += edits[edits.count - 1].bytes.count
        }
        var w = JSONWriter(capacity: 96)
        if let hopsClose {
            if hopCount > 0 { w.bytes.append(UInt8(ascii: ",")) }
            EventCodec.encode(hop, into: &w)
            edits.append((hopsClose, -1, EventKey.hops.rank, w.bytes))
        } else {
            w.bytes.append(UInt8(ascii: ","))
            w.key(EventKey.hops.name)
            w.beginArray()
            EventCodec.encode(hop, into: &w)
            w.endArray()
            edits.append((insertionPoint(for: .hops), -1, EventKey.hops.rank, w.bytes))
        }
        extra += w.bytes.count
        edits.sort { ($0.at, $0.rank) < ($1.at, $1.rank) }

        var out: [UInt8] = []
        out.reserveCapacity(payload.count + extra)
        var from = 0
        for e in edits {
            out.append(contentsOf: payload[from..<e.at])
            out.append(contentsOf: e.bytes)
            from = e.until >= 0 ? e.until : e.at
        }
        out.append(contentsOf: payload[from...])
        return out
    }

    /// Where a missing key goes: after the value of the nearest key before it in canonical
    /// order that the message has (`trace_id` at least, which every message has).
    func insertionPoint(for key: EventKey) -> Int {
        var best: (rank: Int, end: Int)?
        for k in EventKey.allCases where k.rank < key.rank && has(k) {
            if best == nil || k.rank > best!.rank { best = (k.rank, ends[k.rawValue]) }
        }
        return best?.end ?? ends[EventKey.traceID.rawValue]
    }
}

extension EventCodec {
    /// One value's JSON, as the canonical encoder writes it (an execution: `encode(_:)`).
    public static func json(_ value: Double) -> [UInt8] {
        var w = JSONWriter(capacity: 24)
        w.double(value)
        return w.bytes
    }

    public static func json(_ value: String) -> [UInt8] {
        var w = JSONWriter(capacity: value.utf8.count + 2)
        w.string(value)
        return w.bytes
    }

    public static func json(_ d: Decision) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        encode(d, into: &w)
        return w.bytes
    }
}
