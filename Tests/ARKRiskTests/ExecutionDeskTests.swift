import ARKCore
import ARKRisk
import ARKTestSupport
import Graveyard
import Testing

/// Kenny's decisions without Redis: trading states, breakers, throttles, unreadable state.
@Suite struct ExecutionDeskTests {
    static let settings = ExecutionDesk.Settings(startingEquity: 100_000, band: PriceBand(fraction: 0.10, confirmations: 3),
                                                 throttles: .off, dailyLossLimit: 0.05)
    static let now: Int64 = 1_796_000_000_000_000_000

    func desk(_ settings: ExecutionDesk.Settings = settings, books: [String: Result<PaperBook, PaperBook.UnreadableBook>?] = [:],
              trading: TradingStates = TradingStates(), today: String = "2026-12-01") -> ExecutionDesk {
        ExecutionDesk(settings: settings, today: today, nowNs: Self.now, books: books, references: [:], trading: trading)
    }

    func order(_ i: Int, _ action: String, price: Double = 100, size: Double = 0.05, stop: Double? = nil, account: String = "default",
               symbol: String = "AAPL", approved: Bool = true) -> Event {
        var e = event(symbol, price: price, action: action, size: size, stop: stop, approved: approved)
        e.traceID = "t\(i)"
        e.account = account
        return e
    }

    func states(_ controls: TradingControl...) -> TradingStates {
        TradingStates(entries: controls.map { ($0.scope.field, $0.json) })
    }

    @Test func haltedTakesNoOrderAndReducingOnlyReductions() {
        let halt = TradingControl(scope: .global, mode: .halted, from: .active, reason: "fat finger at the desk", by: "operator:ana", atNs: Self.now)
        var d = desk(trading: states(halt))
        let x = d.execute(order(1, "buy"), orderID: "o1") { _ in [] }
        #expect(x.status == .limited && x.violations.map(\.rule) == ["trading_state"])
        #expect(x.violations[0].message.contains("trading is HALTED (global), no order is taken; set by operator:ana at") && x.violations[0].message.contains("fat finger at the desk"), "\(x.violations[0].message)")
        // A hold trades nothing: its trusted price still marks the book.
        #expect(d.execute(order(2, "hold", price: 101), orderID: "o2") { _ in [] }.status == .none)

        var book = PaperBook(equity: 100_000, day: "2026-12-01")
        _ = book.execute(order(0, "buy"), orderID: "o0")  // 50 AAPL
        let reduce = TradingControl(scope: .account("acct-1"), mode: .reducing, from: .active, reason: "risk review", by: "api:desk", atNs: Self.now)
        var r = desk(books: ["acct-1": .success(book)], trading: states(reduce))
        let add = r.execute(order(3, "buy", size: 0.01, account: "acct-1"), orderID: "o3") { _ in [] }
        #expect(add.status == .limited && add.violations[0].message.contains("trading is REDUCING (account acct-1), only orders that reduce a position are taken"), "\(add)")
        #expect(r.execute(order(4, "sell", size: 0.02, account: "acct-1"), orderID: "o4") { _ in [] }.status == .filled)
        // Another account trades on.
        #expect(r.execute(order(5, "buy", symbol: "MSFT"), orderID: "o5") { _ in [] }.status == .filled)
        #expect(r.breakers.isEmpty)
    }

    @Test func anUnreadableTradingStateHaltsItsScope() {
        var d = desk(trading: TradingStates(entries: [("account:default", Array("{garbage".utf8))]))
        let x = d.execute(order(1, "buy"), orderID: "o") { _ in [] }
        #expect(x.status == .limited && x.violations[0].message.contains("account:default is unreadable"), "\(x)")
    }

    @Test func anUnreadableBookHaltsItsAccountByABreaker() {
        var d = desk(books: ["default": .failure(PaperBook.UnreadableBook(description: "garbled"))])
        #expect(d.breakers.map(\.mode) == [.halted] && d.breakers[0].by == "breaker:book_unreadable" && d.breakers[0].scope == .account("default"))
        let x = d.execute(order(1, "buy"), orderID: "o") { _ in [] }
        #expect(x.status == .limited && x.violations.map(\.rule) == ["book_unreadable"])
        #expect(d.execute(order(2, "buy", approved: false), orderID: "o") { _ in [] }.status == .none)
        #expect(!d.changedBooks.contains("default"), "the unreadable book is never written over")
        // Already halted by the breaker: not set again.
        let again = desk(books: ["default": .failure(PaperBook.UnreadableBook(description: "garbled"))], trading: states(d.breakers[0]))
        #expect(again.breakers.isEmpty)
    }

    @Test func equityAtOrBelowZeroHaltsTheAccount() throws {
        // A short of 50 at 100 on an account of 5,000: a trusted move to 201 takes equity below zero.
        var book = PaperBook(equity: 5_000, day: "2026-12-01")
        #expect(book.execute(order(0, "sell", price: 100, size: 1, stop: 1_000), orderID: "o0").status == .filled)
        var references: [String: PriceBand.Reference?] = ["AAPL": PriceBand.Reference(price: 100)]
        var d = ExecutionDesk(settings: Self.settings, today: "2026-12-01", nowNs: Self.now, books: ["default": .success(book)], references: references, trading: TradingStates())
        for (i, p) in [109.0, 119, 130, 143, 157, 172, 189, 201].enumerated() {  // each inside the band of the last
            _ = d.execute(order(10 + i, "hold", price: p), orderID: "h\(i)") { _ in [] }
        }
        #expect(try #require(d.books["default"]).equity < 0)
        #expect(d.breakers.map(\.by) == ["breaker:max_daily_loss"], "\(d.breakers)")
        // The daily loss tripped first (5 % of 5,000); equity crossing zero later finds it halted.
        let buy = d.execute(order(30, "buy", price: 201, size: 0.01), orderID: "b") { _ in [] }
        #expect(buy.status == .limited && buy.violations[0].rule == "trading_state")
        // Without a daily loss limit, the equity floor is the breaker.
        var noDaily = Self.settings
        noDaily.dailyLossLimit = nil
        references = ["AAPL": PriceBand.Reference(price: 100)]
        var e = ExecutionDesk(settings: noDaily, today: "2026-12-01", nowNs: Self.now, books: ["default": .success(book)], references: references, trading: TradingStates())
        for (i, p) in [109.0, 119, 130, 143, 157, 172, 189, 201].enumerated() {
            _ = e.execute(order(10 + i, "hold", price: p), orderID: "h\(i)") { _ in [] }
        }
        #expect(e.breakers.map(\.by) == ["breaker:equity_floor"] && e.breakers[0].reason.contains("at or below zero"), "\(e.breakers)")
    }

