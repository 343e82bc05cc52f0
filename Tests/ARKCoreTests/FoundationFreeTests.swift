import ARKCore
import Foundation
import Synchronization
import Testing

/// What ARKCore does by hand so the agents load FoundationEssentials only, checked against
/// Foundation where Foundation has the same thing.
@Suite struct FoundationFreeTests {
    @Test(arguments: [Int64(0), 1_795_478_400_000_000_000 - 1, 1_795_478_400_123_456_789, 951_782_400_999_000_000, -1, -86_400_000_000_001, 4_102_444_799_999_999_999] as [Int64])
    func iso8601MatchesFoundationsFormatter(ns: Int64) {
        // The date and time to the second from Foundation; the milliseconds truncated, as a
        // clock reading should be (Foundation's formatter rounds 23:59:59.9999 up to the next day).
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        let seconds = ns / 1_000_000_000 - (ns % 1_000_000_000 < 0 ? 1 : 0)
        let millis = (ns - seconds * 1_000_000_000) / 1_000_000
        let expected = f.string(from: Date(timeIntervalSince1970: Double(seconds))).dropLast() + "." + String(1000 + millis).dropFirst() + "Z"
        #expect(iso8601(ns) == expected)
    }

    @Test func trimmedRemovesUnicodeWhitespaceAtBothEnds() {
        #expect(" \t AAPL\n".trimmed() == "AAPL")
        #expect("\u{00A0}a b\u{2003}".trimmed() == "a b")
        #expect("   ".trimmed() == "")
        #expect("".trimmed() == "")
        #expect("x".split(separator: ",").map { $0.trimmed() } == ["x"])
    }

    @Test func jsonScalarsReadsAFlatObjectAndSkipsNestedValues() throws {
        let o = try #require(JSONScalars(Array(#"{"stage":"HRM","n":42,"x":1.5,"big":1e3,"ok":true,"none":null,"nested":{"a":[1,2]},"esc":"a\"b"}"#.utf8)))
        #expect(o.string("stage") == "HRM")
        #expect(o.int64("n") == 42 && o.int("n") == 42)
        #expect(o.double("x") == 1.5 && o.int64("x") == 1)
        #expect(o.int64("big") == 1000)
        #expect(o.bool("ok") == true)
        #expect(o.members["none"] == .null && o.string("none") == nil)
        #expect(o.members["nested"] == nil)
        #expect(o.string("esc") == "a\"b")
        #expect(o.string("n") == nil && o.int64("stage") == nil && o.string("missing") == nil)
        for bad in ["", "[]", "{", #"{"a":1,}"#, #"{"a":1} x"#, "null"] {
            #expect(JSONScalars(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func quarantineEntriesRoundTripThroughTheirJSON() {
        let e = QuarantineEntry(stage: .kenny, reason: "p95 \"slow\"", sinceNs: 1_795_478_400_000_000_123)
        #expect(QuarantineEntry(json: e.json) == e)
        #expect(QuarantineEntry(json: Array(#"{"stage":"nobody"}"#.utf8)) == nil)
        #expect(QuarantineEntry(json: Array(#"{"stage":"hrm"}"#.utf8)) == QuarantineEntry(stage: .hrm, reason: "", sinceNs: 0))
    }

    @Test func sizesForOperatorsHaveOneDecimal() {
        #expect(FileSystemSpace.describe(999) == "999 B")
        #expect(FileSystemSpace.describe(1_000) == "1.0 KB")
        #expect(FileSystemSpace.describe(12_345_678) == "12.3 MB")
        #expect(FileSystemSpace.describe(999_960) == "1000.0 KB")
        #expect(FileSystemSpace.describe(2_500_000_000_000) == "2.5 TB")
    }

    @Test func aThreadRunsAndAConditionWakesItOrTimesOut() {
        let lock = ConditionLock()
        let state = Mutex<(started: Bool, go: Bool, done: Bool)>((false, false, false))
        startThread(name: "ark-test") {
            lock.lock()
            state.withLock { $0.started = true }
            lock.signal()
            while !state.withLock({ $0.go }) { lock.wait() }
            state.withLock { $0.done = true }
            lock.signal()
            lock.unlock()
        }
        lock.lock()
        while !state.withLock({ $0.started }) { lock.wait() }
        // Nobody signals: the wait ends at its deadline.
        let before = monotonicNanoseconds()
        while lock.wait(untilMonotonicNs: before + 20_000_000) {}  // (a spurious wake-up returns true)
        #expect(monotonicNanoseconds() - before >= 20_000_000)
        #expect(!state.withLock { $0.done })
        state.withLock { $0.go = true }
        lock.signal()
        while !state.withLock({ $0.done }) { lock.wait() }
        lock.unlock()
        #expect(state.withLock { $0.done })
    }
}
