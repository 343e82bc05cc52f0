import ARKCore
import ARKRisk
import ARKTestSupport
import Graveyard
import Testing

/// The book against the issue's attacks: a denied quote, an erroneous price, arithmetic that
/// would leave every range, and random sequences of extreme doubles.
@Suite struct RiskEngineTests {
    static let band = PriceBand(fraction: 0.10, confirmations: 3)

    func bookWithAAPL() -> PaperBook {
        var book = PaperBook(equity: 100_000, day: "d")
        #expect(book.execute(event(price: 100, action: "buy", size: 0.05), orderID: "o").status == .filled)
        return book
    }

    @Test func aDeniedProposalNeverMarksTheBook() {
        var book = bookWithAAPL()
        let before = book
        for price in [1e300, 1e308, .leastNonzeroMagnitude, 0.01, 98.0] {
            var reference: PriceBand.Reference? = PriceBand.Reference(price: 100)
            let x = book.execute(event(price: price, action: "buy", approved: false), orderID: "d", band: Self.band, reference: &reference)
            #expect(x.status == .none && book == before && reference == PriceBand.Reference(price: 100), "\(price)")
        }
        // A denied hold, a denied sell through the stop: nothing closes, nothing is realised.
        #expect(book.execute(event(price: 50, action: "sell", approved: false), orderID: "d").realizedPnl == 0 && book == before)
    }

    @Test func anErroneousPriceIsRefusedNamingTheBandAndTheReference() {
        var book = bookWithAAPL()
        let before = book
        var reference: PriceBand.Reference? = PriceBand.Reference(price: 100)
        let x = book.execute(event(price: 100_000, action: "buy", size: 0.01), orderID: "e", band: Self.band, reference: &reference)
        #expect(x.status == .limited && x.violations.map(\.rule) == ["price_band"])
        #expect(x.violations[0].message.contains("the price 100000.0 is outside the ±10.0% band 90.0…110.00000000000001 around the last trusted price 100.0"), "\(x.violations[0].message)")
        #expect(book == before, "an erroneous price marks nothing")
        #expect(reference == PriceBand.Reference(price: 100, candidate: 100_000, count: 1))
        // An approved hold at an erroneous price is refused too: it would mark the book.
        let hold = book.execute(event(price: 1e300, action: "hold"), orderID: "h", band: Self.band, reference: &reference)
        #expect(hold.status == .limited && hold.violations[0].message.contains("outside the sane range") && book == before)
    }

    @Test func aGenuineMoveBeyondTheBandTradesFromItsThirdConsistentQuote() {
        var book = bookWithAAPL()
        var reference: PriceBand.Reference? = PriceBand.Reference(price: 100)
        // A gap to 150 (stop 98 and target 104 lie between): refused twice, then trusted.
        for (i, price) in [150.0, 151.0].enumerated() {
            let x = book.execute(event(price: price, action: "hold"), orderID: "g\(i)", band: Self.band, reference: &reference)
            #expect(x.status == .limited && x.violations[0].message.contains("\(i + 1) of 3 consistent quotes"), "\(x)")
        }
        let third = book.execute(event(price: 149, action: "hold"), orderID: "g3", band: Self.band, reference: &reference)
        #expect(third.status == .none && abs(third.realizedPnl - 50 * 49) < 1e-9, "the target closed the position at the new price: \(third)")
        #expect(reference == PriceBand.Reference(price: 149) && book.positions.isEmpty)
        // Quotes that do not agree with each other never move it: each starts a new count.
        for (i, price) in [1e6, 1000.0, 1e6, 1000.0, 5.0, 1e6].enumerated() {
            let x = book.execute(event(price: price, action: "buy", size: 0.01), orderID: "h\(i)", band: Self.band, reference: &reference)
            #expect(x.status == .limited, "\(price)")
        }
        #expect(reference?.price == 149)
        // Inside the band the reference follows each trusted price.
        _ = book.execute(event(price: 160, action: "hold"), orderID: "f", band: Self.band, reference: &reference)
        #expect(reference == PriceBand.Reference(price: 160))
    }