    @Test func theDailyLossHaltIsLiftedByTheNextTradingDay() {
        let tripped = TradingControl(scope: .account("default"), mode: .halted, from: .active, reason: "loss", by: "breaker:max_daily_loss", atNs: Self.now)
        let book = PaperBook(equity: 100_000, day: "2026-12-01")
        let same = desk(books: ["default": .success(book)], trading: states(tripped), today: "2026-12-01")
        #expect(same.breakers.isEmpty)
        var next = desk(books: ["default": .success(book)], trading: states(tripped), today: "2026-12-02")
        #expect(next.breakers.map(\.mode) == [.active] && next.breakers[0].by == "breaker:day_roll" && next.breakers[0].from == .halted)
        #expect(next.execute(order(1, "buy"), orderID: "o") { _ in [] }.status == .filled)
        // An operator's halt is never lifted by the day.
        let operatorHalt = TradingControl(scope: .account("default"), mode: .halted, from: .active, reason: "x", by: "operator:ana", atNs: Self.now)
        #expect(desk(books: ["default": .success(book)], trading: states(operatorHalt), today: "2026-12-02").breakers.isEmpty)
    }

    /// A denied proposal never marks the book, but inside the band the reference follows the
    /// market it quotes (else the next approved price would look erroneous); outside the band,
    /// or with no reference yet, it moves nothing.
    @Test func deniedPricesKeepTheReferenceUpWithTheMarketButNeverMarkTheBook() {
        var book = PaperBook(equity: 100_000, day: "2026-12-01")
        _ = book.execute(order(0, "buy"), orderID: "o0")
        var d = ExecutionDesk(settings: Self.settings, today: "2026-12-01", nowNs: Self.now, books: ["default": .success(book)],
                              references: ["AAPL": PriceBand.Reference(price: 100), "MSFT": nil], trading: TradingStates())
        for (i, p) in [108.0, 116, 125, 134].enumerated() {
            #expect(d.execute(order(i + 1, "buy", price: p, approved: false), orderID: "d") { _ in [] }.status == .none)
        }
        #expect(d.references["AAPL"] == .some(PriceBand.Reference(price: 134)) && d.books["default"] == book)
        _ = d.execute(order(9, "sell", price: 1e6, approved: false), orderID: "d") { _ in [] }
        _ = d.execute(order(10, "buy", price: 50, symbol: "MSFT", approved: false), orderID: "d") { _ in [] }
        #expect(d.references["AAPL"] == .some(PriceBand.Reference(price: 134)) && d.references["MSFT"] == .some(nil))
        // The approved price that follows is trusted: the band kept up.
        #expect(d.execute(order(11, "sell", price: 135, size: 0.01), orderID: "o") { _ in [] }.status == .filled)
    }

    @Test func throttlesAndDuplicativeOrders() {
        var settings = Self.settings
        settings.throttles = Throttles(ordersPerSecond: 3, symbolOrdersPerSecond: 2, duplicateWindowMs: 500)
        var d = desk(settings)
        #expect(d.execute(order(1, "buy", size: 0.01), orderID: "o1") { _ in [] }.status == .filled)
        let dup = d.execute(order(2, "buy", size: 0.01), orderID: "o2") { _ in [] }
        #expect(dup.status == .limited && dup.violations.map(\.rule) == ["duplicate_order"] && dup.violations[0].message.contains("t1 filled the same order (buy AAPL, size 0.01)"), "\(dup)")
        #expect(d.execute(order(3, "buy", size: 0.02), orderID: "o3") { _ in [] }.status == .filled)
        let third = d.execute(order(4, "buy", size: 0.03), orderID: "o4") { _ in [] }
        #expect(third.violations.map(\.rule) == ["max_symbol_orders_per_second"] && third.violations[0].message.contains("2 orders filled in AAPL in the last second, the limit is 2"), "\(third)")
        #expect(d.execute(order(5, "buy", size: 0.01, symbol: "MSFT"), orderID: "o5") { _ in [] }.status == .filled)
        let fourth = d.execute(order(6, "buy", size: 0.01, symbol: "NVDA"), orderID: "o6") { _ in [] }
        #expect(fourth.violations.map(\.rule) == ["max_orders_per_second"], "\(fourth)")
        // The fills are in the book, so every Kenny instance counts them; older than the
        // window they are forgotten.
        let book = d.books["default"]!
        #expect(book.recentFills.map(\.traceID) == ["t1", "t3", "t5"])
        let later = ExecutionDesk(settings: settings, today: "2026-12-01", nowNs: Self.now + 1_000_000_001, books: ["default": .success(book)], references: [:], trading: TradingStates())
        #expect(later.books["default"]!.recentFills.isEmpty)
    }
}
