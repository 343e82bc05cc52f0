// Kenny's decisions for one batch, as a pure state machine.

import ARKCore
import Graveyard

/// Kenny's decisions for one batch, as a pure state machine: given the accounts' books, the
/// instruments' trusted prices and the trading states as Kenny read them under `WATCH`, it
/// decides each approved proposal's execution and keeps what changed, which Kenny then writes
/// in one `MULTI`/`EXEC` (or, when the book moved meanwhile, throws away and redoes on the new
/// reads). No I/O, no clock: tested without Redis.
///
/// In order, an approved proposal is refused (`limited`, naming why) when its account's book
/// cannot be read, when its instrument's trusted price cannot be read or its price is
/// erroneous (`PriceBand`), when its trading state forbids it (HALTED; REDUCING and it adds),
/// when a throttle is reached, when a portfolio limit of the book at that moment would break,
/// or when a figure would leave the book's bounds. After each execution the breakers look at
/// the account: equity at or below zero, or the day's loss at its limit, set it HALTED.
public struct ExecutionDesk {
    public struct Settings: Sendable {
        public var startingEquity: Double
        public var band: PriceBand?
        public var throttles: Throttles
        /// The daily loss limit as a fraction of the day's starting equity (the rule file's
        /// `max_daily_loss`); nil: no daily loss breaker.
        public var dailyLossLimit: Double?
        /// ARK_INSTRUMENTS_FILE: which instruments trade, with their own bands, minimums and
        /// first references.
        public var instruments: InstrumentPolicy

        public init(startingEquity: Double, band: PriceBand?, throttles: Throttles, dailyLossLimit: Double?, instruments: InstrumentPolicy = .open) {
            self.startingEquity = startingEquity
            self.band = band
            self.throttles = throttles
            self.dailyLossLimit = dailyLossLimit
            self.instruments = instruments
        }
    }

    public let settings: Settings
    public let today: String
    public let nowNs: Int64
    /// The books read, by account; an account with none yet starts at the starting equity.
    public private(set) var books: [String: PaperBook] = [:]
    public private(set) var unreadableBooks: [String: String] = [:]
    /// Trusted prices by symbol (nil: the instrument has none yet).
    public private(set) var references: [String: PriceBand.Reference?] = [:]
    public private(set) var unreadableReferences: [String: String] = [:]
    public private(set) var trading: TradingStates
    /// What to write: books and references that changed, and trading states the breakers set.
    public private(set) var changedBooks: Set<String> = []
    public private(set) var changedReferences: Set<String> = []
    public private(set) var breakers: [TradingControl] = []

    public init(settings: Settings, today: String, nowNs: Int64, books: [String: Result<PaperBook, PaperBook.UnreadableBook>?],
                references: [String: PriceBand.Reference?], unreadableReferences: [String: String] = [:], trading: TradingStates) {
        self.settings = settings
        self.today = today
        self.nowNs = nowNs
        self.trading = trading
        for (account, read) in books {
            switch read {
            case nil: self.books[account] = PaperBook(equity: settings.startingEquity, day: today)
            case .success(let b)?: self.books[account] = b
            case .failure(let problem)?: unreadableBooks[account] = problem.description
            }
        }
        self.references = references
        self.unreadableReferences = unreadableReferences
        for account in self.books.keys { openDay(account) }
        for (account, problem) in unreadableBooks.sorted(by: { $0.key < $1.key }) {
            trip(account, rule: "book_unreadable", reason: "the book cannot be read: \(problem); fills are refused and the book is left as found (RUNBOOK: book unreadable)")
        }
    }

    /// Rolls the account's trading day and lifts a daily-loss halt from an earlier day.
    mutating func openDay(_ account: String) {
        guard var book = books[account] else { return }
        if book.day != today {
            book.roll(to: today)
            changedBooks.insert(account)
            let scope = TradingScope.account(account)
            if let c = trading.controls[scope], c.mode == .halted, c.by == "breaker:max_daily_loss" {
                set(TradingControl(scope: scope, mode: .active, from: .halted, reason: "a new trading day (\(today) UTC): the daily loss limit starts again",
                                   by: "breaker:day_roll", atNs: nowNs))
            }
        }
        book.pruneRecentFills(nowNs: nowNs, throttles: settings.throttles)
        books[account] = book
    }

    mutating func set(_ control: TradingControl) {
        trading.controls[control.scope] = control
        trading.unreadable[control.scope] = nil
        breakers.append(control)
    }

