import ARKCore
import Testing

/// Every number that comes from outside a process (a producer's event, a stage message
/// read from Redis, a heartbeat) is range-checked before any arithmetic, so an extreme
/// value is a rejection with its reason, never an overflow trap. The validator runs on the
/// real clock, as Kyle and the API run it.
@Suite struct OutsideValuesTests {
    static let extremes = ["-9000000000000000000", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
                           "18446744073709551616", "1e308", "-1e308", "1e400", "-0", "0", "4.9e-324", "123456789012345678901234567890"]

    func signal(_ field: String, _ value: String) -> [UInt8] {
        var fields = ["\"symbol\": \"AAPL\"", "\"price\": 101.5", "\"volume\": 100"]
        fields.removeAll { $0.hasPrefix("\"\(field)\"") }
        fields.append("\"\(field)\": \(value)")
        return Array(("{" + fields.joined(separator: ", ") + "}").utf8)
    }

    @Test func theT0ThatStoppedThePipelineIsARejectionWithItsReason() {
        let outcome = SignalValidator().validate(signal("t0_ns", "-9000000000000000000"), fallbackTraceID: "ark-1-0", nowNs: wallClockNanoseconds())
        #expect(outcome.reasons == ["t0_ns: must be an integer number of nanoseconds from 0 to 2^62, got -9000000000000000000"])
    }

    @Test func aPlausibleT0IsKeptAndAFarOneIsReplacedByNow() throws {
        let now = wallClockNanoseconds()
        guard case .accepted(let e) = SignalValidator().validate(signal("t0_ns", String(now - 1_000_000)), fallbackTraceID: "t", nowNs: now) else {
            Issue.record("rejected"); return
        }
        #expect(e.t0Ns == now - 1_000_000)
        guard case .accepted(let far) = SignalValidator().validate(signal("t0_ns", "1"), fallbackTraceID: "t", nowNs: now) else {
            Issue.record("rejected"); return
        }
        #expect(far.t0Ns == now)
        // An integer written as a float is that integer, as JSON Schema reads it.
        guard case .accepted(let float) = SignalValidator().validate(signal("t0_ns", "\(Double(now & ~1023))"), fallbackTraceID: "t", nowNs: now) else {
            Issue.record("rejected"); return
        }
        #expect(float.t0Ns == now & ~1023)
        #expect(SignalValidator().validate(signal("t0_ns", "\"soon\""), fallbackTraceID: "t", nowNs: now).reasons == ["t0_ns: expected an integer, got a string"])
    }

    @Test(arguments: ["price", "volume", "ts", "t0_ns", "id", "position_size_pct", "leverage", "stop_loss", "risk_reward_ratio"])
    func everyNumericFieldTakesEveryExtremeWithoutTrapping(_ field: String) throws {
        for value in Self.extremes {
            let outcome = SignalValidator().validate(signal(field, value), fallbackTraceID: "t", nowNs: wallClockNanoseconds())
            switch outcome {
            case .accepted(let e):
                // Whatever is accepted encodes and decodes to itself, and Aletheia's latency
                // arithmetic on it cannot overflow.
                let back = try EventCodec.decode(EventCodec.encode(e))
                #expect(back.t0Ns == e.t0Ns && back.price == e.price)
                _ = elapsedNanoseconds(from: e.t0Ns, to: wallClockNanoseconds())
            case .rejected(let reasons):
                #expect(reasons.allSatisfy { $0.hasPrefix(field + ":") || $0.hasPrefix("parse:") }, "\(field)=\(value): \(reasons)")
            }
        }
    }

    @Test func stageMessagesWithTimesOutOfRangeAreDecodingErrors() {
        let base = #"{"trace_id":"t","symbol":"A","price":1,"volume":0,"t0_ns":T0,"hops":[{"stage":"Kyle","instance":"k","in_ns":IN,"out_ns":2}]}"#
        func decode(t0: String = "1", inNs: String = "1") -> String? {
            let text = base.replacingOccurrences(of: "T0", with: t0).replacingOccurrences(of: "IN", with: inNs)
            do { _ = try EventCodec.decode(Array(text.utf8)); return nil } catch { return error.message }
        }
        #expect(decode() == nil)
        #expect(decode(t0: "-9000000000000000000") == "t0_ns: -9000000000000000000 is out of range (0 to 2^62 ns)")
        #expect(decode(inNs: "9223372036854775807") == "hops.in_ns: 9223372036854775807 is out of range (0 to 2^62 ns)")
        #expect(decode(t0: "4611686018427387904") == nil)  // 2^62, the top of the range
        #expect(decode(t0: "4611686018427387905") != nil)
    }

    @Test func elapsedTimeSaturatesInsteadOfTrapping() {
        #expect(elapsedNanoseconds(from: 5, to: 7) == 2)
        #expect(elapsedNanoseconds(from: .min, to: .max) == .max)
        #expect(elapsedNanoseconds(from: .max, to: .min) == .min)
        #expect(elapsedNanoseconds(from: -9_000_000_000_000_000_000, to: wallClockNanoseconds()) == .max)
    }
}
