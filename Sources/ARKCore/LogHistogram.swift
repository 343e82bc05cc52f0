/// A sparse log-linear histogram of durations in microseconds: 128 linear buckets below
/// 128 µs, then 128 buckets per power of two, so any recorded value is reported within
/// 0.4% (bucket midpoint). Mergeable and compact, for per-second rollups in the state store.
public struct LogHistogram: Sendable, Equatable {
    public private(set) var counts: [Int: UInt64] = [:]
    public private(set) var total: UInt64 = 0
    public private(set) var maxMicros: Double = 0

    public init() {}

    @inline(__always)
    static func index(_ micros: UInt64) -> Int {
        if micros < 128 { return Int(micros) }
        let exponent = 63 - micros.leadingZeroBitCount  // >= 7
        let shift = exponent - 7
        let sub = Int(micros >> UInt64(shift))  // 128...255
        return 128 + shift * 128 + (sub - 128)
    }

    static func bounds(_ index: Int) -> (lower: Double, upper: Double) {
        if index < 128 { return (Double(index), Double(index) + 1) }
        let shift = (index - 128) / 128
        let sub = 128 + (index - 128) % 128
        return (Double(sub << shift), Double((sub + 1) << shift))
    }

    public mutating func record(micros: Double) {
        guard micros.isFinite else { return }
        let v = micros <= 0 ? 0 : UInt64(min(micros, 1e15))
        counts[Self.index(v), default: 0] += 1
        total += 1
        if micros > maxMicros { maxMicros = micros }
    }

    public mutating func merge(_ other: LogHistogram) {
        for (k, c) in other.counts { counts[k, default: 0] += c }
        total += other.total
        maxMicros = max(maxMicros, other.maxMicros)
    }

    /// The value at quantile `q` (0...1), in microseconds; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard total > 0 else { return nil }
        let rank = max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for k in counts.keys.sorted() {
            seen += counts[k]!
            if seen >= rank {
                let (lo, hi) = Self.bounds(k)
                return min((lo + hi) / 2, maxMicros)
            }
        }
        return maxMicros
    }

    /// Little-endian pairs of (UInt16 bucket, UInt32 count), then the max as a Double.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(counts.count * 6 + 8)
        withUnsafeBytes(of: maxMicros.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        for (k, c) in counts.sorted(by: { $0.key < $1.key }) {
            withUnsafeBytes(of: UInt16(truncatingIfNeeded: k).littleEndian) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: min(c, UInt64(UInt32.max))).littleEndian) { out.append(contentsOf: $0) }
        }
        return out
    }

    public init(encoded bytes: [UInt8]) {
        guard bytes.count >= 8 else { return }
        var bits: UInt64 = 0
        for i in 0..<8 { bits |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        maxMicros = Double(bitPattern: bits)
        var i = 8
        while i + 6 <= bytes.count {
            let k = Int(bytes[i]) | Int(bytes[i + 1]) << 8
            let c = UInt64(bytes[i + 2]) | UInt64(bytes[i + 3]) << 8 | UInt64(bytes[i + 4]) << 16 | UInt64(bytes[i + 5]) << 24
            counts[k, default: 0] += c
            total += c
            i += 6
        }
    }
}
