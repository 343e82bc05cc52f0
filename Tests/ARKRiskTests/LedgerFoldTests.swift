import ARKCore
import ARKRisk
import ARKTestSupport
import Graveyard
import Testing

/// The audit's fold against Kenny's own arithmetic, without Redis: executions made by the
/// desk, folded in any order of arrival, give back the desk's books exactly.
@Suite struct LedgerFoldTests {
    static let settings = ExecutionDesk.Settings(startingEquity: 100_000, band: PriceBand(fraction: 0.10, confirmations: 3),
                                                 throttles: .off, dailyLossLimit: 0.05)

    /// A day of trading on two accounts and three symbols through the desk: fills, adds,
    /// partial and full closes, a stop hit by a later price, holds that mark, an erroneous
    /// price, limits that refuse after the mark, denials. Returns the audited events and the
    /// desk's books.
    func trade(seed: UInt64) -> (events: [Event], books: [String: PaperBook]) {
        var rng = SplitMix64(seed: seed)
        var desk = ExecutionDesk(settings: Self.settings, today: "2026-12-06", nowNs: 1_796_000_000_000_000_000, books: [:], references: [:], trading: TradingStates())
        var prices = ["AAPL": 190.0, "MSFT": 410.0, "NVDA": 120.0]
        var events: [Event] = []
        for i in 0..<400 {
            let symbol = ["AAPL", "MSFT", "NVDA"][Int(rng.next() % 3)]
            var price = prices[symbol]! * (1 + (Double(rng.next() % 2001) - 1000) / 1000 * 0.03)
            if i % 97 == 50 { price *= 30 }  // erroneous: refused before the mark
            prices[symbol] = i % 97 == 50 ? prices[symbol]! : price
            let action = ["buy", "sell", "hold", "buy", "sell"][Int(rng.next() % 5)]
            let stopSide = action == "sell" ? 1.02 : 0.98
            var e = event(symbol, price: price, action: action, size: Double(rng.next() % 40 + 1) / 1000, stop: price * stopSide, approved: rng.next() % 10 != 0)
            e.traceID = "t\(i)"
            e.account = rng.next() % 3 == 0 ? "acct-2" : "default"
            let limitEvery = i % 13 == 0
            let x = desk.execute(e, orderID: "ord-t\(i)") { _ in limitEvery ? [Violation(rule: "max_symbol_exposure", severity: .high, message: "test limit")] : [] }
            e.execution = x
            e.hops = [Hop(stage: .kenny, instance: "k", inNs: 1_796_000_000_000_000_000 + Int64(i), outNs: 1_796_000_000_000_000_001 + Int64(i))]
            events.append(e)
        }
        return (events, desk.books)
    }

    @Test(arguments: [1, 2, 3] as [UInt64]) func theFoldOfTheAuditIsTheDesksBooksInAnyOrderOfArrival(seed: UInt64) throws {
        let (events, books) = trade(seed: seed)
        #expect(events.contains { $0.execution?.status == .limited && $0.execution?.seq != nil }, "a limit after the mark")
        #expect(events.contains { $0.execution?.status == .limited && $0.execution?.seq == nil }, "a refusal before the mark")
        // Through the wire form, as Aletheia records them.
        let audited = try events.map { try EventCodec.decode(EventCodec.encode($0)) }
        var rng = SplitMix64(seed: seed &+ 99)
        var shuffled = audited
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) { shuffled.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        for order in [audited, shuffled] {
            var fold = LedgerFold(startingEquity: 100_000)
            for e in order { fold.add(e) }
            #expect(fold.problems.isEmpty && fold.waiting.isEmpty, "\(fold.problems)")
            for (account, book) in books {
                let r = BookReconciliation.compare(book: .success(book), audit: fold.books[account], waiting: 0, problems: [])
                #expect(r == .equal, "\(account): \(r)")
                #expect(fold.books[account]?.seq == book.seq && book.seq > 10)
            }
        }
    }

    @Test func aBookAheadIsPendingOneBehindOrChangedDiffers() throws {
        let (events, books) = trade(seed: 7)
        var fold = LedgerFold(startingEquity: 100_000)
        let book = try #require(books["default"])
        let last = try #require(events.last { $0.account == "default" && $0.execution?.seq == book.seq })
        for e in events where e.traceID != last.traceID { fold.add(e) }
        // The newest execution is still in flight to Aletheia.
        guard case .pending = BookReconciliation.compare(book: .success(book), audit: fold.books["default"], waiting: 0, problems: []) else {
            Issue.record("a book one execution ahead is not pending"); return
        }
        fold.add(last)
        var changed = book
        let symbol = try #require(changed.positions.keys.sorted().first)
        changed.positions[symbol]!.quantity += 1
        guard case .differs(let d) = BookReconciliation.compare(book: .success(changed), audit: fold.books["default"], waiting: 0, problems: []) else {
            Issue.record("a changed quantity was not found"); return
        }
        #expect(d.contains { $0.hasPrefix("\(symbol) quantity: the book says") }, "\(d)")
        var behind = book
        behind.seq -= 2
        guard case .differs(let b) = BookReconciliation.compare(book: .success(behind), audit: fold.books["default"], waiting: 0, problems: []) else {
            Issue.record("a book behind the audit was not found"); return
        }
        #expect(b.first?.contains("the book is behind the audit") == true, "\(b)")
        guard case .differs(let m) = BookReconciliation.compare(book: nil, audit: fold.books["default"], waiting: 0, problems: []) else {
            Issue.record("a lost book was not found"); return
        }
        #expect(m.first?.contains("no book in Redis") == true)
    }

    @Test func twoExecutionsWithOneSequenceNumberAreAProblem() throws {
        let (events, _) = trade(seed: 11)
        var fold = LedgerFold(startingEquity: 100_000)
        for e in events { fold.add(e) }
        var again = try #require(events.first { $0.execution?.status == .filled })
        again.traceID = "written-over"
        fold.add(again)
        #expect(fold.problems[again.account]?.first?.contains("two audited executions carry sequence number") == true)
    }
}
