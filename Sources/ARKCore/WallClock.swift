// Wall-clock and monotonic time, ISO 8601 dates and thread sleeps, without Foundation.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds since the Unix epoch. Hop times are compared across processes on one host,
/// so they come from the real-time clock, not a monotonic one.
@inline(__always)
public func wallClockNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// The nanosecond times and durations ARK takes from a message or a record: from the epoch
/// to 2^62 ns (the year 2116). The difference of any two such values fits an Int64, so a time
/// that comes from outside can never trap the arithmetic that measures latency with it.
public let plausibleNanoseconds: ClosedRange<Int64> = 0...(1 << 62)

/// `later - earlier`, clamped to what an Int64 holds instead of trapping: for times read
/// back from a store or a heartbeat that anyone with write access could have edited.
@inline(__always)
public func elapsedNanoseconds(from earlier: Int64, to later: Int64) -> Int64 {
    let (d, overflow) = later.subtractingReportingOverflow(earlier)
    return overflow ? (later < earlier ? .min : .max) : d
}

/// Monotonic nanoseconds, for measuring durations inside one process.
@inline(__always)
public func monotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// A nanosecond timestamp as RFC 3339 in UTC with milliseconds (`2026-11-23T12:50:00.123Z`),
/// as the HTTP servers and the JSON logs show times. Formatted by hand: Foundation's
/// formatters live in FoundationInternationalization, which the agents do not load.
public func iso8601(_ ns: Int64) -> String {
    var seconds = time_t(ns.floorDivided(by: 1_000_000_000))
    let millis = Int(ns - Int64(seconds) * 1_000_000_000) / 1_000_000
    var t = tm()
    gmtime_r(&seconds, &t)
    var s = ""
    s.reserveCapacity(24)
    s += zeroPadded(Int(t.tm_year) + 1900, 4) + "-" + zeroPadded(Int(t.tm_mon) + 1, 2) + "-" + zeroPadded(Int(t.tm_mday), 2)
    s += "T" + zeroPadded(Int(t.tm_hour), 2) + ":" + zeroPadded(Int(t.tm_min), 2) + ":" + zeroPadded(Int(t.tm_sec), 2)
    s += "." + zeroPadded(millis, 3) + "Z"
    return s
}

/// `value` in decimal, with leading zeros up to `width` digits.
public func zeroPadded(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

extension Int64 {
    /// Division rounding towards negative infinity (times before 1970 stay well formed).
    func floorDivided(by d: Int64) -> Int64 {
        let q = self / d
        return (self % d < 0) ? q - 1 : q
    }
}

/// Blocks the calling thread for `seconds` (for fault injection and back-off on threads
/// that are not Swift tasks).
public func sleepThread(seconds: Double) {
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
