import ARKCore
import ARKRisk
import ARKTestSupport
import Graveyard
import Testing

@Suite struct PaperBookTests {
    @Test func buyThenSellClosesWithRealisedPnl() {
        var book = PaperBook(equity: 100_000, day: "2026-11-23")
        let fill = book.execute(event(price: 100, action: "buy"), orderID: "o1")
        #expect(fill.status == .filled && fill.quantity == 50 && fill.notional == 5_000 && fill.positionAfter == 50)
        #expect(book.positions.count == 1)
        // The sell marks the long at 101 first (equity at market 100,050), then sells 50.
        let close = book.execute(event(price: 101, action: "sell", size: 50 * 101 / 100_050), orderID: "o2")
        #expect(close.status == .filled && abs(close.quantity - 50) < 1e-9)
        #expect(book.positions.isEmpty, "\(book.positions)")
        #expect(abs(book.dailyPnl - 50) < 1e-6 && abs(book.equity - 100_050) < 1e-6)
    }

    @Test func stopLossAndTakeProfitClosePositions() throws {
        var book = PaperBook(equity: 100_000, day: "d")
        _ = book.execute(event(price: 100, action: "buy", stop: 98, rr: 2), orderID: "o1")  // target 104
        #expect(try book.mark("AAPL", price: 99) == 0 && book.positions.count == 1)
        #expect(book.equity == 99_950 && book.snapshot.exposure["AAPL"] == 50 * 99)  // valued at the mark
        let loss = try book.mark("AAPL", price: 97.5)
        #expect(loss == -125 && book.positions.isEmpty && book.dailyPnl == -125)
        _ = book.execute(event(price: 100, action: "sell", stop: 102, rr: 2), orderID: "o2")  // short, target 96
        let shortQuantity = 0.05 * 99_875 / 100  // sized on equity after the loss
        let gain = try book.mark("AAPL", price: 95)
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
        // The first 10 are marked at 102 first: equity at market is 100,020.
        _ = book.execute(event(price: 102, action: "buy", size: 10 * 102 / 100_020), orderID: "o2")
        let p = book.positions["AAPL"]!
        #expect(abs(p.quantity - 20) < 1e-9 && abs(p.averagePrice - 101) < 1e-9)
        #expect(abs(book.snapshot.exposure["AAPL"]! - 20 * 102) < 1e-9)
    }

    @Test func dailyPnlResetsOnANewDay() {
        var book = PaperBook(equity: 100_000, day: "2026-11-22")
        book.dayStartEquity = 103_000
        #expect(book.dailyPnl == -3_000)
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
        book.dayStartEquity = 100_000.1 + 0.1 + 0.2
        _ = try book.mark("NVDA", price: 101.7)
        let bytes = book.encoded()
        #expect(try PaperBook(json: bytes) == book)
        // Keys sorted, as Foundation's JSONEncoder wrote them.
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix(#"{"dailyPnl":"#) && text.contains(#","day":"2026-11-23","dayStartEquity":100000.40000000001,"equity":100000.1,"positions":{"AAPL":{"averagePrice":"#) && text.hasSuffix(#","seq":4}"#), "\(text)")
    }

    /// A book stored before ARK coded it itself (Foundation's JSONEncoder, `.sortedKeys`).
    @Test func aBookFoundationWroteReadsTheSame() throws {
        let stored = #"{"dailyPnl":0,"day":"2026-11-23","equity":100000,"positions":{"AAPL":{"averagePrice":100.37,"quantity":-9.96,"stopLoss":102.3,"takeProfit":96.5}}}"#
        let book = try PaperBook(json: Array(stored.utf8))
        #expect(book.equity == 100_000 && book.dailyPnl == 0 && book.day == "2026-11-23")
        let p = try #require(book.positions["AAPL"])
        #expect(p.quantity == -9.96 && p.averagePrice == 100.37 && p.stopLoss == 102.3 && p.takeProfit == 96.5)
        // Before marks: valued at its average price until a trusted price marks it.
        #expect(p.mark == 100.37 && p.fillShare == 0)
        // Its daily P&L was realised only: the day began at equity minus it.
        let older = try PaperBook(json: Array(#"{"dailyPnl":-250,"day":"d","equity":99750,"positions":{}}"#.utf8))
        #expect(older.dayStartEquity == 100_000 && older.dailyPnl == -250)
    }

    @Test func anUnreadableBookSaysWhy() {
        for (text, why) in [
            (#"{"dailyPnl":0,"day":"d","positions":{}}"#, "equity, dailyPnl, day and positions are required"),
            (#"{"dailyPnl":0,"day":"d","equity":NaN,"positions":{}}"#, "equity is not a finite number"),
            (#"{"dailyPnl":0,"day":"d","equity":1,"positions":{"X":{"quantity":1}}}"#, "position X: quantity, averagePrice, stopLoss and takeProfit are required"),
            (#"{"dailyPnl":0,"day":"d","equity":1,"positions":{}} trailing"#, "unexpected data after the top-level value"),
            (#"{"dailyPnl":0,"day":"d","equity":1e300,"positions":{}}"#, "balance 1e+300 is outside ±1e15"),
            (#"{"dailyPnl":0,"day":"d","equity":1,"positions":{"X":{"quantity":1,"averagePrice":0,"stopLoss":1,"takeProfit":2}}}"#, "X average price 0.0 is outside"),
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

