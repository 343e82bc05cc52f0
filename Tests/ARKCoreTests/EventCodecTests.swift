import ARKCore
import Foundation
import Testing

func sampleEvent() -> Event {
    Event(
        traceID: "syn-abc-42", id: "sig-1", symbol: "AAPL", price: 190.25, volume: 1200, ts: 1_732_330_000.123,
        source: "feed \"quoted\" \\ back\nline ü", t0Ns: 1_795_421_566_000_000_123, action: "buy", positionSizePct: 0.05, leverage: 1.0,
        stopLoss: 185.0, riskRewardRatio: 2.0, intent: "hedge", injectedViolation: nil,
        hops: [
            Hop(stage: .kyle, instance: "Kyle-h-1", inNs: 1, outNs: 2),
            Hop(stage: .joey, instance: "Joey-h-2", inNs: 3, outNs: 4),
        ],
        decision: Decision(approved: false, violations: [Violation(rule: "max_leverage", severity: .critical, message: "too much", field: "leverage", value: 3, limit: 2)],
                           warnings: [Violation(rule: "min_risk_reward", severity: .low, message: "low")], rulesChecked: 11,
                           complianceScore: 0.8636363636363636, policyHash: "abc", evalNs: 1234),
        execution: Execution(status: .filled, orderID: "ord-1", side: "buy", quantity: 26.281208935611037, price: 190.25, notional: 5000, positionAfter: 26.28, realizedPnl: -1.5))
}

@Suite struct EventCodecTests {
    @Test func roundTripsEveryField() throws {
        let e = sampleEvent()
        let bytes = EventCodec.encode(e)
        #expect(try EventCodec.decode(bytes) == e)
        // Canonical: encoding the decoded event gives the same bytes.
        #expect(EventCodec.encode(try EventCodec.decode(bytes)) == bytes)
    }

    @Test func roundTripsRejection() throws {
        var e = Event(traceID: "ark-1-0", id: "ark-1-0", symbol: "", price: 0, volume: 0, ts: 0, source: "unknown", t0Ns: 5)
        e.rejection = Rejection(reasons: ["price: missing", "symbol: empty"], rawBase64: "AAE=", rawBytes: 2)
        e.hops = [Hop(stage: .kyle, instance: "k", inNs: 5, outNs: 6)]
        #expect(try EventCodec.decode(EventCodec.encode(e)) == e)
    }

