// The scalar members of one flat JSON object, without Foundation.

/// The scalar members of one JSON object, by name (nested objects and arrays are skipped):
/// for the small records ARK reads whole, such as heartbeats and quarantine entries.
public struct JSONScalars: Sendable {
    public enum Value: Sendable, Equatable {
        case string(String), number(JSONNumber), bool(Bool), null
    }

    public private(set) var members: [String: Value] = [:]

    /// nil when `bytes` is not one JSON object.
    public init?(_ bytes: [UInt8]) {
        let parsed: [String: Value]? = bytes.withUnsafeBufferPointer { buf in
            var r = JSONReader(buf)
            var members: [String: Value] = [:]
            do {
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    let key = try r.string(k)
                    switch try r.peekKind() {
                    case .string: members[key] = .string(try r.readString())
                    case .number: members[key] = .number(try r.readNumber())
                    case .bool: members[key] = .bool(try r.readBool())
                    case .null: _ = r.readNullIfPresent(); members[key] = .null
                    case .object, .array: try r.skipValue()
                    }
                }
                try r.end()
                return members
            } catch {
                return nil
            }
        }
        guard let parsed else { return nil }
        members = parsed
    }

    public func string(_ key: String) -> String? {
        if case .string(let s) = members[key] { return s }
        return nil
    }

    /// A number, truncated toward zero when written with a fraction.
    public func int64(_ key: String) -> Int64? {
        guard case .number(let n) = members[key] else { return nil }
        if let i = n.integer { return i }
        return n.value.isFinite && abs(n.value) < 9.2e18 ? Int64(n.value) : nil
    }

    public func int(_ key: String) -> Int? { int64(key).map { Int($0) } }

    public func double(_ key: String) -> Double? {
        if case .number(let n) = members[key] { return n.value }
        return nil
    }

    public func bool(_ key: String) -> Bool? {
        if case .bool(let b) = members[key] { return b }
        return nil
    }
}
