// The canonical JSON of an event, encoded and strictly decoded.


/// Why a stage message could not be decoded. Such an entry goes to the dead letter stream
/// with this text as its reason.
public struct EventDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The wire form of `Event` between stages: one JSON object in the `event` field, keys in a
/// fixed order, no whitespace. Writing it costs one buffer and no Foundation; reading it
/// walks the bytes once (see `JSONReader`), whatever the key order or whitespace.
public enum EventCodec {
    // MARK: encode

    public static func encode(_ e: Event) -> [UInt8] {
        var w = JSONWriter(capacity: 640)
        encode(e, into: &w)
        return w.bytes
    }

    public static func encode(_ e: Event, into w: inout JSONWriter) {
        w.beginObject()
        w.key(EventKey.traceID.name); w.string(e.traceID)
        w.key(EventKey.id.name); w.string(e.id)
        if e.rejection == nil {
            w.key(EventKey.symbol.name); w.string(e.symbol)
            w.key(EventKey.price.name); w.double(e.price)
            w.key(EventKey.volume.name); w.double(e.volume)
            w.key(EventKey.ts.name); w.double(e.ts)
        }
        w.key(EventKey.source.name); w.string(e.source)
        w.key(EventKey.t0Ns.name); w.int(e.t0Ns)
        if let v = e.action { w.key(EventKey.action.name); w.string(v) }
        if let v = e.positionSizePct { w.key(EventKey.positionSizePct.name); w.double(v) }
        if let v = e.leverage { w.key(EventKey.leverage.name); w.double(v) }
        if let v = e.stopLoss { w.key(EventKey.stopLoss.name); w.double(v) }
        if let v = e.riskRewardRatio { w.key(EventKey.riskRewardRatio.name); w.double(v) }
        if let v = e.intent { w.key(EventKey.intent.name); w.string(v) }
        if let v = e.injectedViolation { w.key(EventKey.injectedViolation.name); w.string(v) }
        // Only a signal of a named account says so: the default account's messages stay as
        // DESIGN §2 has them.
        if e.account != ShardLayout.defaultAccount { w.key(EventKey.account.name); w.string(e.account) }
        // Only a canary trace says so: the baseline's messages stay as DESIGN §2 has them.
        if e.track == .canary { w.key(EventKey.track.name); w.string(Track.canary.rawValue) }
        w.key(EventKey.hops.name)
        w.beginArray()
        for h in e.hops { encode(h, into: &w) }
        w.endArray()
        if let d = e.decision {
            w.key(EventKey.decision.name)
            encode(d, into: &w)
        }
        if let x = e.execution {
            w.key(EventKey.execution.name)
            encode(x, into: &w)
        }
        if let r = e.rejection {
            w.key(EventKey.rejection.name)
            w.beginObject()
            w.key("reasons")
            w.beginArray()
            for reason in r.reasons { w.string(reason) }
            w.endArray()
            w.key("raw_b64"); w.string(r.rawBase64)
            w.key("raw_bytes"); w.int(Int64(r.rawBytes))
            w.endObject()
        }
        w.endObject()
    }

    /// An execution report on its own (Kenny keeps each order this way, keyed by trace id).
    public static func encode(_ x: Execution) -> [UInt8] {
        var w = JSONWriter(capacity: 192)
        encode(x, into: &w)
        return w.bytes
    }

    static func encode(_ x: Execution, into w: inout JSONWriter) {
        w.beginObject()
        w.key("status"); w.string(x.status.rawValue)
        if let v = x.orderID { w.key("order_id"); w.string(v) }
        if let v = x.side { w.key("side"); w.string(v) }
        w.key("quantity"); w.double(x.quantity)
        w.key("price"); w.double(x.price)
        w.key("notional"); w.double(x.notional)
        w.key("position_after"); w.double(x.positionAfter)
        w.key("realized_pnl"); w.double(x.realizedPnl)
        if !x.violations.isEmpty { w.key("violations"); encode(x.violations, into: &w) }
        if let v = x.seq { w.key("seq"); w.int(v) }
        w.endObject()
    }

