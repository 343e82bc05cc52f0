// The digest that tells a resent trace from a different one under the same id.

/// What the intake compares when a trace id comes back: the signal's JSON with every object's
/// keys sorted (by their unescaped text), numbers by value (`50`, `50.0` and `5e1` alike) and
/// no whitespace outside strings, hashed. A producer that re-serialises the same signal
/// (another key order, other spacing, another float formatter) sends the same content; any
/// change of a value or a key is other content.
public enum ContentDigest {
    /// Hex SHA-256 of `canonical(json)`; nil when `json` is not one JSON value.
    public static func of(_ json: [UInt8]) -> String? {
        guard let c = canonical(json) else { return nil }
        return SHA256.hexDigest(c)
    }

    public static func canonical(_ json: [UInt8]) -> [UInt8]? {
        json.withUnsafeBufferPointer { buf -> [UInt8]? in
            var r = JSONReader(buf)
            var w = JSONWriter(capacity: json.count)
            do {
                try value(&r, buf, into: &w, depth: 0)
                try r.end()
                return w.bytes
            } catch {
                return nil
            }
        }
    }

    struct TooDeep: Error {}

    private static func value(_ r: inout JSONReader, _ buf: UnsafeBufferPointer<UInt8>, into w: inout JSONWriter, depth: Int) throws {
        guard depth < 64 else { throw TooDeep() }
        switch try r.peekKind() {
        case .object:
            try r.beginObject()
            var members: [(key: String, value: [UInt8])] = []
            var first = true
            while let k = try r.nextKey(first: first) {
                first = false
                var inner = JSONWriter(capacity: 32)
                try value(&r, buf, into: &inner, depth: depth + 1)
                members.append((try r.string(k), inner.bytes))
            }
            w.beginObject()
            for m in members.sorted(by: { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }) {
                w.key(dynamic: m.key)
                w.raw(m.value)
            }
            w.endObject()
        case .array:
            try r.beginArray()
            w.beginArray()
            var first = true
            while try r.nextElement(first: first) {
                first = false
                var inner = JSONWriter(capacity: 32)
                try value(&r, buf, into: &inner, depth: depth + 1)
                w.raw(inner.bytes)
            }
            w.endArray()
        case .number:
            r.skipWhitespace()
            let start = r.offset
            let v = try r.readNumber().value
            // NaN, Infinity and overflows as written: the writer would make them all null.
            if v.isFinite { w.double(v) } else { w.raw(Array(buf[start..<r.offset])) }
        case .string, .bool, .null:
            r.skipWhitespace()
            let start = r.offset
            try r.skipValue()
            w.raw(Array(buf[start..<r.offset]))
        }
    }
}
