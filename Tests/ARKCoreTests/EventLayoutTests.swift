import ARKCore
import Foundation
import Testing

/// A middle stage forwards its input's bytes with its additions spliced in. On Kyle's
/// canonical output that must be byte for byte the encoding of the changed event (so the
/// audited record is what a full re-encoding would have written), and on any other form of
/// the same message it must decode to the changed event.
@Suite struct EventLayoutTests {
    /// Events with every combination the pipeline makes: optional proposal fields present or
    /// not, none to four hops, a decision and an execution or not, the canary track, strings
    /// that need escaping, a rejection.
    static func randomEvent(_ rng: inout SplitMix64) -> Event {
        func maybe<T>(_ v: @autoclosure () -> T) -> T? { Bool.random(using: &rng) ? v() : nil }
        var e = Event(traceID: "t-\(rng.next() % 1_000_000)", id: "sig \"\(rng.next() % 100)\"", symbol: ["AAPL", "MSFT", "ü-X"].randomElement(using: &rng)!,
                      price: Double(rng.next() % 100_000) / 100, volume: Double(rng.next() % 10_000), ts: 1_733_150_000 + Double(rng.next() % 1_000_000) / 1_000_000,
                      source: ["feed", "line\nbreak", "bench"].randomElement(using: &rng)!, t0Ns: Int64(rng.next() % (1 << 62)))
        e.action = maybe(["buy", "sell", "hold"].randomElement(using: &rng)!)
        e.positionSizePct = maybe(Double(rng.next() % 1000) / 10_000)
        e.leverage = maybe(Double(rng.next() % 40) / 10)
        e.stopLoss = maybe(Double(rng.next() % 100_000) / 100)
        e.riskRewardRatio = maybe(Double(rng.next() % 50) / 10)
        e.intent = maybe("hedge")
        e.injectedViolation = maybe("max_leverage")
        if rng.next() % 4 == 0 { e.track = .canary }
        let stages: [Stage] = [.kyle, .joey, .hrm, .kenny]
        for s in stages.prefix(Int(rng.next() % 5)) {
            e.hops.append(Hop(stage: s, instance: "\(s.rawValue)-h-\(rng.next() % 99_999)", inNs: Int64(rng.next() % (1 << 61)), outNs: Int64(rng.next() % (1 << 61))))
        }
        if Bool.random(using: &rng) { e.decision = decision(&rng) }
        if Bool.random(using: &rng) { e.execution = Execution(status: .filled, orderID: "ord-\(e.traceID)", side: "buy", quantity: 3.25, price: e.price, notional: 3.25 * e.price) }
        if rng.next() % 8 == 0 {
            e.rejection = Rejection(reasons: ["price: missing"], rawBase64: "AAE=", rawBytes: 2)
            e.decision = nil
            e.execution = nil
        }
        return e
    }

    static func decision(_ rng: inout SplitMix64) -> Decision {
        let approved = Bool.random(using: &rng)
        let violations = approved ? [] : [Violation(rule: "max_leverage", severity: .critical, message: "leverage 5.0 over \"2.0\"", field: "leverage", value: 5, limit: 2)]
        return Decision(approved: approved, violations: violations, warnings: [Violation(rule: "min_risk_reward", severity: .low, message: "low")],
                        rulesChecked: 9, complianceScore: 0.875, policyHash: "abc\(rng.next() % 10)", evalNs: Int64(rng.next() % 100_000))
    }

