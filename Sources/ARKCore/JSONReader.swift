// A strict, allocation-light JSON reader for the hot path.

/// Why a payload is not the JSON we can read, and where.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int

    public init(_ message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(message) at byte \(offset)" }
}

/// A number token as read: its value, and whether it was written as an integer.
public struct JSONNumber: Sendable, Equatable {
    public var value: Double
    /// Set when the token had no fraction or exponent and fits an Int64.
    public var integer: Int64?
}

/// The kind of the next value, seen from its first byte.
public enum JSONValueKind: String, Sendable {
    case object, array, string, number, bool, null
}

/// A pull parser over UTF-8 bytes, made for ARK's flat messages: the caller walks an
/// object key by key and reads each value with the typed call it expects, so decoding a
/// message allocates only the strings it keeps. It reads any RFC 8259 JSON (whitespace,
/// any key order, escapes, nested values it skips) plus the bare `NaN`, `Infinity` and
/// `-Infinity` that Python's `json` writes, so a producer's non-finite number reaches
/// validation and is rejected with a reason instead of failing as a parse error.
/// Nesting is walked without recursion and capped, so a depth bomb is an error, not a
/// stack overflow.
public struct JSONReader {
    public static let maxDepth = 64

    @usableFromInline let bytes: UnsafeBufferPointer<UInt8>
    @usableFromInline var index: Int