    /// HALTs the account by a breaker, unless it is halted already.
    mutating func trip(_ account: String, rule: String, reason: String) {
        let scope = TradingScope.account(account)
        let now = trading.mode(of: scope)
        guard now != .halted else { return }
        set(TradingControl(scope: scope, mode: .halted, from: now, reason: reason, by: "breaker:" + rule, atNs: nowNs))
    }

    /// The execution of `e` (HRM's verdict on it attached); `limits` are the portfolio rules
    /// asked about the book as it is at that moment.
    public mutating func execute(_ e: Event, orderID: String, limits: (PortfolioSnapshot) -> [Violation]) -> Execution {
        let approved = e.decision?.approved == true
        let trades = e.action == "buy" || e.action == "sell"
        let account = e.account
        func refuse(_ rule: String, _ severity: Severity, _ message: String) -> Execution {
            Execution(status: .limited, side: trades ? e.action : nil, positionAfter: books[account]?.positions[e.symbol]?.quantity ?? 0,
                      violations: [Violation(rule: rule, severity: severity, message: message)])
        }
        if let problem = unreadableBooks[account] {
            return approved ? refuse("book_unreadable", .critical, "fills are halted: \(problem)") : Execution(status: .none)
        }
        if books[account] == nil {
            books[account] = PaperBook(equity: settings.startingEquity, day: today)
            changedBooks.insert(account)
            openDay(account)
        }
        guard approved else {
            // A denied proposal changes no book; inside the band its price keeps the reference
            // up with the market.
            if let band = settings.band, let r = references[e.symbol] ?? nil, band.follows(e.price, reference: r), r.price != e.price || r.candidate != nil {
                references[e.symbol] = .some(PriceBand.Reference(price: e.price))
                changedReferences.insert(e.symbol)
            }
            return books[account]!.execute(e, orderID: orderID)
        }
        if let text = unreadableReferences[e.symbol] {
            return refuse("price_band", .critical, "the trusted price of \(e.symbol) is unreadable ('\(text.prefix(64))'): its fills are refused until an operator removes it (RUNBOOK: book unreadable)")
        }
        if trades, let v = settings.instruments.violation(symbol: e.symbol) {
            return refuse(v.rule, v.severity, v.message)
        }
        let throttled = trades ? books[account]!.throttleViolation(e, throttles: settings.throttles, nowNs: nowNs) : nil
        let equityBefore = books[account]!.equity, lossBefore = -books[account]!.dailyPnl
        let trading = self.trading
        let instruments = settings.instruments
        var reference = references[e.symbol] ?? nil
        let before = reference
        if reference == nil { reference = instruments.firstReference(for: e.symbol) }
        let band = instruments.band(for: e.symbol, default: settings.band)
        let x = books[account]!.execute(e, orderID: orderID, band: band, reference: &reference) { snapshot in
            let held = snapshot.exposure[e.symbol] ?? 0
            let adds = (e.action == "buy" && held >= 0) || (e.action == "sell" && held <= 0)
            if let v = trading.violation(account: account, trades: trades, adds: adds) { return [v] }
            if let throttled { return [throttled] }
            if trades && adds, let v = instruments.minNotionalViolation(symbol: e.symbol, notional: (e.positionSizePct ?? 0) * snapshot.equity) { return [v] }
            return limits(snapshot)
        }
        if reference != before {
            references[e.symbol] = .some(reference)
            changedReferences.insert(e.symbol)
        }
        if x.status == .filled { books[account]!.noteFill(e, nowNs: nowNs) }
        changedBooks.insert(account)
        watchBreakers(account, equityBefore: equityBefore, lossBefore: lossBefore)
        return x
    }

    /// Equity falling to or below zero, or the day's loss reaching its limit, halts the
    /// account. On the crossing only: an operator who resumes the account decides, and is not
    /// overruled by the next execution (the rules still refuse what would add risk).
    mutating func watchBreakers(_ account: String, equityBefore: Double, lossBefore: Double) {
        guard let book = books[account] else { return }
        let equity = book.equity
        if equity <= 0 && equityBefore > 0 {
            trip(account, rule: "equity_floor", reason: "equity at market is \(equity), at or below zero: the account is halted until an operator resumes it")
        } else if let limit = settings.dailyLossLimit, book.dayStartEquity > 0, -book.dailyPnl >= limit * book.dayStartEquity,
                  lossBefore < limit * book.dayStartEquity {
            trip(account, rule: "max_daily_loss",
                 reason: "today's loss \(-book.dailyPnl) is \(RuleSet.percent(-book.dailyPnl / book.dayStartEquity)) of the day's starting equity \(book.dayStartEquity), the limit is \(RuleSet.percent(limit)); lifted at the next trading day (00:00 UTC) or by an operator")
        }
    }
}