    /// The same message with whitespace everywhere and its keys in reverse order.
    static func scrambled(_ canonical: [UInt8]) throws -> [UInt8] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(canonical)) as? [String: Any])
        var text = "{\n"
        for (i, key) in object.keys.sorted().reversed().enumerated() {
            let value = try JSONSerialization.data(withJSONObject: object[key]!, options: [.fragmentsAllowed, .prettyPrinted])
            text += (i > 0 ? " ,\n  " : "  ") + "\"\(key)\" :  " + String(decoding: value, as: UTF8.self)
        }
        return Array((text + "\n}").utf8)
    }

    /// What each stage sets, as the stages set it.
    static func changes(_ rng: inout SplitMix64, _ e: inout Event) -> [(key: EventKey, json: [UInt8])] {
        switch rng.next() % 4 {
        case 0:  // Joey: fills what the producer left out
            var set: [(key: EventKey, json: [UInt8])] = []
            if e.action == nil { e.action = "buy"; set.append((.action, EventCodec.json("buy"))) }
            if e.positionSizePct == nil { e.positionSizePct = 0.025; set.append((.positionSizePct, EventCodec.json(0.025))) }
            if e.leverage == nil { e.leverage = 1; set.append((.leverage, EventCodec.json(1.0))) }
            if e.riskRewardRatio == nil { e.riskRewardRatio = 2; set.append((.riskRewardRatio, EventCodec.json(2.0))) }
            return set
        case 1:  // HRM: a decision, new or replacing one already there
            let d = decision(&rng)
            e.decision = d
            return [(.decision, EventCodec.json(d))]
        case 2:  // Kenny: an execution
            let x = Execution(status: .limited, side: e.action, violations: [Violation(rule: "max_position", severity: .high, message: "at execution")])
            e.execution = x
            return [(.execution, EventCodec.encode(x))]
        default:  // Aletheia: the hop only; or a forced size replacing a given one
            if e.positionSizePct != nil {
                e.positionSizePct = 0.5
                return [(.positionSizePct, EventCodec.json(0.5))]
            }
            return []
        }
    }

    @Test func aSpliceIsTheCanonicalEncodingOfTheChangedEvent() throws {
        var rng = SplitMix64(seed: 26)
        for round in 0..<2_000 {
            let e = Self.randomEvent(&rng)
            let canonical = EventCodec.encode(e)
            let parts: [EventParts] = [[], .decision, .all]
            var layout = EventLayout()
            var read = try EventCodec.decode(canonical, keeping: parts[round % 3], layout: &layout)
            let values = Self.changes(&rng, &read)
            let hop = Hop(stage: .aletheia, instance: "A-\(round)", inNs: 5, outNs: 6)
            let spliced = layout.splice(canonical, setting: values, appending: hop)

            var expected = e
            for (key, _) in values {
                switch key {
                case .action: expected.action = read.action
                case .positionSizePct: expected.positionSizePct = read.positionSizePct
                case .leverage: expected.leverage = read.leverage
                case .riskRewardRatio: expected.riskRewardRatio = read.riskRewardRatio
                case .decision: expected.decision = read.decision
                case .execution: expected.execution = read.execution
                default: Issue.record("unexpected key \(key)")
                }
            }
            expected.hops.append(hop)
            #expect(spliced == EventCodec.encode(expected), "round \(round): \(String(decoding: spliced, as: UTF8.self))")
        }
    }

    @Test func aSpliceOfAnyOtherFormDecodesToTheChangedEvent() throws {
        var rng = SplitMix64(seed: 2026)
        for round in 0..<300 {
            let e = Self.randomEvent(&rng)
            let input = try Self.scrambled(EventCodec.encode(e))
            var layout = EventLayout()
            var read = try EventCodec.decode(input, keeping: [], layout: &layout)
            #expect(layout.hopCount == e.hops.count)
            let values = Self.changes(&rng, &read)
            let hop = Hop(stage: .kenny, instance: "K", inNs: 1, outNs: 2)
            let after = try EventCodec.decode(layout.splice(input, setting: values, appending: hop))
            var expected = try EventCodec.decode(EventCodec.encode(e))  // as the wire has it (a rejection has no price)
            expected.action = read.action
            expected.positionSizePct = read.positionSizePct
            expected.leverage = read.leverage
            expected.riskRewardRatio = read.riskRewardRatio
            if values.contains(where: { $0.key == .decision }) { expected.decision = read.decision }
            if values.contains(where: { $0.key == .execution }) { expected.execution = read.execution }
            expected.hops.append(hop)
            #expect(after == expected, "round \(round)")
        }
    }

    @Test func aMessageWithoutHopsGetsThem() throws {
        let input = Array(#"{"trace_id":"t","symbol":"X","price":1,"volume":2,"decision":null}"#.utf8)
        var layout = EventLayout()
        _ = try EventCodec.decode(input, keeping: [], layout: &layout)
        let hop = Hop(stage: .joey, instance: "J", inNs: 1, outNs: 2)
        let out = layout.splice(input, setting: [(.leverage, EventCodec.json(1.0))], appending: hop)
        #expect(String(decoding: out, as: UTF8.self) == #"{"trace_id":"t","symbol":"X","price":1,"volume":2,"leverage":1.0,"hops":[{"stage":"Joey","instance":"J","in_ns":1,"out_ns":2}],"decision":null}"#)
        #expect(try EventCodec.decode(out).hops == [hop])
    }

    /// What a stage leaves undecoded is still checked: an entry one stage would dead-letter,
    /// every stage dead-letters, with the same reason.
    @Test(arguments: [
        (#""hops":[{"stage":"Bob","instance":"i","in_ns":1,"out_ns":2}]"#, "hops.stage: unknown stage 'Bob'"),
        (#""hops":[{"stage":"Kyle","instance":7,"in_ns":1,"out_ns":2}]"#, "hops.instance: expected a string"),
        (#""hops":[{"stage":"Kyle","instance":"i","in_ns":-1,"out_ns":2}]"#, "hops.in_ns: -1 is out of range (0 to 2^62 ns)"),
        (#""decision":{"approved":true,"violations":[{"rule":"r","severity":"HUGE","message":"m"}]}"#, "decision.violations.severity: unknown 'HUGE'"),
        (#""decision":{"approved":true,"violations":[{"rule":1}]}"#, "decision.violations.rule: expected a string"),
        (#""decision":{"violations":[]}"#, "decision.approved: missing"),
        (#""execution":{"status":"filled","side":3}"#, "execution.side: expected a string"),
        (#""execution":{"status":"filled","violations":[{"rule":"r","message":"m","details":{"value":"x"}}]}"#, "execution.violations.details.value: expected a number"),
        (#""rejection":{"reasons":[1]}"#, "rejection.reasons: expected a string"),
    ])
    func undecodedPartsAreCheckedAlike(_ field: String, _ reason: String) {
        let input = Array(("{\"trace_id\":\"t\",\"symbol\":\"X\",\"price\":1,\"volume\":2," + field + "}").utf8)
        for parts in [EventParts.all, .decision, []] {
            var layout = EventLayout()
            #expect(throws: EventDecodingError(reason)) { try EventCodec.decode(input, keeping: parts, layout: &layout) }
        }
    }
}