    public init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        self.index = 0
    }

    public var offset: Int { index }

    /// The bytes read from `start` to here, as text (for a fuzzer checking a token).
    public func text(from start: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[max(0, min(start, index))..<index]), as: UTF8.self)
    }

    // MARK: structure

    @inline(__always)
    public mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    @inline(__always)
    public mutating func peekKind() throws -> JSONValueKind {
        skipWhitespace()
        guard index < bytes.count else { throw JSONParseError("unexpected end of input, expected a value", offset: index) }
        switch bytes[index] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "N"), UInt8(ascii: "I"): return .number
        default: throw JSONParseError("unexpected character '\(Self.printable(bytes[index]))'", offset: index)
        }
    }

    @inline(__always)
    mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard index < bytes.count else { throw JSONParseError("unexpected end of input, expected \(what)", offset: index) }
        guard bytes[index] == byte else {
            throw JSONParseError("expected \(what), found '\(Self.printable(bytes[index]))'", offset: index)
        }
        index += 1
    }

    public mutating func beginObject() throws { try expect(UInt8(ascii: "{"), "'{'") }
    public mutating func beginArray() throws { try expect(UInt8(ascii: "["), "'['") }

    /// Reads the next key of an object, or returns nil at its closing brace. `first` is true
    /// for the first call after `beginObject`, so commas are required exactly between members.
    @inline(__always)
    public mutating func nextKey(first: Bool) throws -> JSONString? {
        skipWhitespace()
        guard index < bytes.count else { throw JSONParseError("unexpected end of input inside an object", offset: index) }
        if bytes[index] == UInt8(ascii: "}") {
            index += 1
            return nil
        }
        if !first { try expect(UInt8(ascii: ","), "',' or '}'") }
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
            throw JSONParseError("expected a key string", offset: index)
        }
        let key = try scanString()
        try expect(UInt8(ascii: ":"), "':'")
        return key
    }

    /// Returns false at the array's closing bracket; otherwise the reader stands at the next element.
    @inline(__always)
    public mutating func nextElement(first: Bool) throws -> Bool {
        skipWhitespace()
        guard index < bytes.count else { throw JSONParseError("unexpected end of input inside an array", offset: index) }
        if bytes[index] == UInt8(ascii: "]") {
            index += 1
            return false
        }
        if !first { try expect(UInt8(ascii: ","), "',' or ']'") }
        return true
    }

    /// Requires that nothing but whitespace is left.
    public mutating func end() throws {
        skipWhitespace()
        if index != bytes.count { throw JSONParseError("unexpected data after the top-level value", offset: index) }
    }

    // MARK: strings

    /// A string token in the input: where its content is, and whether it has escapes.
    public struct JSONString {
        public let start: Int
        public let end: Int
        public let hasEscapes: Bool
    }

    /// Scans a string token, checking escapes, control characters and UTF-8 on the way.
    @inline(__always)
    mutating func scanString() throws -> JSONString {
        index += 1  // opening quote
        let start = index
        var escapes = false
        var ascii = true
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                let token = JSONString(start: start, end: index, hasEscapes: escapes)
                index += 1
                if !ascii {
                    let slice = UnsafeBufferPointer(rebasing: bytes[token.start..<token.end])
                    if String(validating: slice, as: UTF8.self) == nil {
                        throw JSONParseError("invalid UTF-8 in a string", offset: token.start)
                    }
                }
                return token
            } else if b == UInt8(ascii: "\\") {
                escapes = true
                index += 1
                guard index < bytes.count else { break }
                switch bytes[index] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 1
                case UInt8(ascii: "u"):
                    guard let unit = hexEscape(at: index - 1) else { throw JSONParseError("invalid \\u escape", offset: index) }
                    index += 5
                    // Surrogates must pair, in every string (keys and skipped values too).
                    if (0xD800...0xDBFF).contains(unit) {
                        guard let low = hexEscape(at: index), (0xDC00...0xDFFF).contains(low) else {
                            throw JSONParseError("unpaired surrogate in \\u escape", offset: index)
                        }
                        index += 6
                    } else if (0xDC00...0xDFFF).contains(unit) {
                        throw JSONParseError("unpaired surrogate in \\u escape", offset: index)
                    }
                default:
                    throw JSONParseError("invalid escape '\\\(Self.printable(bytes[index]))'", offset: index)
                }
            } else if b < 0x20 {
                throw JSONParseError("unescaped control character in a string", offset: index)
            } else {
                if b >= 0x80 { ascii = false }
                index += 1
            }
        }
        throw JSONParseError("unterminated string", offset: start - 1)
    }

    /// Reads a string value.
    public mutating func readString() throws -> String {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
            throw JSONParseError("expected a string", offset: index)
        }
        return try string(scanString())
    }

    /// The text of a scanned string token, with escapes resolved.
    public func string(_ token: JSONString) throws -> String {
        let slice = UnsafeBufferPointer(rebasing: bytes[token.start..<token.end])
        if !token.hasEscapes {
            return String(decoding: slice, as: UTF8.self)  // already validated by scanString
        }
        return try Self.unescape(slice, baseOffset: token.start)
    }

    /// True when the token's text equals `literal`. Keys with escapes are compared after unescaping.
    @inline(__always)
    public func matches(_ token: JSONString, _ literal: StaticString) -> Bool {
        if token.hasEscapes {
            guard let text = try? string(token) else { return false }
            return text == literal.description
        }
        let count = token.end - token.start
        guard count == literal.utf8CodeUnitCount else { return false }
        let lit = literal.utf8Start
        for k in 0..<count where bytes[token.start + k] != lit[k] {
            return false
        }
        return true
    }

    static func unescape(_ slice: UnsafeBufferPointer<UInt8>, baseOffset: Int) throws -> String {
        var out: [UInt8] = []
        out.reserveCapacity(slice.count)
        var i = 0
        while i < slice.count {
            let b = slice[i]
            if b != UInt8(ascii: "\\") {
                out.append(b)
                i += 1
                continue
            }
            let e = slice[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = Self.hex4(slice, i)
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard i + 5 < slice.count, slice[i] == UInt8(ascii: "\\"), slice[i + 1] == UInt8(ascii: "u") else {
                        throw JSONParseError("unpaired surrogate in \\u escape", offset: baseOffset + i)
                    }
                    let low = Self.hex4(slice, i + 2)
                    guard (0xDC00...0xDFFF).contains(low) else {
                        throw JSONParseError("unpaired surrogate in \\u escape", offset: baseOffset + i)
                    }
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw JSONParseError("unpaired surrogate in \\u escape", offset: baseOffset + i)
                }
                guard let u = Unicode.Scalar(scalar) else {
                    throw JSONParseError("invalid \\u escape", offset: baseOffset + i)
                }
                out.append(contentsOf: UTF8.encode(u)!)
            default: out.append(e)  // \" \\ \/
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The code unit of a `\\uXXXX` escape starting at `i` (the backslash), if there is one.
    @inline(__always)
    func hexEscape(at i: Int) -> UInt32? {
        guard i + 5 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { return nil }
        var v: UInt32 = 0
        for k in 2...5 {
            guard let h = Self.hexValue(bytes[i + k]) else { return nil }
            v = v << 4 | UInt32(h)
        }
        return v
    }

    static func hex4(_ s: UnsafeBufferPointer<UInt8>, _ i: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | UInt32(hexValue(s[i + k]) ?? 0) }
        return v
    }

    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func printable(_ b: UInt8) -> String {
        (0x20..<0x7F).contains(b) ? String(UnicodeScalar(b)) : "0x" + String(b, radix: 16)
    }

    // MARK: numbers and literals

    /// Reads a number, including the non-finite tokens `NaN`, `Infinity`, `-Infinity`.
    @inline(__always)
    public mutating func readNumber() throws -> JSONNumber {
        skipWhitespace()
        let start = index
        guard index < bytes.count else { throw JSONParseError("expected a number", offset: index) }
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        if matchWord("Infinity") { return JSONNumber(value: negative ? -.infinity : .infinity, integer: nil) }
        if !negative && matchWord("NaN") { return JSONNumber(value: .nan, integer: nil) }

        var mantissa: UInt64 = 0
        var digits = 0
        var significantOverflow = false
        let intStart = index
        while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 {
            if digits < 19 {
                mantissa = mantissa &* 10 &+ UInt64(bytes[index] &- UInt8(ascii: "0"))
            } else {
                significantOverflow = true
            }
            if mantissa != 0 || digits > 0 { digits += 1 }
            index += 1
        }
        let intDigits = index - intStart
        guard intDigits > 0 else { throw JSONParseError("expected a number", offset: start) }
        if intDigits > 1 && bytes[intStart] == UInt8(ascii: "0") {
            throw JSONParseError("leading zero in a number", offset: start)
        }
        var exponent = 0
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            let fracStart = index
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 {
                if digits < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(bytes[index] &- UInt8(ascii: "0"))
                    if mantissa != 0 || digits > 0 { digits += 1 }
                    exponent -= 1
                } else {
                    significantOverflow = true
                }
                index += 1
            }
            guard index > fracStart else { throw JSONParseError("expected digits after '.'", offset: index) }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            index += 1
            var expNegative = false
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                expNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            let expStart = index
            var e = 0
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 {
                if e < 100_000 { e = e * 10 + Int(bytes[index] &- UInt8(ascii: "0")) }
                index += 1
            }
            guard index > expStart else { throw JSONParseError("expected digits in the exponent", offset: index) }
            exponent += expNegative ? -e : e
        }

        // Integers of up to 19 digits (every time in nanoseconds) are exact in the mantissa,
        // and Double(UInt64) rounds correctly: no text, no strtod.
        if isInteger && !significantOverflow {
            let value = negative ? -Double(mantissa) : Double(mantissa)
            var integer: Int64? = nil
            if mantissa <= UInt64(Int64.max) {
                integer = negative ? -Int64(mantissa) : Int64(mantissa)
            } else if negative && mantissa == UInt64(Int64.max) + 1 {
                integer = .min
            }
            return JSONNumber(value: value, integer: integer)
        }
        // Clinger's fast path: an exact mantissa and a power of ten that is exact in a
        // double give a correctly rounded product. Anything else goes to strtod.
        if !significantOverflow && mantissa <= (1 << 53) && exponent >= -22 && exponent <= 22 {
            var value = Double(mantissa)
            if exponent < 0 { value /= Self.powersOfTen[-exponent] } else if exponent > 0 { value *= Self.powersOfTen[exponent] }
            if negative { value = -value }
            var integer: Int64? = nil
            if isInteger && !significantOverflow { integer = negative ? -Int64(mantissa) : Int64(mantissa) }
            return JSONNumber(value: value, integer: integer)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw JSONParseError("unreadable number", offset: start) }
        var integer: Int64? = nil
        if isInteger { integer = Int64(text) }
        return JSONNumber(value: value, integer: integer)
    }

    static let powersOfTen: [Double] = (0...22).map { k in
        var p = 1.0
        for _ in 0..<k { p *= 10 }
        return p
    }

    @inline(__always)
    mutating func matchWord(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard index + n <= bytes.count else { return false }
        let w = word.utf8Start
        for k in 0..<n where bytes[index + k] != w[k] { return false }
        index += n
        return true
    }

    public mutating func readBool() throws -> Bool {
        skipWhitespace()
        if matchWord("true") { return true }
        if matchWord("false") { return false }
        throw JSONParseError("expected true or false", offset: index)
    }

    /// Consumes a `null` if one is next.
    public mutating func readNullIfPresent() -> Bool {
        skipWhitespace()
        return matchWord("null")
    }

    /// Skips one value of any kind, checking it, without recursion.
    public mutating func skipValue() throws {
        var depth = 0
        // A stack of "in an object" flags, one per open container.
        var containers: [Bool] = []
        var first = true
        repeat {
            if !containers.isEmpty {
                // Inside a container: find the next member or element, or close it.
                let inObject = containers[containers.count - 1]
                if inObject {
                    guard try nextKey(first: first) != nil else {
                        containers.removeLast()
                        depth -= 1
                        first = false
                        continue
                    }
                } else {
                    guard try nextElement(first: first) else {
                        containers.removeLast()
                        depth -= 1
                        first = false
                        continue
                    }
                }
            }
            switch try peekKind() {
            case .object, .array:
                depth += 1
                if depth > Self.maxDepth { throw JSONParseError("nesting deeper than \(Self.maxDepth) levels", offset: index) }
                let isObject = bytes[index] == UInt8(ascii: "{")
                index += 1
                containers.append(isObject)
                first = true
                continue
            case .string: _ = try scanString()
            case .number: _ = try readNumber()
            case .bool: _ = try readBool()
            case .null:
                guard readNullIfPresent() else { throw JSONParseError("expected null", offset: index) }
            }
            first = false
        } while !containers.isEmpty
    }
}
