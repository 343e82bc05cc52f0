// JSON documents off the hot path: sorted, pretty, and read field by typed field.

import Foundation

/// JSON off the hot path: every document ARK serves (API, console, metrics server), prints
/// (`--json`), writes to a file (`ark bench --json`) or keeps in a JSON column goes through
/// Foundation's `JSONSerialization` here, and is read back with `JSONFields`. The hot path
/// (the stages, the API's intake and answer, heartbeats) has `JSONReader`/`JSONWriter`,
/// where their cost was measured.
public enum JSONDocument {
    public enum Style: Sendable {
        /// One line: the API's answers and the store's JSON columns.
        case compact
        /// Indented, with a final newline: what operators read.
        case pretty
    }

    /// `object` (dictionaries, arrays, strings, numbers, booleans, `NSNull`) as JSON with
    /// sorted keys and slashes written as they are.
    public static func data(_ object: Any, _ style: Style = .compact) throws -> Data {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if style == .pretty { options.insert(.prettyPrinted) }
        var data = try JSONSerialization.data(withJSONObject: object, options: options)
        if style == .pretty { data.append(0x0A) }
        return data
    }

    public static func text(_ object: Any, _ style: Style = .compact) throws -> String {
        String(decoding: try data(object, style), as: UTF8.self)
    }

    /// The value `bytes` hold (fragments too), or nil when they are not JSON.
    public static func parse(_ bytes: some Sequence<UInt8>) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
    }

    public static func parse(_ text: String) -> Any? { parse(Data(text.utf8)) }

    /// The JSON object `text` holds, or nil when it is not one.
    public static func object(_ text: String) -> [String: Any]? { parse(text) as? [String: Any] }
}

/// A value one JSON field may hold, converted from what `JSONSerialization` gives.
public protocol JSONFieldValue {
    static var jsonKind: String { get }
    static func fromJSON(_ value: Any) -> Self?
}

/// A JSON object read field by field: a field absent or null is nil, a field of another
/// type is an error naming where the field is, what it should be and what it was.
public struct JSONFields {
    public struct Mismatch: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public let object: [String: Any]
    /// What the object is, for errors: "canary report", "canary report.steps[2]".
    public let context: String

    public init(_ value: Any?, _ context: String) throws(Mismatch) {
        guard let object = value as? [String: Any] else { throw Mismatch(description: "\(context): expected object, found \(jsonKind(of: value))") }
        self.object = object
        self.context = context
    }

    public init(text: String, _ context: String) throws(Mismatch) {
        guard let value = JSONDocument.parse(text) else { throw Mismatch(description: "\(context) is not JSON") }
        try self.init(value, context)
    }

    public func optional<T: JSONFieldValue>(_ key: String, as type: T.Type = T.self) throws(Mismatch) -> T? {
        guard let raw = object[key], !(raw is NSNull) else { return nil }
        guard let value = T.fromJSON(raw) else { throw Mismatch(description: "\(context).\(key): expected \(T.jsonKind), found \(jsonKind(of: raw))") }
        return value
    }

    public func required<T: JSONFieldValue>(_ key: String, as type: T.Type = T.self) throws(Mismatch) -> T {
        guard let value = try optional(key, as: type) else { throw Mismatch(description: "\(context).\(key) is missing") }
        return value
    }

    /// A nested object, nil when absent or null.
    public func object(_ key: String) throws(Mismatch) -> JSONFields? {
        guard let raw = object[key], !(raw is NSNull) else { return nil }
        return try JSONFields(raw, "\(context).\(key)")
    }

    /// A list of objects, nil when absent or null.
    public func objects(_ key: String) throws(Mismatch) -> [JSONFields]? {
        guard let raw = object[key], !(raw is NSNull) else { return nil }
        guard let list = raw as? [Any] else { throw Mismatch(description: "\(context).\(key): expected list, found \(jsonKind(of: raw))") }
        var out: [JSONFields] = []
        out.reserveCapacity(list.count)
        for (i, item) in list.enumerated() { out.append(try JSONFields(item, "\(context).\(key)[\(i)]")) }
        return out
    }
}

/// `JSONSerialization` gives booleans as `NSNumber`s whose `objCType` is `c`; they are not
/// numbers here (and numbers are not booleans).
private func isBoolean(_ n: NSNumber) -> Bool { n.objCType.pointee == CChar(UInt8(ascii: "c")) }

/// What a parsed value is, for errors.
private func jsonKind(of value: Any?) -> String {
    switch value {
    case nil, is NSNull: "nothing"
    case is String: "string"
    case let n as NSNumber: isBoolean(n) ? "boolean" : "number"
    case is [Any]: "list"
    case is [String: Any]: "object"
    default: "\(type(of: value!))"
    }
}

extension String: JSONFieldValue {
    public static var jsonKind: String { "string" }
    public static func fromJSON(_ value: Any) -> String? { value as? String }
}

extension Bool: JSONFieldValue {
    public static var jsonKind: String { "boolean" }
    public static func fromJSON(_ value: Any) -> Bool? {
        guard let n = value as? NSNumber, isBoolean(n) else { return nil }
        return n.boolValue
    }
}

extension Double: JSONFieldValue {
    public static var jsonKind: String { "number" }
    public static func fromJSON(_ value: Any) -> Double? {
        guard let n = value as? NSNumber, !isBoolean(n) else { return nil }
        return n.doubleValue
    }
}

extension Int64: JSONFieldValue {
    public static var jsonKind: String { "integer" }
    public static func fromJSON(_ value: Any) -> Int64? {
        guard let n = value as? NSNumber, !isBoolean(n), let i = value as? Int64 else { return nil }
        return i
    }
}

extension Int: JSONFieldValue {
    public static var jsonKind: String { "integer" }
    public static func fromJSON(_ value: Any) -> Int? { Int64.fromJSON(value).flatMap { Int(exactly: $0) } }
}

extension Int32: JSONFieldValue {
    public static var jsonKind: String { "32-bit integer" }
    public static func fromJSON(_ value: Any) -> Int32? { Int64.fromJSON(value).flatMap { Int32(exactly: $0) } }
}

extension Array: JSONFieldValue where Element: JSONFieldValue {
    public static var jsonKind: String { "list of \(Element.jsonKind)" }
    public static func fromJSON(_ value: Any) -> [Element]? {
        guard let list = value as? [Any] else { return nil }
        var out: [Element] = []
        out.reserveCapacity(list.count)
        for item in list {
            guard let e = Element.fromJSON(item) else { return nil }
            out.append(e)
        }
        return out
    }
}

extension Dictionary: JSONFieldValue where Key == String, Value: JSONFieldValue {
    public static var jsonKind: String { "object of \(Value.jsonKind)" }
    public static func fromJSON(_ value: Any) -> [String: Value]? {
        guard let object = value as? [String: Any] else { return nil }
        var out: [String: Value] = [:]
        for (k, v) in object {
            guard let e = Value.fromJSON(v) else { return nil }
            out[k] = e
        }
        return out
    }
}

/// A string enum is its raw value; an unknown one is a mismatch naming the ones there are.
extension JSONFieldValue where Self: RawRepresentable & CaseIterable, RawValue == String {
    public static var jsonKind: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
    public static func fromJSON(_ value: Any) -> Self? { (value as? String).flatMap(Self.init(rawValue:)) }
}
