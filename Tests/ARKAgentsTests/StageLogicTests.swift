@testable import ARKAgents
import ARKBus
import ARKCore
import Graveyard
import ARKRisk
import ARKTestSupport
import Testing

@Suite struct JoeyTests {
    @Test func keepsProducerFieldsAndNeverInventsAStop() {
        var joey = JoeyScorer()
        var e = Event(traceID: "t", id: "i", symbol: "X", price: 10, volume: 1, ts: 0, source: "s", t0Ns: 0, positionSizePct: 0.07, leverage: 1.5)
        joey.propose(&e)
        #expect(e.positionSizePct == 0.07 && e.leverage == 1.5 && e.stopLoss == nil && e.riskRewardRatio == 2 && e.action == "hold")
        var withStop = Event(traceID: "t", id: "i", symbol: "X", price: 10, volume: 1, ts: 0, source: "s", t0Ns: 0, stopLoss: 11)
        joey.propose(&withStop)
        #expect(withStop.action == "sell" && withStop.positionSizePct! >= 0.02 && withStop.positionSizePct! <= 0.05)
    }

    @Test func momentumDrivesTheActionWithoutAStop() {
        var joey = JoeyScorer()
        for p in [100.0, 100.5, 99.5, 100.2, 99.8, 100.1] { _ = joey.score(symbol: "X", price: p) }
        var up = Event(traceID: "t", id: "i", symbol: "X", price: 110, volume: 1, ts: 0, source: "s", t0Ns: 0)
        joey.propose(&up)
        #expect(up.action == "buy" && up.positionSizePct! > 0.02)
    }
}

@Suite struct ContinuityTests {
    func hops(_ stages: [Stage], times: [(Int64, Int64)]? = nil) -> [Hop] {
        stages.enumerated().map { i, s in
            let t = times?[i] ?? (Int64(i * 10), Int64(i * 10 + 5))
            return Hop(stage: s, instance: "x", inNs: t.0, outNs: t.1)
        }
    }

    @Test func aCompleteTraceIsContinuous() {
        var e = event(price: 1, action: "buy")
        e.execution = Execution(status: .none)
        e.hops = hops([.kyle, .joey, .hrm, .kenny])
        #expect(continuityProblems(e).isEmpty)
    }

    @Test func missingOutOfOrderAndBackwardsHopsAreNamed() {
        var e = event(price: 1, action: "buy")
        e.execution = Execution(status: .none)
        e.hops = hops([.kyle, .hrm, .kenny])
        #expect(continuityProblems(e).contains("missing hops: Joey"))
        e.hops = hops([.kyle, .hrm, .joey, .kenny])
        #expect(continuityProblems(e).contains { $0.contains("expected Kyle→Joey→HRM→Kenny") })
        e.hops = hops([.kyle, .joey, .hrm, .kenny], times: [(0, 5), (10, 15), (12, 20), (30, 35)])
        #expect(continuityProblems(e) == ["HRM took the entry in before the previous stage put it out"])
        e.hops = hops([.kyle, .joey, .hrm, .kenny])
        e.decision = nil
        #expect(continuityProblems(e) == ["no decision from HRM"])
    }

    @Test func aRejectionOnlyNeedsKyle() {
        var e = Event(traceID: "t", id: "t", symbol: "", price: 0, volume: 0, ts: 0, source: "s", t0Ns: 0)
        e.rejection = Rejection(reasons: ["price: missing"], rawBase64: "", rawBytes: 0)
        e.hops = hops([.kyle])
        #expect(continuityProblems(e).isEmpty)
    }
}

/// HRM reads an account's book (Kenny's JSON, read along with its batch); what it cannot read
/// makes the account's proposals fail closed.
@Suite struct HRMBookTests {
    @Test func theBookIsReadAtMarket() throws {
        var book = PaperBook(equity: 100_000, day: "2026-11-23")
        _ = book.execute(event(price: 100, action: "sell", size: 0.05), orderID: "o")
        _ = try book.mark("AAPL", price: 101)
        let r = RedisValue.bulk(book.encoded())
        #expect(try HRM.book(from: r, defaultEquity: 1).get() == PortfolioSnapshot(equity: 99_950, dailyPnl: -50, exposure: ["AAPL": -5_050], fillShares: ["AAPL": 0.05]))
        // No book yet: Kenny has not filled anything, the starting equity stands.
        #expect(try HRM.book(from: .null, defaultEquity: 100_000).get() == PortfolioSnapshot(equity: 100_000))
    }

    @Test func anUnreadableBookIsAProblem() {
        for (r, why) in [
            (RedisValue.bulk(Array(#"{"dailyPnl":0,"day":"d","equity":"abc","positions":{}}"#.utf8)), "expected a number"),
            (RedisValue.bulk(Array(#"{"dailyPnl":0,"day":"d","equity":1e300,"positions":{}}"#.utf8)), "balance 1e+300 is outside ±1e15"),
            (RedisValue.error("WRONGTYPE Operation against a key holding the wrong kind of value"), "WRONGTYPE"),
            (RedisValue.bulk(Array("x".utf8)), "expected '{'"),
        ] {
            guard case .failure(let problem) = HRM.book(from: r, defaultEquity: 1) else {
                Issue.record("read \(r) as a book")
                continue
            }
            #expect(problem.description.contains(why), "\(problem.description)")
        }
    }

    @Test func onlyANamedAccountsMessageIsScannedForIt() throws {
        var e = event(price: 1, action: "buy")
        #expect(!HRM.namesAccount(EventCodec.encode(e)))
        e.account = "acct-7"
        let bytes = EventCodec.encode(e)
        #expect(HRM.namesAccount(bytes) && ShardLayout.account(ofSignal: bytes) == "acct-7")
        #expect(try EventCodec.decode(bytes).account == "acct-7")
    }
}
