// A log-linear histogram of durations, mergeable and compactly encoded.

/// A sparse log-linear histogram of durations in microseconds: `2^b` linear buckets below
/// `2^b` µs, then `2^b` buckets per power of two, so a recorded value is reported within
/// 2^-(b+1) of itself (bucket midpoint). `fine` (b = 7, 0.4%) serves the SLOs; `coarse`
/// (b = 4, 3%) keeps per-stage histograms small. Mergeable and compact, for per-second
/// rollups in the state store.
public struct LogHistogram: Sendable, Equatable {
    public struct Resolution: Sendable, Equatable {
        /// log2 of the buckets per power of two.
        public let subBucketBits: Int
        public static let fine = Resolution(subBucketBits: 7)
        public static let coarse = Resolution(subBucketBits: 4)
    }

    public let resolution: Resolution
    /// Dense counts by bucket index, trimmed so the last element is non-zero: recording is
    /// one array increment (a dictionary here was a tenth of Aletheia's time), and equal
    /// histograms compare equal.
    private var buckets: [UInt64] = []
    public private(set) var total: UInt64 = 0
    public private(set) var maxMicros: Double = 0

    public init(_ resolution: Resolution = .fine) {
        self.resolution = resolution
    }

    /// The largest recordable value; a larger one is counted in its bucket.
    static let maxRecordable: UInt64 = 1_000_000_000_000_000

    @inline(__always)
    func index(_ micros: UInt64) -> Int {
        let bits = resolution.subBucketBits
        let linear = UInt64(1) << UInt64(bits)
        if micros < linear { return Int(micros) }
        let shift = 63 - micros.leadingZeroBitCount - bits
        let sub = Int(micros >> UInt64(shift))  // linear ..< 2 * linear
        return Int(linear) * (shift + 1) + (sub - Int(linear))
    }

    func bounds(_ index: Int) -> (lower: Double, upper: Double) {
        let linear = 1 << resolution.subBucketBits
        if index < linear { return (Double(index), Double(index) + 1) }
        let shift = index / linear - 1
        let sub = linear + index % linear
        return (Double(sub << shift), Double((sub + 1) << shift))
    }

    @inline(__always)
    private mutating func add(_ count: UInt64, at index: Int) {
        if index >= buckets.count { buckets.append(contentsOf: repeatElement(0, count: index + 1 - buckets.count)) }
        buckets[index] &+= count
        total &+= count
    }

    public mutating func record(micros: Double) {
        guard micros.isFinite else { return }
        let v = micros <= 0 ? 0 : UInt64(min(micros, Double(Self.maxRecordable)))
        add(1, at: index(v))
        if micros > maxMicros { maxMicros = micros }
    }

    public mutating func merge(_ other: LogHistogram) {
        precondition(other.resolution == resolution, "merging histograms of different resolutions")
        if other.buckets.count > buckets.count {
            buckets.append(contentsOf: repeatElement(0, count: other.buckets.count - buckets.count))
        }
        for (i, c) in other.buckets.enumerated() where c != 0 { buckets[i] &+= c }
        total &+= other.total
        maxMicros = max(maxMicros, other.maxMicros)
    }

    /// The same counts at another resolution: each bucket moves whole to the bucket of its
    /// lower bound.
    public func resampled(to target: Resolution) -> LogHistogram {
        var out = LogHistogram(target)
        for (k, c) in buckets.enumerated() where c != 0 {
            out.add(c, at: out.index(UInt64(bounds(k).lower)))
        }
        out.maxMicros = maxMicros
        return out
    }

    /// The value at quantile `q` (0...1), in microseconds; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard total > 0 else { return nil }
        let rank = max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for (k, c) in buckets.enumerated() where c != 0 {
            seen += c
            if seen >= rank {
                let (lo, hi) = bounds(k)
                return min((lo + hi) / 2, maxMicros)
            }
        }
        return maxMicros
    }

    /// The max as a little-endian Double, then little-endian pairs of (UInt16 bucket, UInt32
    /// count) in bucket order. The resolution is not stored: the column defines it.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    /// Appends `encoded()` to `out`: byte by byte into reserved room, since the generic
    /// `append(contentsOf:)` of each field showed in Aletheia's profile.
    public func encode(into out: inout [UInt8]) {
        var nonZero = 0
        for c in buckets where c != 0 { nonZero += 1 }
        out.reserveCapacity(out.count + 8 + 6 * nonZero)
        let bits = maxMicros.bitPattern
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        for (k, c) in buckets.enumerated() where c != 0 {
            out.append(UInt8(truncatingIfNeeded: k))
            out.append(UInt8(truncatingIfNeeded: k >> 8))
            let n = UInt32(truncatingIfNeeded: min(c, UInt64(UInt32.max)))
            out.append(UInt8(truncatingIfNeeded: n))
            out.append(UInt8(truncatingIfNeeded: n >> 8))
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            out.append(UInt8(truncatingIfNeeded: n >> 24))
        }
    }

    /// Reads `encoded()`; a bucket beyond the largest recordable value (a corrupt blob) is
    /// skipped rather than allocated.
    public init<Bytes: RandomAccessCollection>(encoded bytes: Bytes, _ resolution: Resolution = .fine)
    where Bytes.Element == UInt8, Bytes.Index == Int {
        self.init(resolution)
        let base = bytes.startIndex
        guard bytes.count >= 8 else { return }
        var bits: UInt64 = 0
        for i in 0..<8 { bits |= UInt64(bytes[base + i]) << (8 * UInt64(i)) }
        maxMicros = Double(bitPattern: bits)
        let maxIndex = index(Self.maxRecordable)
        var i = base + 8
        while i + 6 <= bytes.endIndex {
            let k = Int(bytes[i]) | Int(bytes[i + 1]) << 8
            let c = UInt64(bytes[i + 2]) | UInt64(bytes[i + 3]) << 8 | UInt64(bytes[i + 4]) << 16 | UInt64(bytes[i + 5]) << 24
            if c > 0 && k <= maxIndex { add(c, at: k) }
            i += 6
        }
    }
}
