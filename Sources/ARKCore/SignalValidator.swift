// Kyle's front door: a producer's payload checked field by field into an event or a rejection.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Kyle's front door: turns a producer's `event` payload into an `Event`, or into the list
/// of reasons it cannot be one. Pure, so every case of `shared/testdata` is tested without
/// Redis. Every reason starts with the field it is about (`price: …`), or with `parse:` /
/// `size:` for payloads that are not a readable signal at all.
public struct SignalValidator: Sendable {
    public var maxPayloadBytes: Int
    public static let maxSymbolLength = InstrumentSymbol.maxLength
    /// A symbol as sent may carry a venue, separators and look-alike characters around its
    /// canonical 16; past this it is refused before it is read.
    public static let maxRawSymbolBytes = 64
    public static let maxIDLength = 128
    public static let maxTextLength = 256
    /// As the shards route it (`ShardLayout.account(ofSignal:)`).
    public static let maxAccountLength = 128
    /// Payloads up to this many times the size limit are parsed for a more specific reason.
    static let parseBudgetFactor = 8

    /// The trace id of an entry whose producer sent none (and of every rejected entry):
    /// derived from the entry id, so a redelivered entry keeps the same trace (and so stays
    /// idempotent downstream), and the API can name it as soon as Redis took the entry.
    public static func derivedTraceID(entryID: String) -> String { "ark-" + entryID }

    /// The trace id of a signal without one that came as event `index` of an envelope entry
    /// (`ark-<entry id>-<index>`): each of its signals is a trace of its own.
    public static func derivedTraceID(entryID: String, index: Int?) -> String {
        guard let index else { return derivedTraceID(entryID: entryID) }
        return "ark-" + entryID + "-" + String(index)
    }

    public init(maxPayloadBytes: Int = 65_536) {
        self.maxPayloadBytes = maxPayloadBytes
    }

    public enum Outcome: Sendable, Equatable {
        case accepted(Event)
        case rejected([String])

        public var reasons: [String] {
            if case .rejected(let r) = self { return r }
            return []
        }
    }

    /// What a known field held, as read. Kinds are kept so a reason can say "expected a
    /// number, got a string".
    enum Field {
        case number(JSONNumber)
        case string(String)
        case other(JSONValueKind)

        var kindName: String {
            switch self {
            case .number: "a number"
            case .string: "a string"
            case .other(let k):
                switch k {
                case .object: "an object"
                case .array: "an array"
                case .bool: "a boolean"
                case .null: "null"
                case .string: "a string"
                case .number: "a number"
                }
            }
        }
    }

    /// The fields a producer may send (`EventKey.producerKeys`).
    static let knownFields: [String] = EventKey.producerKeys.map(\.text)
    /// The same names, matched against the payload's key bytes without making Strings.
    static let knownKeys: [StaticString] = EventKey.producerKeys.map(\.name)

    static let slotOf = Dictionary(uniqueKeysWithValues: knownFields.enumerated().map { ($1, $0) })

    /// What each known field held, one slot per name of `knownFields`.
    struct Fields {
        var slots = [Field?](repeating: nil, count: SignalValidator.knownFields.count)

        subscript(name: String) -> Field? {
            slots[SignalValidator.slotOf[name]!]
        }
    }

    /// Validates one payload. `fallbackTraceID` is used when the producer sent none (Kyle
    /// derives it from the stream entry id, so a redelivered entry keeps its trace id);
    /// `nowNs` stamps `t0_ns` when the producer did not.
    public func validate(_ payload: [UInt8], fallbackTraceID: String, nowNs: Int64) -> Outcome {
        guard !payload.isEmpty else { return .rejected(["parse: empty payload"]) }
        var sizeReason: String { "size: payload is \(payload.count) bytes, the limit is \(maxPayloadBytes) (ARK_MAX_SIGNAL_BYTES)" }
        // An oversized payload is still parsed when that is cheap, so a depth bomb or garbage is
        // named as such too; far beyond the limit only its size is reported.
        guard payload.count <= Self.parseBudgetFactor * maxPayloadBytes else { return .rejected([sizeReason]) }
        let oversized = payload.count > maxPayloadBytes
        var fields = Fields()
        var reasons: [String] = []
        do {
            try payload.withUnsafeBufferPointer { whole in
                // A UTF-8 byte order mark is accepted and ignored: some Windows producers write one.
                var buf = whole
                if buf.count >= 3, buf[0] == 0xEF, buf[1] == 0xBB, buf[2] == 0xBF {
                    buf = UnsafeBufferPointer(rebasing: whole[3...])
                }
                var r = JSONReader(buf)
                guard try r.peekKind() == .object else {
                    throw JSONParseError("the top-level value is not an object", offset: r.offset)
                }
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    guard let slot = Self.knownKeys.firstIndex(where: { r.matches(k, $0) }) else {
                        try r.skipValue()  // unknown fields are ignored
                        continue
                    }
                    let name = Self.knownFields[slot]
                    if fields.slots[slot] != nil {
                        reasons.append("\(name): duplicate key (ambiguous value)")
                    }
                    switch try r.peekKind() {
                    case .number: fields.slots[slot] = .number(try r.readNumber())
                    case .string: fields.slots[slot] = .string(try r.readString())
                    case let kind:
                        try r.skipValue()
                        fields.slots[slot] = .other(kind)
                    }
                }
                try r.end()
            }
        } catch let e as JSONParseError {
            return .rejected(["parse: \(e)"] + (oversized ? [sizeReason] : []))
        } catch {
            return .rejected(["parse: \(error)"] + (oversized ? [sizeReason] : []))
        }
        if oversized { return .rejected([sizeReason]) }

