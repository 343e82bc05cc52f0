import ARKCore
import Foundation
import Testing

/// Mutation fuzzing of the decoders: truncations, byte flips, insertions, deletions,
/// swapped chunks, huge strings and depth bombs must never crash, and whatever the fast
/// decoder accepts, Foundation must read as the same values.
@Suite struct CodecFuzzTests {
    static let seedInputs: [[UInt8]] = [
        EventCodec.encode(sampleEvent()),
        Array(#"{"id": "sig-1", "symbol": " aapl", "price": 190.25, "volume": 1200, "ts": 1732330000.123, "source": "feed", "stop_loss": 185.0, "trace_id": "x"}"#.utf8),
        Array(#"{"trace_id":"t","symbol":"A\u00fc\n","price":1e3,"volume":0,"hops":[{"stage":"Kyle","instance":"k","in_ns":1,"out_ns":2}]}"#.utf8),
    ]

    static let interesting: [[UInt8]] = ["\"", "\\", "{", "}", "[", "]", ",", ":", "NaN", "Infinity", "-", "1e999", "\\u", "\\ud800", "null", "true", "\u{0}", "\u{FF}", " "].map { Array($0.utf8) } + [[0xFF], [0xC3], [0xE2, 0x82]]

    func mutate(_ input: [UInt8], _ rng: inout SystemRandomNumberGenerator) -> [UInt8] {
        var b = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            guard !b.isEmpty else { break }
            let i = Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: b = Array(b[..<i])
            case 1: b[i] = UInt8.random(in: 0...255, using: &rng)
            case 2: b.insert(contentsOf: Self.interesting.randomElement(using: &rng)!, at: i)
            case 3: b.remove(at: i)
            case 4:
                let j = Int.random(in: i..<b.count, using: &rng)
                b.replaceSubrange(i..<j, with: b[i..<j].reversed())
            default: b.insert(contentsOf: b[i..<min(b.count, i + 16)], at: i)
            }
        }
        return b
    }

    @Test func mutatedMessagesNeverCrashAndAgreeWithFoundation() {
        var rng = SystemRandomNumberGenerator()
        let validator = SignalValidator()
        var accepted = 0
        for n in 0..<30_000 {
            let input = mutate(Self.seedInputs[n % Self.seedInputs.count], &rng)
            if let e = try? EventCodec.decode(input) {
                accepted += 1
                // Non-finite numbers are read on purpose, as Python's json reads them: bare NaN and
                // Infinity, and literals beyond a double's range (1e999 is infinity). Foundation
                // refuses both, so it is no oracle for them. Known fields still reject them.
                let text = String(decoding: input, as: UTF8.self)
                if text.contains("NaN") || text.contains("Infinity") { continue }
                if text.range(of: "[0-9][eE][+-]?[0-9]{3,}", options: .regularExpression) != nil { continue }
                // Whatever we accept must be JSON Foundation reads with the same values.
                let object = try? JSONSerialization.jsonObject(with: Data(input)) as? [String: Any]
                #expect(object != nil, "accepted non-JSON: \(input)")
                if let object {
                    #expect(object["trace_id"] as? String == e.traceID)
                    #expect((object["price"] as? NSNumber)?.doubleValue == e.price)
                    #expect(object["symbol"] as? String == e.symbol)
                }
            }
            _ = validator.validate(input, fallbackTraceID: "t", nowNs: 0)
        }
        #expect(accepted > 0)
    }

    @Test func hugeAndDeepInputsAreRefusedCleanly() {
        let deep = Array(("{\"trace_id\":\"t\",\"meta\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}").utf8)
        #expect(throws: EventDecodingError.self) { try EventCodec.decode(deep) }
        let huge = Array(("{\"trace_id\":\"t\",\"symbol\":\"" + String(repeating: "x", count: 5_000_000) + "\",\"price\":1,\"volume\":1}").utf8)
        #expect((try? EventCodec.decode(huge))?.symbol.count == 5_000_000)
        let v = SignalValidator(maxPayloadBytes: 65_536)
        #expect(v.validate(huge, fallbackTraceID: "t", nowNs: 0).reasons.first?.hasPrefix("size:") == true)
        #expect(v.validate(Array(deep.prefix(60_000)), fallbackTraceID: "t", nowNs: 0).reasons.first?.hasPrefix("parse:") == true)
    }

    @Test func randomBytesNeverCrash() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let bytes = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? EventCodec.decode(bytes)
            _ = SignalValidator().validate(bytes, fallbackTraceID: "t", nowNs: 0)
        }
    }
}
