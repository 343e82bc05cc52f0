@testable import ARKAgents
import ARKBus
import ARKCore
import Graveyard
import Testing

func event(_ symbol: String = "AAPL", price: Double, action: String?, size: Double = 0.05, stop: Double? = nil, rr: Double = 2, approved: Bool = true) -> Event {
    var e = Event(traceID: "t-\(price)", id: "s", symbol: symbol, price: price, volume: 1, ts: 0, source: "test", t0Ns: 0,
                  action: action, positionSizePct: size, leverage: 1, stopLoss: stop ?? (action == "sell" ? price * 1.02 : price * 0.98), riskRewardRatio: rr)
    e.decision = Decision(approved: approved, violations: [], warnings: [], rulesChecked: 11, complianceScore: 1, policyHash: "h", evalNs: 1)
    return e
}

@Suite struct PaperBookTests {
    @Test func buyThenSellClosesWithRealisedPnl() {
        var book = PaperBook(equity: 100_000, day: "2026-11-23")
        let fill = book.execute(event(price: 100, action: "buy"), orderID: "o1")
        #expect(fill.status == .filled && fill.quantity == 50 && fill.notional == 5_000 && fill.positionAfter == 50)
        #expect(book.positions.count == 1)
        let close = book.execute(event(price: 101, action: "sell", size: 0.0505), orderID: "o2")
        #expect(close.status == .filled)
        #expect(book.positions.isEmpty, "\(book.positions)")
        #expect(abs(book.dailyPnl - 50) < 1e-6 && abs(book.equity - 100_050) < 1e-6)
    }

    @Test func stopLossAndTakeProfitClosePositions() {
        var book = PaperBook(equity: 100_000, day: "d")
        _ = book.execute(event(price: 100, action: "buy", stop: 98, rr: 2), orderID: "o1")  // target 104
        #expect(book.mark("AAPL", price: 99) == 0 && book.positions.count == 1)
        let loss = book.mark("AAPL", price: 97.5)
        #expect(loss == -125 && book.positions.isEmpty && book.dailyPnl == -125)
        _ = book.execute(event(price: 100, action: "sell", stop: 102, rr: 2), orderID: "o2")  // short, target 96
        let shortQuantity = 0.05 * 99_875 / 100  // sized on equity after the loss
        let gain = book.mark("AAPL", price: 95)
        #expect(abs(gain - shortQuantity * 5) < 1e-9 && book.positions.isEmpty)
    }

    @Test func deniedAndHoldMakeNoOrder() {
        var book = PaperBook(equity: 100_000, day: "d")
        #expect(book.execute(event(price: 100, action: "buy", approved: false), orderID: "o").status == .none)
        #expect(book.execute(event(price: 100, action: "hold"), orderID: "o").status == .none)
        #expect(book.positions.isEmpty)
    }

    @Test func addingToAPositionAveragesThePrice() {
        var book = PaperBook(equity: 100_000, day: "d")
        _ = book.execute(event(price: 100, action: "buy", size: 0.01), orderID: "o1")
        _ = book.execute(event(price: 102, action: "buy", size: 0.0102), orderID: "o2")
        let p = book.positions["AAPL"]!
        #expect(abs(p.quantity - 20) < 1e-9 && abs(p.averagePrice - 101) < 1e-9)
        #expect(book.publishedFields.contains { $0.0 == "pos:AAPL" })
    }

    @Test func dailyPnlResetsOnANewDay() {
        var book = PaperBook(equity: 100_000, day: "2026-11-22")
        book.dailyPnl = -3_000
        book.roll(to: "2026-11-23")
        #expect(book.dailyPnl == 0 && book.day == "2026-11-23")
        #expect(PaperBook.utcDay(0) == "1970-01-01")
        #expect(PaperBook.utcDay(1_795_478_400_000_000_000 - 1) == "2026-11-23")
        #expect(PaperBook.utcDay(1_795_478_400_000_000_000) == "2026-11-24")
    }