        var event = Event(traceID: fallbackTraceID, id: "", symbol: "", price: 0, volume: 0, ts: 0, source: "unknown", t0Ns: nowNs)

        // trace_id: optional; when present it must be a short printable token.
        switch fields["trace_id"] {
        case nil, .other(.null)?: break
        case .string(let s)?:
            if let problem = Self.tokenProblem(s, max: 64) { reasons.append("trace_id: \(problem)") } else { event.traceID = s }
        case let f?: reasons.append("trace_id: expected a string, got \(f.kindName)")
        }

        switch fields["id"] {
        case nil, .other(.null)?: event.id = event.traceID
        case .string(let s)?:
            if s.utf8.count > Self.maxIDLength { reasons.append("id: longer than \(Self.maxIDLength) bytes") }
            else if Self.hasControl(s) { reasons.append("id: contains a control character") }
            else { event.id = s }
        case .number(let n)?:
            // An integral value written as a float (12.0, 1e3) is the same integer to JSON.
            if let i = n.integer { event.id = String(i) }
            else if n.value.rounded() == n.value, abs(n.value) <= 9_007_199_254_740_991 { event.id = String(Int64(n.value)) }
            else { reasons.append("id: expected a string or an integer, got \(n.value)") }
        case let f?: reasons.append("id: expected a string, got \(f.kindName)")
        }

        switch fields["symbol"] {
        case nil: reasons.append("symbol: missing")
        case .string(let s)?:
            // The canonical instrument (see InstrumentSymbol): what every rule and the book see.
            if s.utf8.count > Self.maxRawSymbolBytes {
                reasons.append("symbol: \(s.utf8.count) bytes as sent, the limit is \(Self.maxRawSymbolBytes)")
            } else {
                do throws(InstrumentSymbol.Problem) {
                    event.symbol = try InstrumentSymbol(s).text
                } catch {
                    reasons.append("symbol: \(error.description)")
                }
            }
        case let f?: reasons.append("symbol: expected a string, got \(f.kindName)")
        }

        if let v = number(fields, "price", required: true, into: &reasons) {
            if v.isFinite && v > 0 { event.price = v } else { reasons.append("price: must be a finite number > 0, got \(Self.show(v))") }
        }
        if let v = number(fields, "volume", required: true, into: &reasons) {
            if v.isFinite && v >= 0 { event.volume = v } else { reasons.append("volume: must be a finite number >= 0, got \(Self.show(v))") }
        }
        if let v = number(fields, "ts", required: false, into: &reasons) {
            if v.isFinite && v >= 0 { event.ts = v } else { reasons.append("ts: must be a finite number of seconds >= 0, got \(Self.show(v))") }
        } else {
            event.ts = Double(nowNs) / 1e9
        }
        switch fields["source"] {
        case nil, .other(.null)?: break
        case .string(let s)?:
            if let problem = Self.textProblem(s, max: 64) { reasons.append("source: \(problem)") } else { event.source = s }
        case let f?: reasons.append("source: expected a string, got \(f.kindName)")
        }
        // A producer-stamped t0 is kept when it is within an hour of now, so the measured
        // latency includes the wait in Kyle's queue; one further off (a skewed clock) is
        // replaced by now. A value that is no time at all is a rejection.
        switch fields["t0_ns"] {
        case nil, .other(.null)?: break
        case .number(let n)?:
            // An integral value written as a float (1.0, 1e18) is the same integer to JSON.
            let integral = n.integer ?? (n.value.rounded() == n.value && abs(n.value) <= 4.6e18 ? Int64(n.value) : nil)
            if let t0 = integral, plausibleNanoseconds.contains(t0) {
                if elapsedNanoseconds(from: nowNs, to: t0).magnitude < 3_600_000_000_000 { event.t0Ns = t0 }
            } else {
                reasons.append("t0_ns: must be an integer number of nanoseconds from 0 to 2^62, got \(n.integer.map(String.init) ?? Self.show(n.value))")
            }
        case let f?: reasons.append("t0_ns: expected an integer, got \(f.kindName)")
        }