    public static func decodeExecution(_ bytes: [UInt8]) throws(EventDecodingError) -> Execution {
        do {
            return try bytes.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                let x = try decodeExecution(&r)
                try r.end()
                return x
            }
        } catch let e as EventDecodingError {
            throw e
        } catch {
            throw EventDecodingError("malformed execution: \(error)")
        }
    }

    static func encode(_ d: Decision, into w: inout JSONWriter) {
        w.beginObject()
        w.key("approved"); w.bool(d.approved)
        w.key("violations"); encode(d.violations, into: &w)
        w.key("warnings"); encode(d.warnings, into: &w)
        w.key("rules_checked"); w.int(Int64(d.rulesChecked))
        w.key("compliance_score"); w.double(d.complianceScore)
        w.key("policy_hash"); w.string(d.policyHash)
        w.key("eval_ns"); w.int(d.evalNs)
        w.endObject()
    }

    static func encode(_ h: Hop, into w: inout JSONWriter) {
        w.beginObject()
        w.key("stage"); w.string(h.stage.rawValue)
        w.key("instance"); w.string(h.instance)
        w.key("in_ns"); w.int(h.inNs)
        w.key("out_ns"); w.int(h.outNs)
        w.endObject()
    }

    static func encode(_ violations: [Violation], into w: inout JSONWriter) {
        w.beginArray()
        for v in violations {
            w.beginObject()
            w.key("rule"); w.string(v.rule)
            w.key("severity"); w.string(v.severity.rawValue)
            w.key("message"); w.string(v.message)
            w.key("details")
            w.beginObject()
            if let f = v.field { w.key("field"); w.string(f) }
            if let x = v.value { w.key("value"); w.double(x) }
            if let l = v.limit { w.key("limit"); w.double(l) }
            w.endObject()
            w.endObject()
        }
        w.endArray()
    }

    // MARK: decode

    public static func decode(_ bytes: [UInt8]) throws(EventDecodingError) -> Event {
        var layout = EventLayout()
        return try decode(bytes, keeping: .all, layout: &layout)
    }

    /// Decodes what a stage needs of a message and notes where each key's value is, for
    /// `EventLayout.splice`. The parts not in `parts` are checked exactly as `decode` checks
    /// them (an entry that one stage would dead-letter, every stage dead-letters) but not
    /// kept: their strings and arrays are never made. Without `.hops` the event's `hops` is
    /// empty (`layout.hopCount` says how many there are); without `.decisionLists` its
    /// decision has no violations or warnings.
    public static func decode(_ bytes: [UInt8], keeping parts: EventParts, layout: inout EventLayout) throws(EventDecodingError) -> Event {
        do {
            return try bytes.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                let e = try decodeEvent(&r, parts: parts, layout: &layout)
                try r.end()
                return e
            }
        } catch let e as EventDecodingError {
            throw e
        } catch let e as JSONParseError {
            throw EventDecodingError("malformed event: \(e)")
        } catch {
            throw EventDecodingError("malformed event: \(error)")
        }
    }

    /// The top-level keys met so far, a bit per key number, so a duplicate is refused.
    private struct Seen {
        var bits: UInt32 = 0
        mutating func mark(_ key: EventKey) throws {
            let mask: UInt32 = 1 << key.rawValue
            if bits & mask != 0 { throw EventDecodingError("\(key.name): duplicate key") }
            bits |= mask
        }
        func has(_ key: EventKey) -> Bool { bits & (1 << key.rawValue) != 0 }
    }

    private static func decodeEvent(_ r: inout JSONReader, parts: EventParts, layout: inout EventLayout) throws -> Event {
        try r.beginObject()
        var e = Event(traceID: "", id: "", symbol: "", price: 0, volume: 0, ts: 0, source: "", t0Ns: 0)
        var seen = Seen()
        var first = true
        while let k = try r.nextKey(first: first) {
            first = false
            let before = seen.bits
            let valueStart = r.offset
            defer {
                if seen.bits != before { layout.record(key: (seen.bits ^ before).trailingZeroBitCount, from: valueStart, to: r.offset) }
            }
            if r.matches(k, EventKey.traceID.name) { try seen.mark(.traceID); e.traceID = try string(&r, EventKey.traceID.name) }
            else if r.matches(k, EventKey.id.name) { try seen.mark(.id); e.id = try string(&r, EventKey.id.name) }
            else if r.matches(k, EventKey.symbol.name) { try seen.mark(.symbol); e.symbol = try string(&r, EventKey.symbol.name) }
            else if r.matches(k, EventKey.price.name) { try seen.mark(.price); e.price = try finite(&r, EventKey.price.name) }
            else if r.matches(k, EventKey.volume.name) { try seen.mark(.volume); e.volume = try finite(&r, EventKey.volume.name) }
            else if r.matches(k, EventKey.ts.name) { try seen.mark(.ts); e.ts = try finite(&r, EventKey.ts.name) }
            else if r.matches(k, EventKey.source.name) { try seen.mark(.source); e.source = try string(&r, EventKey.source.name) }
            else if r.matches(k, EventKey.t0Ns.name) { try seen.mark(.t0Ns); e.t0Ns = try nanoseconds(&r, EventKey.t0Ns.name) }
            else if r.matches(k, EventKey.action.name) { try seen.mark(.action); e.action = try optionalString(&r, EventKey.action.name) }
            else if r.matches(k, EventKey.positionSizePct.name) { try seen.mark(.positionSizePct); e.positionSizePct = try optionalFinite(&r, EventKey.positionSizePct.name) }
            else if r.matches(k, EventKey.leverage.name) { try seen.mark(.leverage); e.leverage = try optionalFinite(&r, EventKey.leverage.name) }
            else if r.matches(k, EventKey.stopLoss.name) { try seen.mark(.stopLoss); e.stopLoss = try optionalFinite(&r, EventKey.stopLoss.name) }
            else if r.matches(k, EventKey.riskRewardRatio.name) { try seen.mark(.riskRewardRatio); e.riskRewardRatio = try optionalFinite(&r, EventKey.riskRewardRatio.name) }
            else if r.matches(k, EventKey.intent.name) { try seen.mark(.intent); e.intent = try optionalString(&r, EventKey.intent.name) }
            else if r.matches(k, EventKey.injectedViolation.name) { try seen.mark(.injectedViolation); e.injectedViolation = try optionalString(&r, EventKey.injectedViolation.name) }
            else if r.matches(k, EventKey.hops.name) {
                try seen.mark(.hops)
                e.hops = try decodeHops(&r, keep: parts.contains(.hops), count: &layout.hopCount)
                layout.hopsClose = r.offset - 1
            }
            else if r.matches(k, EventKey.decision.name) {
                try seen.mark(.decision)
                e.decision = try r.readNullIfPresent() ? nil : decodeDecision(&r, keep: parts.contains(.decision), keepLists: parts.contains(.decisionLists))
                if !parts.contains(.decision) { e.decision = nil }
            }
            else if r.matches(k, EventKey.execution.name) {
                try seen.mark(.execution)
                e.execution = try r.readNullIfPresent() ? nil : decodeExecution(&r, keep: parts.contains(.execution))
                if !parts.contains(.execution) { e.execution = nil }
            }
            else if r.matches(k, EventKey.rejection.name) {
                try seen.mark(.rejection)
                let rejection = try r.readNullIfPresent() ? nil : decodeRejection(&r, keep: parts.contains(.rejection))
                layout.rejected = rejection != nil
                e.rejection = parts.contains(.rejection) ? rejection : nil
            }
            else if r.matches(k, EventKey.account.name) { try seen.mark(.account); e.account = try string(&r, EventKey.account.name) }
            else if r.matches(k, EventKey.track.name) {
                try seen.mark(.track)
                let name = try string(&r, EventKey.track.name)
                guard let t = Track(rawValue: name) else { throw EventDecodingError("track: '\(name)' is neither baseline nor canary") }
                e.track = t
            }
            else { try r.skipValue() }
        }
        guard seen.has(.traceID), !e.traceID.isEmpty else { throw EventDecodingError("trace_id: missing") }
        if !layout.rejected {
            for key in [EventKey.symbol, .price, .volume] where !seen.has(key) {
                throw EventDecodingError("\(key.text): missing")
            }
        }
        return e
    }

    private static func decodeHops(_ r: inout JSONReader, keep: Bool, count: inout Int) throws -> [Hop] {
        var hops: [Hop] = []
        if keep { hops.reserveCapacity(5) }
        count = 0
        try r.beginArray()
        var first = true
        while try r.nextElement(first: first) {
            first = false
            try r.beginObject()
            var stage: Stage?
            var instance = ""
            var inNs: Int64 = 0
            var outNs: Int64 = 0
            var firstKey = true
            while let k = try r.nextKey(first: firstKey) {
                firstKey = false
                if r.matches(k, "stage") {
                    stage = try self.stage(&r)
                } else if r.matches(k, "instance") { instance = try string(&r, "hops.instance", keep: keep) }
                else if r.matches(k, "in_ns") { inNs = try nanoseconds(&r, "hops.in_ns") }
                else if r.matches(k, "out_ns") { outNs = try nanoseconds(&r, "hops.out_ns") }
                else { try r.skipValue() }
            }
            guard let stage else { throw EventDecodingError("hops.stage: missing") }
            count += 1
            if keep { hops.append(Hop(stage: stage, instance: instance, inNs: inNs, outNs: outNs)) }
        }
        return hops
    }

    /// A hop's stage, matched against the five names without making a string.
    private static func stage(_ r: inout JSONReader) throws -> Stage {
        guard try r.peekKind() == .string else { throw EventDecodingError("hops.stage: expected a string") }
        let token = try r.scanString()
        for s in Stage.allCases where r.matches(token, s.staticName) { return s }
        throw EventDecodingError("hops.stage: unknown stage '\(try r.string(token))'")
    }

    private static func decodeDecision(_ r: inout JSONReader, keep: Bool, keepLists: Bool) throws -> Decision {
        try r.beginObject()
        var d = Decision(approved: false, violations: [], warnings: [], rulesChecked: 0, complianceScore: 0, policyHash: "", evalNs: 0)
        var sawApproved = false
        var first = true
        while let k = try r.nextKey(first: first) {
            first = false
            if r.matches(k, "approved") {
                guard (try? r.peekKind()) == .bool else { throw EventDecodingError("decision.approved: expected true or false") }
                d.approved = try r.readBool()
                sawApproved = true
            } else if r.matches(k, "violations") { d.violations = try decodeViolations(&r, "decision.violations", keep: keep && keepLists) }
            else if r.matches(k, "warnings") { d.warnings = try decodeViolations(&r, "decision.warnings", keep: keep && keepLists) }
            else if r.matches(k, "rules_checked") { d.rulesChecked = Int(try count(&r, "decision.rules_checked")) }
            else if r.matches(k, "compliance_score") { d.complianceScore = try finite(&r, "decision.compliance_score") }
            else if r.matches(k, "policy_hash") { d.policyHash = try string(&r, "decision.policy_hash", keep: keep) }
            else if r.matches(k, "eval_ns") { d.evalNs = try nanoseconds(&r, "decision.eval_ns") }
            else { try r.skipValue() }
        }
        guard sawApproved else { throw EventDecodingError("decision.approved: missing") }
        return d
    }

    private static func decodeViolations(_ r: inout JSONReader, _ path: StaticString, keep: Bool = true) throws -> [Violation] {
        var out: [Violation] = []
        try r.beginArray()
        var first = true
        while try r.nextElement(first: first) {
            first = false
            try r.beginObject()
            var v = Violation(rule: "", severity: .critical, message: "")
            var firstKey = true
            while let k = try r.nextKey(first: firstKey) {
                firstKey = false
                if r.matches(k, "rule") { v.rule = try string(&r, path, ".rule", keep: keep) }
                else if r.matches(k, "severity") { v.severity = try severity(&r, path) }
                else if r.matches(k, "message") { v.message = try string(&r, path, ".message", keep: keep) }
                else if r.matches(k, "details") {
                    try r.beginObject()
                    var fk = true
                    while let dk = try r.nextKey(first: fk) {
                        fk = false
                        if r.matches(dk, "field") { v.field = r.readNullIfPresent() ? nil : try string(&r, path, ".details.field", keep: keep) }
                        else if r.matches(dk, "value") { v.value = try optionalFinite(&r, path, ".details.value") }
                        else if r.matches(dk, "limit") { v.limit = try optionalFinite(&r, path, ".details.limit") }
                        else { try r.skipValue() }
                    }
                } else { try r.skipValue() }
            }
            if keep { out.append(v) }
        }
        return out
    }

    private static func decodeExecution(_ r: inout JSONReader, keep: Bool = true) throws -> Execution {
        try r.beginObject()
        var x = Execution(status: .none)
        var first = true
        while let k = try r.nextKey(first: first) {
            first = false
            if r.matches(k, "status") {
                let s = try string(&r, "execution.status")
                guard let st = Execution.Status(rawValue: s) else { throw EventDecodingError("execution.status: unknown '\(s)'") }
                x.status = st
            } else if r.matches(k, "order_id") { x.orderID = r.readNullIfPresent() ? nil : try string(&r, "execution.order_id", keep: keep) }
            else if r.matches(k, "side") { x.side = r.readNullIfPresent() ? nil : try string(&r, "execution.side", keep: keep) }
            else if r.matches(k, "quantity") { x.quantity = try finite(&r, "execution.quantity") }
            else if r.matches(k, "price") { x.price = try finite(&r, "execution.price") }
            else if r.matches(k, "notional") { x.notional = try finite(&r, "execution.notional") }
            else if r.matches(k, "position_after") { x.positionAfter = try finite(&r, "execution.position_after") }
            else if r.matches(k, "realized_pnl") { x.realizedPnl = try finite(&r, "execution.realized_pnl") }
            else if r.matches(k, "violations") { x.violations = try decodeViolations(&r, "execution.violations", keep: keep) }
            else if r.matches(k, "seq") {
                guard let v = try r.readNumber().integer, v > 0 else { throw EventDecodingError("execution.seq: not a whole number ≥ 1") }
                x.seq = v
            }
            else { try r.skipValue() }
        }
        return x
    }

    private static func decodeRejection(_ r: inout JSONReader, keep: Bool = true) throws -> Rejection {
        try r.beginObject()
        var x = Rejection(reasons: [], rawBase64: "", rawBytes: 0)
        var first = true
        while let k = try r.nextKey(first: first) {
            first = false
            if r.matches(k, "reasons") {
                try r.beginArray()
                var fe = true
                while try r.nextElement(first: fe) {
                    fe = false
                    let reason = try string(&r, "rejection.reasons", keep: keep)
                    if keep { x.reasons.append(reason) }
                }
            } else if r.matches(k, "raw_b64") { x.rawBase64 = try string(&r, "rejection.raw_b64", keep: keep) }
            else if r.matches(k, "raw_bytes") { x.rawBytes = Int(try count(&r, "rejection.raw_bytes")) }
            else { try r.skipValue() }
        }
        return x
    }

    // MARK: typed values

    @inline(__always)
    private static func string(_ r: inout JSONReader, _ field: StaticString, _ suffix: StaticString = "", keep: Bool = true) throws -> String {
        guard try r.peekKind() == .string else { throw EventDecodingError("\(field)\(suffix): expected a string") }
        let token = try r.scanString()
        return keep ? try r.string(token) : ""
    }

    private static func severity(_ r: inout JSONReader, _ path: StaticString) throws -> Severity {
        guard try r.peekKind() == .string else { throw EventDecodingError("\(path).severity: expected a string") }
        let token = try r.scanString()
        for s in Severity.allCases where r.matches(token, s.staticName) { return s }
        throw EventDecodingError("\(path).severity: unknown '\(try r.string(token))'")
    }

    @inline(__always)
    private static func optionalString(_ r: inout JSONReader, _ field: StaticString) throws -> String? {
        if r.readNullIfPresent() { return nil }
        return try string(&r, field)
    }

    @inline(__always)
    private static func finite(_ r: inout JSONReader, _ field: StaticString, _ suffix: StaticString = "") throws -> Double {
        guard try r.peekKind() == .number else { throw EventDecodingError("\(field)\(suffix): expected a number") }
        let n = try r.readNumber()
        guard n.value.isFinite else { throw EventDecodingError("\(field)\(suffix): not a finite number") }
        return n.value
    }

    @inline(__always)
    private static func optionalFinite(_ r: inout JSONReader, _ field: StaticString, _ suffix: StaticString = "") throws -> Double? {
        if r.readNullIfPresent() { return nil }
        return try finite(&r, field, suffix)
    }

    @inline(__always)
    private static func int(_ r: inout JSONReader, _ field: StaticString) throws -> Int64 {
        guard try r.peekKind() == .number else { throw EventDecodingError("\(field): expected an integer") }
        guard let i = try r.readNumber().integer else { throw EventDecodingError("\(field): expected an integer") }
        return i
    }

    /// A time or duration in nanoseconds, within `plausibleNanoseconds`, so every stage can
    /// subtract two of them without overflow.
    @inline(__always)
    private static func nanoseconds(_ r: inout JSONReader, _ field: StaticString) throws -> Int64 {
        let i = try int(&r, field)
        guard plausibleNanoseconds.contains(i) else { throw EventDecodingError("\(field): \(i) is out of range (0 to 2^62 ns)") }
        return i
    }

    @inline(__always)
    private static func count(_ r: inout JSONReader, _ field: StaticString) throws -> Int64 {
        let i = try int(&r, field)
        guard i >= 0 else { throw EventDecodingError("\(field): \(i) is negative") }
        return i
    }
}