    @Test func appendingAHopInPlaceEqualsReEncoding() throws {
        let hop = Hop(stage: .aletheia, instance: "Aletheia-h-9", inNs: 10, outNs: 11)
        var e = sampleEvent()
        let canonical = EventCodec.encode(e)
        let pretty = Array(String(decoding: canonical, as: UTF8.self).replacingOccurrences(of: ",\"", with: " ,\n \"").utf8)
        for payload in [canonical, pretty] {
            var layout = EventLayout()
            let decoded = try EventCodec.decode(payload, keeping: .all, layout: &layout)
            let spliced = layout.splice(payload, setting: [], appending: hop)
            var expected = decoded
            expected.hops.append(hop)
            #expect(try EventCodec.decode(spliced) == expected)
            if payload == canonical { #expect(spliced == EventCodec.encode(expected)) }
        }
        e.hops = []
        let empty = EventCodec.encode(e)
        var layout = EventLayout()
        _ = try EventCodec.decode(empty, keeping: [], layout: &layout)
        #expect(try EventCodec.decode(layout.splice(empty, setting: [], appending: hop)).hops == [hop])
    }

    @Test func canonicalFormHasFixedOrderAndNoWhitespace() {
        let text = String(decoding: EventCodec.encode(sampleEvent()), as: UTF8.self)
        #expect(text.hasPrefix("{\"trace_id\":\"syn-abc-42\",\"id\":\"sig-1\",\"symbol\":\"AAPL\",\"price\":190.25,"))
        #expect(!text.contains(": ") && !text.contains(", "))
        // Foundation agrees it is JSON.
        #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) != nil)
    }

    @Test func readsAnyKeyOrderAndWhitespace() throws {
        let json = """
            { "price" : 10.5 ,"symbol":"X", "volume": 3,
              "trace_id": "t1", "hops": [ ], "unknown": {"a": [1, {"b": null}, "s"]} }
            """
        let e = try EventCodec.decode(Array(json.utf8))
        #expect(e.traceID == "t1" && e.symbol == "X" && e.price == 10.5 && e.volume == 3)
    }

    @Test(arguments: [
        ("{\"trace_id\":\"t\",\"symbol\":\"X\",\"price\":\"1\",\"volume\":1}", "price: expected a number"),
        ("{\"trace_id\":\"t\",\"symbol\":\"X\",\"price\":1,\"price\":2,\"volume\":1}", "price: duplicate key"),
        ("{\"trace_id\":\"t\",\"symbol\":\"X\",\"volume\":1}", "price: missing"),
        ("{\"symbol\":\"X\",\"price\":1,\"volume\":1}", "trace_id: missing"),
        ("{\"trace_id\":\"t\",\"symbol\":\"X\",\"price\":NaN,\"volume\":1}", "price: not a finite number"),
        ("{\"trace_id\":\"t\",\"symbol\":\"X\",\"price\":1,\"volume\":1,\"hops\":[{\"stage\":\"Bob\"}]}", "hops.stage: unknown stage 'Bob'"),
        ("{\"trace_id\":\"t\",\"symbol\":\"X\",\"price\":1,\"volume\":1} x", "unexpected data after the top-level value"),
        ("[1]", "expected '{'"),
    ])
    func namesWhatIsWrong(json: String, message: String) {
        #expect(throws: EventDecodingError.self) { try EventCodec.decode(Array(json.utf8)) }
        do {
            _ = try EventCodec.decode(Array(json.utf8))
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test func unicodeEscapesAndSurrogates() throws {
        let json = #"{"trace_id":"t","symbol":"\u0041\u00fc\ud83d\ude00","price":1,"volume":1}"#
        #expect(try EventCodec.decode(Array(json.utf8)).symbol == "Aü😀")
        let lone = #"{"trace_id":"t","symbol":"\ud83d","price":1,"volume":1}"#
        #expect(throws: EventDecodingError.self) { try EventCodec.decode(Array(lone.utf8)) }
    }

    @Test func numbersMatchFoundationParsing() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let v: Double
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: v = Double.random(in: 0..<1_000_000, using: &rng)
            case 1: v = (Double.random(in: 0..<100_000, using: &rng) * 100).rounded() / 100
            case 2: v = Double(bitPattern: UInt64.random(in: 0..<0x7FF0_0000_0000_0000, using: &rng))
            default: v = Double(Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &rng))
            }
            let text = v.description
            let bytes = Array(text.utf8)
            let parsed = try bytes.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                return try r.readNumber().value
            }
            #expect(parsed == Double(text)!, "\(text)")
        }
    }

    @Test func overflowAndNonFiniteTokens() throws {
        func read(_ s: String) throws -> Double {
            try Array(s.utf8).withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                return try r.readNumber().value
            }
        }
        #expect(try read("1e309") == .infinity)
        #expect(try read("-Infinity") == -.infinity)
        #expect(try read("NaN").isNaN)
        #expect(try read("-0.0").sign == .minus)
        #expect(try read("123456789012345678901234567890") == 123456789012345678901234567890.0)
        #expect(throws: JSONParseError.self) { try read("01") }
        #expect(throws: JSONParseError.self) { try read("1.") }
        #expect(throws: JSONParseError.self) { try read("-") }
        #expect(throws: JSONParseError.self) { try read("1e") }
    }

    /// A quote, an escape, a control character, multi-byte and invalid UTF-8 at every offset
    /// from the start of a string up to 20 bytes in (a scanner that skips words of plain bytes
    /// was tried and measured no faster; this keeps any such scanner honest).
    @Test func aSpecialByteIsSeenAtEveryOffset() throws {
        func read(_ bytes: [UInt8]) -> Result<String, JSONParseError> {
            bytes.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                do { return .success(try r.readString()) } catch { return .failure(error as! JSONParseError) }
            }
        }
        for offset in 0..<20 {
            let pad = [UInt8](repeating: UInt8(ascii: "a"), count: offset)
            let plain = String(repeating: "a", count: offset)
            #expect(try read([0x22] + pad + [0x22] + Array("tail".utf8)).get() == plain)
            #expect(try read([0x22] + pad + Array(#"\"x"#.utf8) + [0x22]).get() == plain + "\"x")
            #expect(try read([0x22] + pad + Array("é€".utf8) + pad + [0x22]).get() == plain + "é€" + plain)
            guard case .failure(let control) = read([0x22] + pad + [0x0A] + pad + [0x22]) else { Issue.record("a raw newline read at \(offset)"); continue }
            #expect(control.message == "unescaped control character in a string" && control.offset == offset + 1)
            guard case .failure(let utf8) = read([0x22] + pad + [0xFF] + pad + [0x22]) else { Issue.record("invalid UTF-8 read at \(offset)"); continue }
            #expect(utf8.message == "invalid UTF-8 in a string")
            guard case .failure(let open) = read([0x22] + pad) else { Issue.record("an unterminated string read at \(offset)"); continue }
            #expect(open.message == "unterminated string")
        }
    }
}