        for (name, keyPath) in Self.optionalNumbers {
            guard let v = number(fields, name, required: false, into: &reasons) else { continue }
            if v.isFinite { event[keyPath: keyPath] = v } else { reasons.append("\(name): must be a finite number, got \(Self.show(v))") }
        }
        for (name, keyPath, max) in Self.optionalTexts {
            switch fields[name] {
            case nil, .other(.null)?: break
            case .string(let s)?:
                if let problem = Self.textProblem(s, max: max) { reasons.append("\(name): \(problem)") }
                else { event[keyPath: keyPath] = name == "action" ? s.lowercased() : s }
            case let f?: reasons.append("\(name): expected a string, got \(f.kindName)")
            }
        }

        // account: optional; the book a trade is for, so a token with nothing to look alike.
        switch fields["account"] {
        case nil, .other(.null)?: break
        case .string(let s)?:
            if let problem = Self.tokenProblem(s, max: Self.maxAccountLength) { reasons.append("account: \(problem)") } else { event.account = s }
        case let f?: reasons.append("account: expected a string, got \(f.kindName)")
        }

        if !reasons.isEmpty {
            // Duplicate-key reasons are found first but belong with their field's other reasons.
            return .rejected(reasons.sorted { Self.fieldOrder($0) < Self.fieldOrder($1) })
        }
        return .accepted(event)
    }

    // Made once: built in `validate`, these lists were allocations on every signal.
    nonisolated(unsafe) static let optionalNumbers: [(String, WritableKeyPath<Event, Double?>)] = [
        ("position_size_pct", \Event.positionSizePct), ("leverage", \Event.leverage),
        ("stop_loss", \Event.stopLoss), ("risk_reward_ratio", \Event.riskRewardRatio),
    ]
    nonisolated(unsafe) static let optionalTexts: [(String, WritableKeyPath<Event, String?>, Int)] = [
        ("action", \Event.action, 32), ("intent", \Event.intent, SignalValidator.maxTextLength),
        ("injected_violation", \Event.injectedViolation, 64),
    ]

    /// Reads a numeric field; records why it is missing or of the wrong type.
    private func number(_ fields: Fields, _ name: String, required: Bool, into reasons: inout [String]) -> Double? {
        switch fields[name] {
        case nil:
            if required { reasons.append("\(name): missing") }
            return nil
        case .other(.null)?:
            if required { reasons.append("\(name): null, expected a number") }
            return nil
        case .number(let n)?: return n.value
        case let f?:
            reasons.append("\(name): expected a number, got \(f.kindName)")
            return nil
        }
    }

    private static func fieldOrder(_ reason: String) -> Int {
        let field = reason.prefix { $0 != ":" }
        return knownFields.firstIndex(of: String(field)) ?? knownFields.count
    }

    static func show(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v < 0 ? "-Infinity" : "Infinity" }
        return v.description
    }

    static func hasControl(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }

    static func textProblem(_ s: String, max: Int) -> String? {
        if s.utf8.count > max { return "longer than \(max) bytes" }
        if hasControl(s) { return "contains a control character" }
        return nil
    }

    /// A trace id as a request path gives it (percent-encoded), or nil when it is not one: the
    /// one rule of the API's and the console's trace routes.
    public static func traceID(fromPath raw: String) -> String? {
        guard let id = percentDecoded(raw) else { return nil }
        return tokenProblem(id, max: maxIDLength) == nil ? id : nil
    }

    /// `%XX` sequences decoded (RFC 3986 §2.1); nil for a broken one or bytes that are not UTF-8.
    static func percentDecoded(_ s: String) -> String? {
        let bytes = Array(s.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return s }
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 0x30...0x39: b - 0x30
            case 0x41...0x46: b - 0x41 + 10
            case 0x61...0x66: b - 0x61 + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let high = hex(bytes[i + 1]), let low = hex(bytes[i + 2]) else { return nil }
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    public static func tokenProblem(_ s: String, max: Int) -> String? {
        if s.isEmpty { return "empty" }
        if s.utf8.count > max { return "longer than \(max) bytes" }
        let ok = s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: ":")
        }
        return ok ? nil : "only letters, digits and - _ . : are allowed"
    }

    /// The rejection record for a payload: reasons, and the payload itself (cut to
    /// `Rejection.maxRawBytes`, with its full size) so nothing a producer sent is lost from view.
    public static func rejection(_ reasons: [String], payload: [UInt8]) -> Rejection {
        let kept = payload.prefix(Rejection.maxRawBytes)
        return Rejection(reasons: reasons, rawBase64: Data(kept).base64EncodedString(), rawBytes: payload.count)
    }
}
