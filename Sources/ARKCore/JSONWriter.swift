// Canonical JSON written into a byte buffer.

/// Appends canonical JSON (fixed key order chosen by the caller, no whitespace) to a byte
/// buffer. Doubles are written in Swift's shortest round-trip form, so decode(encode(x)) == x.
public struct JSONWriter {
    public var bytes: [UInt8]
    @usableFromInline var needsComma = false

    public init(capacity: Int = 512) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always)
    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    @inline(__always)
    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    @inline(__always)
    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    @inline(__always)
    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    @inline(__always)
    mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    /// Writes `"key":`; keys are ASCII literals chosen by ARK, so they need no escaping.
    @inline(__always)
    public mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes `"key":` for a key that is not a literal (log metadata), escaped.
    public mutating func key(dynamic key: String) {
        string(key)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    @inline(__always)
    public mutating func string(_ value: String) {
        separate()
        var value = value
        value.withUTF8 { utf8 in appendEscaped(utf8) }
        needsComma = true
    }

    @inline(__always)
    mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var runStart = 0
        for i in 0..<utf8.count {
            let b = utf8[i]
            guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
            if i > runStart { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
            runStart = i + 1
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            default:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            }
        }
        if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Writes a double; a non-finite value (never produced by ARK's stages) is written as null.
    @inline(__always)
    public mutating func double(_ value: Double) {
        separate()
        if value.isFinite {
            // The same digits as `description`, written straight into the buffer (see
            // DigitSink): a `String` per number was a heap allocation for any longer than 15.
            var sink = DigitSink(bytes: bytes)
            bytes = []
            value.write(to: &sink)
            bytes = sink.bytes
        } else {
            appendLiteral("null")
        }
        needsComma = true
    }

    @inline(__always)
    public mutating func int(_ value: Int64) {
        separate()
        if value >= 0 && value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
        } else {
            // Digits into a stack buffer, then one append: no String allocation.
            var v = value.magnitude
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
                var i = 20
                while v > 0 {
                    i -= 1
                    buf[i] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
                if value < 0 { bytes.append(UInt8(ascii: "-")) }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<20]))
            }
        }
        needsComma = true
    }

    @inline(__always)
    public mutating func bool(_ value: Bool) {
        separate()
        appendLiteral(value ? "true" : "false")
        needsComma = true
    }

    @inline(__always)
    public mutating func null() {
        separate()
        appendLiteral("null")
        needsComma = true
    }

    @inline(__always)
    mutating func appendLiteral(_ literal: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}

extension JSONWriter {
    /// Appends an already-encoded JSON value as it is.
    public mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
        needsComma = true
    }
}

/// Receives a number's digits from the standard library's `write(to:)`, which hands them over
/// as ASCII bytes (`_writeASCII`) from a stack buffer; `write(_:)` is only the fallback.
struct DigitSink: TextOutputStream {
    var bytes: [UInt8]

    mutating func write(_ string: String) { bytes.append(contentsOf: string.utf8) }
    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: buffer) }
}