    @Test func everyDerivedFigureIsBoundedOrTheFillIsRefused() {
        // Quantity: a tenth of a huge equity at the lowest sane price.
        var rich = PaperBook(equity: 1e14, day: "d")
        let q = rich.execute(event(price: 1e-6, action: "sell", size: 0.1, stop: 1), orderID: "q")
        #expect(q.status == .limited && q.violations[0].rule == "bounded_arithmetic" && q.violations[0].message.contains("quantity 1e+19"), "\(q)")
        // Take-profit: risk/reward 1e308 (were HRM's rule bypassed).
        var book = PaperBook(equity: 100_000, day: "d")
        let t = book.execute(event(price: 100, action: "buy", stop: 1, rr: 1e308), orderID: "t")
        #expect(t.status == .limited && t.violations[0].message.contains("take-profit"), "\(t)")
        // Refused after its trusted price marked the book: one of the book's executions, nothing filled.
        var marked = PaperBook(equity: 100_000, day: "d")
        marked.seq = 1
        #expect(book == marked && t.seq == 1)
        // A mark that would take equity past its range: a short of a cheap instrument that
        // marks at a billion. Refused, the book as it was.
        var short = PaperBook(equity: 1e9, day: "d")
        #expect(short.execute(event(price: 1e-3, action: "sell", size: 0.1, stop: 1e9 - 1, rr: 0.5), orderID: "s").status == .filled)
        let before = short
        let m = short.execute(event(price: 1e9, action: "hold"), orderID: "m")
        #expect(m.status == .limited && m.violations[0].message.contains("marking AAPL at 1000000000.0"), "\(m)")
        #expect(short == before)
    }

    @Test func equityAtMarketAndTheDailyLossIncludeUnrealisedMoves() throws {
        var book = bookWithAAPL()  // 50 AAPL at 100
        _ = try book.mark("AAPL", price: 99)
        #expect(book.equity == 99_950 && book.dailyPnl == -50 && book.balance == 100_000)
        #expect(book.snapshot == PortfolioSnapshot(equity: 99_950, dailyPnl: -50, exposure: ["AAPL": 4_950], fillShares: ["AAPL": 0.05]))
        book.roll(to: "next")
        #expect(book.dailyPnl == 0 && book.dayStartEquity == 99_950)
    }

    /// Random sequences of fills, marks and refusals with the doubles that break arithmetic:
    /// every figure stays finite and in range, every book reads back exactly, every execution's
    /// figures are finite. Replayable from its seed.
    @Test func randomSequencesOfExtremeDoublesLeaveEveryBookReadable() throws {
        let extremes: [Double] = [0, -0.0, .leastNonzeroMagnitude, 1e-300, 1e-7, 1e-6, 0.5, 1, 99.5, 100, 100.5, 1e6, 1e9, 1.0000001e9, 1e15, 1e300,
                                  .greatestFiniteMagnitude, .infinity, -.infinity, .nan, -1, -1e308]
        for seed in UInt64(1)...40 {
            var rng = SplitMix64(seed: seed)
            var book = PaperBook(equity: [1.0, 100_000, 1e14, 1e15][Int(seed % 4)], day: "d")
            var references: [String: PriceBand.Reference] = [:]
            func pick() -> Double {
                Bool.random(using: &rng) ? extremes.randomElement(using: &rng)! : Double.random(in: 50...150, using: &rng)
            }
            for step in 0..<2_000 {
                let symbol = ["A", "B", "C"].randomElement(using: &rng)!
                var e = event(symbol, price: pick(), action: ["buy", "sell", "hold", nil].randomElement(using: &rng)!, size: pick(),
                              stop: pick(), rr: pick(), approved: Int.random(in: 0..<4, using: &rng) > 0)
                e.traceID = "t\(step)"
                var reference = references[symbol]
                let banded = Bool.random(using: &rng)
                let x = book.execute(e, orderID: "o\(step)", band: banded ? Self.band : nil, reference: &reference)
                if let reference { references[symbol] = reference }
                let where_ = "seed \(seed) step \(step) price \(e.price) size \(e.positionSizePct ?? .nan) stop \(e.stopLoss ?? .nan) rr \(e.riskRewardRatio ?? .nan)"
                #expect(book.boundsProblem() == nil, "\(where_): \(book.boundsProblem() ?? "")")
                for v in [x.quantity, x.price, x.notional, x.positionAfter, x.realizedPnl] where !v.isFinite {
                    Issue.record("\(where_): execution figure \(v) in \(x)")
                }
                if x.status == .filled { #expect(x.price == e.price && PriceBand.saneRange.contains(x.price)) }
                let back = try PaperBook(json: book.encoded())
                #expect(back == book, "\(where_): the book does not read back")
                if book.boundsProblem() != nil || back != book { return }
            }
        }
    }
}