    @Test func theStoredBookReadsBackExactly() throws {
        var book = PaperBook(equity: 100_000.1, day: "2026-11-23")
        for (i, s) in ["NVDA", "AAPL", "BRK.B", "Ünï\"x"].enumerated() {
            _ = book.execute(event(s, price: 100 + Double(i) / 3, action: i % 2 == 0 ? "buy" : "sell", size: 0.0137), orderID: "o\(i)")
        }
        book.dailyPnl = -0.1 - 0.2
        let bytes = book.encoded()
        #expect(try PaperBook(json: bytes) == book)
        // Keys sorted, as Foundation's JSONEncoder wrote them.
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(#"{"dailyPnl":-0.30000000000000004,"day":"2026-11-23","equity":100000.1,"positions":{"AAPL":{"averagePrice":"#))
    }

    /// A book stored before ARK coded it itself (Foundation's JSONEncoder, `.sortedKeys`).
    @Test func aBookFoundationWroteReadsTheSame() throws {
        let stored = #"{"dailyPnl":0,"day":"2026-11-23","equity":100000,"positions":{"AAPL":{"averagePrice":100.37,"quantity":-9.96,"stopLoss":102.3,"takeProfit":96.5}}}"#
        let book = try PaperBook(json: Array(stored.utf8))
        #expect(book.equity == 100_000 && book.dailyPnl == 0 && book.day == "2026-11-23")
        let p = try #require(book.positions["AAPL"])
        #expect(p.quantity == -9.96 && p.averagePrice == 100.37 && p.stopLoss == 102.3 && p.takeProfit == 96.5)
    }

    @Test func anUnreadableBookSaysWhy() {
        for (text, why) in [
            (#"{"dailyPnl":0,"day":"d","positions":{}}"#, "equity, dailyPnl, day and positions are required"),
            (#"{"dailyPnl":0,"day":"d","equity":NaN,"positions":{}}"#, "equity is not a finite number"),
            (#"{"dailyPnl":0,"day":"d","equity":1,"positions":{"X":{"quantity":1}}}"#, "position X: quantity, averagePrice, stopLoss and takeProfit are required"),
            (#"{"dailyPnl":0,"day":"d","equity":1,"positions":{}} trailing"#, "unexpected data after the top-level value"),
        ] {
            do {
                _ = try PaperBook(json: Array(text.utf8))
                Issue.record("read \(text) as a book")
            } catch {
                #expect(error.description.contains(why), "\(error.description)")
            }
        }
    }
}

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

/// HRM reads Kenny's published book from an HGETALL reply (read along with its batch); what
/// it cannot read makes the batch fail closed.
@Suite struct HRMBookTests {
    func reply(_ pairs: [(String, String)]) -> RedisValue {
        .array(pairs.flatMap { [RedisValue.bulk(Array($0.0.utf8)), .bulk(Array($0.1.utf8))] })
    }

    @Test func thePublishedFiguresAreRead() throws {
        let r = reply([("book", "{}"), ("equity", "99000.5"), ("daily_pnl", "-12.25"), ("open_positions", "1"), ("pos:AAPL", "-5000")])
        #expect(try HRM.book(from: r, defaultEquity: 1).get() == PortfolioSnapshot(equity: 99_000.5, dailyPnl: -12.25, exposure: ["AAPL": -5_000]))
        // No book yet: Kenny has not filled anything, the starting equity stands.
        #expect(try HRM.book(from: .array([]), defaultEquity: 100_000).get() == PortfolioSnapshot(equity: 100_000))
    }

    @Test func anUnreadableBookIsAProblem() {
        for (r, why) in [
            (reply([("equity", "abc")]), "equity is 'abc'"),
            (reply([("pos:MSFT", "inf")]), "pos:MSFT is 'inf'"),
            (RedisValue.error("WRONGTYPE Operation against a key holding the wrong kind of value"), "WRONGTYPE"),
            (RedisValue.bulk(Array("x".utf8)), "not a hash"),
        ] {
            guard case .failure(let problem) = HRM.book(from: r, defaultEquity: 1) else {
                Issue.record("read \(r) as a book")
                continue
            }
            #expect(problem.description.contains(why), "\(problem.description)")
        }
    }
}
