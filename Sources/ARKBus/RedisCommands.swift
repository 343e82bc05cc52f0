// Redis commands written in RESP2 into one buffer, sent in one write.

/// Commands written in the Redis protocol (RESP2) into one buffer, sent to Redis in one write.
/// A batch's commit is hundreds of commands; building them here costs one growing buffer,
/// where an argv per command cost three arrays and hiredis's formatting (`sdscatfmt`) a
/// fifth of a middle stage's CPU.
public struct RedisCommands {
    public private(set) var bytes: [UInt8] = []
    /// How many commands the buffer holds: how many replies they will get.
    public private(set) var count = 0

    public init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    /// Empties the buffer and keeps its memory (unless it grew past 4 MB), for the next batch.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: bytes.capacity <= 4 << 20)
        count = 0
    }

    public mutating func append(_ args: [RedisArg]) {
        begin(arguments: args.count)
        for a in args {
            switch a {
            case .text(let s): arg(s)
            case .bytes(let b): arg(b)
            }
        }
    }

    /// Starts a command of `arguments` arguments (its name counts); exactly that many `arg`
    /// calls must follow.
    @inline(__always)
    public mutating func begin(arguments: Int) {
        count += 1
        bytes.append(UInt8(ascii: "*"))
        decimal(arguments)
        crlf()
    }

    @inline(__always)
    public mutating func arg(_ literal: StaticString) {
        arg(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    @inline(__always)
    public mutating func arg(_ text: String) {
        var text = text
        text.withUTF8 { arg(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    public mutating func arg(_ payload: [UInt8]) {
        payload.withUnsafeBytes { arg($0) }
    }

    @inline(__always)
    public mutating func arg(_ value: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
            let n = Self.digits(value, into: buf)
            arg(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buf)[(20 - n)...]))
        }
    }

    /// One argument made of `parts` joined by `separator` (an envelope's events), written
    /// straight into the buffer.
    public mutating func arg<C: Collection>(joining parts: C, separator: UInt8) where C.Element == [UInt8] {
        var total = Swift.max(0, parts.count - 1)
        for p in parts { total += p.count }
        bytes.append(UInt8(ascii: "$"))
        decimal(total)
        crlf()
        var first = true
        for p in parts {
            if !first { bytes.append(separator) }
            first = false
            bytes.append(contentsOf: p)
        }
        crlf()
    }

    @inline(__always)
    public mutating func arg(_ raw: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "$"))
        decimal(raw.count)
        crlf()
        bytes.append(contentsOf: raw)
        crlf()
    }

    @inline(__always)
    mutating func crlf() {
        bytes.append(0x0D)
        bytes.append(0x0A)
    }

    @inline(__always)
    mutating func decimal(_ value: Int) {
        if value >= 0 && value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
            let n = Self.digits(value, into: buf)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buf[(20 - n)...]))
        }
    }

    /// Writes `value` in decimal at the end of a 20-byte buffer; returns how many bytes.
    @inline(__always)
    static func digits(_ value: Int, into buf: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var v = value.magnitude
        var i = 20
        repeat {
            i -= 1
            buf[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        } while v > 0
        if value < 0 {
            i -= 1
            buf[i] = UInt8(ascii: "-")
        }
        return 20 - i
    }
}
