// An account's paper book: bounded arithmetic, marks at trusted prices.

import ARKCore
import Graveyard
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Kenny's paper account: one net position per symbol, marked at the last trusted price of
/// its instrument, closed when that price crosses its stop loss or take-profit (stop distance
/// × risk/reward). Pure: tested without Redis, fuzzed with extreme doubles.
///
/// Bounded by construction: every figure it holds is finite and inside `Bounds`, and any
/// fill or mark whose arithmetic would leave them is refused (`limited`, naming the figure)
/// before anything changes, so no signal can make the book unreadable.
public struct PaperBook: Sendable, Equatable {
    public struct Position: Sendable, Equatable {
        /// Signed quantity: long > 0, short < 0.
        public var quantity: Double
        public var averagePrice: Double
        public var stopLoss: Double
        public var takeProfit: Double
        /// The last trusted price of the instrument: where the position is valued.
        public var mark: Double
        /// The position's share of equity right after the last fill that opened or added to
        /// it: what the exposure limit held that fill to (the limit cannot hold later marks).
        public var fillShare: Double

        public init(quantity: Double, averagePrice: Double, stopLoss: Double, takeProfit: Double, mark: Double, fillShare: Double = 0) {
            self.quantity = quantity
            self.averagePrice = averagePrice
            self.stopLoss = stopLoss
            self.takeProfit = takeProfit
            self.mark = mark
            self.fillShare = fillShare
        }

        /// Signed value at the mark.
        public var exposure: Double { quantity * mark }
        public var unrealized: Double { quantity * (mark - averagePrice) }
    }

    /// The ranges every figure of the book stays in: money within ±10^15 (a quadrillion) a
    /// figure, quantities within ±10^12 units, prices in `PriceBand.saneRange`.
    public enum Bounds {
        public static let money = 1e15
        public static let quantity = 1e12
        static let moneyText = "±1e15"
        static let quantityText = "±1e12"
    }

    /// A filled order, kept for as long as the throttles count it (`Throttles.windowNs`).
    public struct RecentFill: Sendable, Equatable {
        public var atNs: Int64
        public var traceID: String
        public var symbol: String
        public var side: String
        public var size: Double

        public init(atNs: Int64, traceID: String, symbol: String, side: String, size: Double) {
            self.atNs = atNs
            self.traceID = traceID
            self.symbol = symbol
            self.side = side
            self.size = size
        }
    }

    /// The fills the throttles count, oldest first; at most `maxRecentFills`.
    public var recentFills: [RecentFill] = []
    public static let maxRecentFills = 10_000

    /// How many executions have changed the book (fills, and approved prices that marked it):
    /// the sequence number the last one carries in its audited record (`Execution.seq`).
    public var seq: Int64 = 0

    /// Realised equity: the starting equity plus every realised P&L (stored as `equity`).
    public var balance: Double
    /// Equity at market when the trading day began (the daily loss is measured from it).
    public var dayStartEquity: Double
    /// UTC day (yyyy-MM-dd) the trading day is; it rolls at 00:00 UTC.
    public var day: String
    public var positions: [String: Position]

    public init(equity: Double, day: String) {
        self.balance = equity
        self.dayStartEquity = equity
        self.day = day
        self.positions = [:]
    }

    static let epsilon = 1e-9

    /// Equity at market: the balance plus every position's unrealised P&L at its mark.
    public var equity: Double { balance + positions.values.reduce(0) { $0 + $1.unrealized } }
    /// Today's P&L at market (realised and unrealised since the day began).
    public var dailyPnl: Double { equity - dayStartEquity }

    public static func utcDay(_ ns: Int64) -> String {
        // Twice a batch: no Foundation formatter on the hot path.
        String(iso8601(ns).prefix(10))
    }

    /// Starts a new trading day: the daily loss is measured from equity as it stands now.
    public mutating func roll(to day: String) {
        if day != self.day {
            self.day = day
            dayStartEquity = equity
        }
    }

    /// Why a mark or a fill was refused: the figure that would leave its range.
    public struct OutOfBounds: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The first figure of the book outside its range, or nil.
    public func boundsProblem() -> String? {
        func money(_ name: String, _ v: Double) -> String? {
            v.isFinite && abs(v) <= Bounds.money ? nil : "\(name) \(v) is outside \(Bounds.moneyText)"
        }
        if let p = money("balance", balance) ?? money("equity at market", equity) ?? money("equity at the start of the day", dayStartEquity) { return p }
        for (symbol, p) in positions {
            guard p.quantity.isFinite, abs(p.quantity) <= Bounds.quantity else { return "\(symbol) quantity \(p.quantity) is outside \(Bounds.quantityText)" }
            for (name, price) in [("average price", p.averagePrice), ("mark", p.mark)] where !(price.isFinite && PriceBand.saneRange.contains(price)) {
                return "\(symbol) \(name) \(price) is outside \(PriceBand.saneRange.lowerBound)…\(PriceBand.saneRange.upperBound)"
            }
            guard p.stopLoss.isFinite, p.takeProfit.isFinite, abs(p.stopLoss) <= Bounds.money, abs(p.takeProfit) <= Bounds.money else {
                return "\(symbol) stop \(p.stopLoss) or take-profit \(p.takeProfit) is not a bounded price"
            }
            if let m = money("\(symbol) exposure", p.exposure) ?? money("\(symbol) unrealised P&L", p.unrealized) { return m }
            guard p.fillShare.isFinite else { return "\(symbol) fill share \(p.fillShare) is not finite" }
        }
        return nil
    }

    /// Marks the symbol's position at a trusted `price`, closing it if the price crossed its
    /// stop or target; returns the P&L realised. Throws, changing nothing, when the result
    /// would leave `Bounds`.
    public mutating func mark(_ symbol: String, price: Double) throws(OutOfBounds) -> Double {
        guard var p = positions[symbol] else { return 0 }
        var next = self
        let long = p.quantity > 0
        let hit = long ? (price <= p.stopLoss || price >= p.takeProfit) : (price >= p.stopLoss || price <= p.takeProfit)
        var realized = 0.0
        if hit {
            realized = p.quantity * (price - p.averagePrice)
            next.positions[symbol] = nil
            next.balance += realized
        } else {
            p.mark = price
            next.positions[symbol] = p
        }
        if let problem = next.boundsProblem() { throw OutOfBounds(description: "marking \(symbol) at \(price): \(problem)") }
        self = next
        return realized
    }

    /// The book as the portfolio rules read it: equity at market, today's P&L, and each open
    /// position's signed value at its mark.
    public var snapshot: PortfolioSnapshot {
        PortfolioSnapshot(equity: equity, dailyPnl: dailyPnl, exposure: positions.mapValues(\.exposure),
                          fillShares: positions.mapValues(\.fillShare))
    }

    /// Applies HRM's decision for `e`. A denied proposal changes nothing: its price never
    /// marks the book. An approved one's price is judged first (`priceVerdict`, the band of
    /// trusted prices): an erroneous price is refused (`limited`) and marks nothing. A trusted
    /// price marks the symbol, then an approved buy or sell fills at it unless `limits` (the
    /// portfolio rules, asked about the book as it is at this moment) name a limit the fill
    /// would break, or a figure of the fill or of the book after it would leave `Bounds`: then
    /// nothing is filled and the execution is `limited`, naming why.
    public mutating func execute(_ e: Event, orderID: String, limits: (PortfolioSnapshot) -> [Violation] = { _ in [] }) -> Execution {
        var reference: PriceBand.Reference?
        return execute(e, orderID: orderID, band: nil, reference: &reference, limits: limits)
    }

    /// `execute` with the instrument's trusted price: `reference` (nil for its first price) is
    /// judged by `band` (nil: only the sane range) and left as the band moved it: the new
    /// trusted price when this one marked the book, the candidate count when it was refused.
    public mutating func execute(_ e: Event, orderID: String, band: PriceBand?, reference: inout PriceBand.Reference?,
                                 limits: (PortfolioSnapshot) -> [Violation] = { _ in [] }) -> Execution {
        let current = positions[e.symbol]?.quantity ?? 0
        guard let d = e.decision, d.approved else { return Execution(status: .none, positionAfter: current) }
        let trades = e.action == "buy" || e.action == "sell"
        let trusted: PriceBand.Reference
        switch band?.judge(e.price, reference: reference) ?? PriceBand.sanity(e.price) {
        case .erroneous(let reason, let next):
            if let next { reference = next }
            return Execution(status: .limited, side: trades ? e.action : nil, positionAfter: current,
                             violations: [Violation(rule: "price_band", severity: .high, message: "erroneous price: \(reason)", field: "price", value: e.price)])
        case .trusted(let r): trusted = r
        }
        func refused(_ why: String, realized: Double = 0) -> Execution {
            Execution(status: .limited, side: trades ? e.action : nil, positionAfter: positions[e.symbol]?.quantity ?? 0, realizedPnl: realized,
                      violations: [Violation(rule: "bounded_arithmetic", severity: .critical, message: "refused before anything was written: \(why)")])
        }
        var realized: Double
        do throws(OutOfBounds) {
            realized = try mark(e.symbol, price: e.price)
        } catch {
            return refused(error.description)
        }
        reference = trusted
        // The price marked the book: whatever follows, this execution is one of its history.
        seq += 1
        var x = fill(e, orderID: orderID, trades: trades, realized: realized, limits: limits)
        x.seq = seq
        return x
    }

    /// The rest of `execute`, once the trusted price has marked the book.
    private mutating func fill(_ e: Event, orderID: String, trades: Bool, realized: Double, limits: (PortfolioSnapshot) -> [Violation]) -> Execution {
        var realized = realized
        func refused(_ why: String, realized: Double = 0) -> Execution {
            Execution(status: .limited, side: trades ? e.action : nil, positionAfter: positions[e.symbol]?.quantity ?? 0, realizedPnl: realized,
                      violations: [Violation(rule: "bounded_arithmetic", severity: .critical, message: "refused before anything was written: \(why)")])
        }
        let markedPosition = positions[e.symbol]?.quantity ?? 0
        guard trades, let action = e.action, let pct = e.positionSizePct, let stop = e.stopLoss else {
            return Execution(status: .none, positionAfter: markedPosition, realizedPnl: realized)
        }
        let refusedByRules = limits(snapshot)
        guard refusedByRules.isEmpty else {
            return Execution(status: .limited, side: action, positionAfter: markedPosition, realizedPnl: realized, violations: refusedByRules)
        }
        let equityNow = equity
        let quantity = pct * equityNow / e.price
        let notional = quantity * e.price
        let rr = e.riskRewardRatio ?? 2
        let target = e.price + (e.price - stop) * rr  // works for both sides: stop is on the losing side
        guard pct.isFinite, pct > 0, quantity.isFinite, quantity > 0, quantity <= Bounds.quantity else {
            return refused("quantity \(quantity) (\(pct) of equity \(equityNow) at \(e.price)) is not in 0…1e12", realized: realized)
        }
        guard notional.isFinite, notional <= Bounds.money else { return refused("notional \(notional) is outside \(Bounds.moneyText)", realized: realized) }
        guard stop.isFinite, target.isFinite, abs(target) <= Bounds.money, abs(stop) <= Bounds.money else {
            return refused("take-profit \(target) (stop \(stop), risk/reward \(rr)) is not a bounded price", realized: realized)
        }
        var next = self
        let signed = action == "buy" ? quantity : -quantity
        var gain = 0.0
        if var p = next.positions[e.symbol], abs(p.quantity) > Self.epsilon {
            if (p.quantity > 0) == (signed > 0) {
                p.averagePrice = (p.quantity * p.averagePrice + signed * e.price) / (p.quantity + signed)
                p.quantity += signed
                p.stopLoss = stop
                p.takeProfit = target
                p.mark = e.price
                next.positions[e.symbol] = p
            } else {
                let closing = min(abs(signed), abs(p.quantity))
                gain = closing * (e.price - p.averagePrice) * (p.quantity > 0 ? 1 : -1)
                next.balance += gain
                let remaining = p.quantity + signed
                if abs(remaining) <= Self.epsilon {
                    next.positions[e.symbol] = nil
                } else if (remaining > 0) == (p.quantity > 0) {
                    p.quantity = remaining
                    p.mark = e.price
                    next.positions[e.symbol] = p
                } else {
                    next.positions[e.symbol] = Position(quantity: remaining, averagePrice: e.price, stopLoss: stop, takeProfit: target, mark: e.price)
                }
            }
        } else {
            next.positions[e.symbol] = Position(quantity: signed, averagePrice: e.price, stopLoss: stop, takeProfit: target, mark: e.price)
        }
        // The share the fill left the position at, if it opened or added to it.
        if var p = next.positions[e.symbol], abs(p.quantity) > abs(markedPosition) || (p.quantity > 0) != (markedPosition > 0) {
            let share = abs(p.exposure) / next.equity
            p.fillShare = share.isFinite ? share : .greatestFiniteMagnitude
            next.positions[e.symbol] = p
        }
        if let problem = next.boundsProblem() { return refused("after the fill, \(problem)", realized: realized) }
        self = next
        realized += gain
        return Execution(status: .filled, orderID: orderID, side: action, quantity: quantity, price: e.price,
                         notional: notional, positionAfter: positions[e.symbol]?.quantity ?? 0, realizedPnl: realized)
    }

    /// Why `throttles` refuse a fill of `e` at `nowNs`, or nil: too many fills in the last
    /// second for the account or for the symbol, or one like it (symbol, side, size) within
    /// the duplicate window.
    public func throttleViolation(_ e: Event, throttles: Throttles, nowNs: Int64) -> Violation? {
        guard let side = e.action, side == "buy" || side == "sell" else { return nil }
        let second = nowNs - 1_000_000_000
        let dupSince = nowNs - Int64(throttles.duplicateWindowMs) * 1_000_000
        var account = 0, symbol = 0
        for f in recentFills.reversed() {
            if throttles.duplicateWindowMs > 0, f.atNs > dupSince, f.symbol == e.symbol, f.side == side, f.size == e.positionSizePct {
                return Violation(rule: "duplicate_order", severity: .high,
                                 message: "duplicative: \(f.traceID) filled the same order (\(side) \(f.symbol), size \(f.size)) \((nowNs - f.atNs) / 1_000_000) ms ago, inside the \(throttles.duplicateWindowMs) ms window (ARK_DUPLICATE_WINDOW_MS)")
            }
            guard f.atNs > second else { continue }
            account += 1
            if f.symbol == e.symbol { symbol += 1 }
        }
        if throttles.ordersPerSecond > 0, account >= throttles.ordersPerSecond {
            return Violation(rule: "max_orders_per_second", severity: .high,
                             message: "throttle: \(account) orders filled for the account in the last second, the limit is \(throttles.ordersPerSecond) (ARK_MAX_ORDERS_PER_SECOND)",
                             value: Double(account), limit: Double(throttles.ordersPerSecond))
        }
        if throttles.symbolOrdersPerSecond > 0, symbol >= throttles.symbolOrdersPerSecond {
            return Violation(rule: "max_symbol_orders_per_second", severity: .high,
                             message: "throttle: \(symbol) orders filled in \(e.symbol) in the last second, the limit is \(throttles.symbolOrdersPerSecond) (ARK_MAX_SYMBOL_ORDERS_PER_SECOND)",
                             value: Double(symbol), limit: Double(throttles.symbolOrdersPerSecond))
        }
        return nil
    }

    /// Forgets fills the throttles no longer count.
    public mutating func pruneRecentFills(nowNs: Int64, throttles: Throttles) {
        let since = nowNs - throttles.windowNs
        if let keep = recentFills.firstIndex(where: { $0.atNs > since }) {
            if keep > 0 { recentFills.removeFirst(keep) }
        } else if !recentFills.isEmpty {
            recentFills.removeAll()
        }
    }

    /// Counts a fill for the throttles.
    public mutating func noteFill(_ e: Event, nowNs: Int64) {
        guard let side = e.action else { return }
        recentFills.append(RecentFill(atNs: nowNs, traceID: e.traceID, symbol: e.symbol, side: side, size: e.positionSizePct ?? 0))
        if recentFills.count > Self.maxRecentFills { recentFills.removeFirst(recentFills.count - Self.maxRecentFills) }
    }
}

/// The book as Kenny keeps it in Redis: JSON with sorted keys, the text Foundation's
/// `JSONEncoder` (`.sortedKeys`) wrote before, so books already stored read the same. Coded
/// by ARK's own reader and writer: Foundation's coders were most of Kenny's work per batch.
extension PaperBook {
    public func encoded() -> [UInt8] {
        var w = JSONWriter(capacity: 96 + positions.count * 100)
        w.beginObject()
        w.key("dailyPnl"); w.double(dailyPnl)
        w.key("day"); w.string(day)
        w.key("dayStartEquity"); w.double(dayStartEquity)
        w.key("equity"); w.double(balance)
        w.key("positions")
        w.beginObject()
        for (symbol, p) in positions.sorted(by: { $0.key < $1.key }) {
            w.key(dynamic: symbol)
            w.beginObject()
            w.key("averagePrice"); w.double(p.averagePrice)
            w.key("fillShare"); w.double(p.fillShare)
            w.key("mark"); w.double(p.mark)
            w.key("quantity"); w.double(p.quantity)
            w.key("stopLoss"); w.double(p.stopLoss)
            w.key("takeProfit"); w.double(p.takeProfit)
            w.endObject()
        }
        w.endObject()
        if !recentFills.isEmpty {
            w.key("recentFills")
            w.beginArray()
            for f in recentFills {
                w.beginArray()
                w.int(f.atNs); w.string(f.traceID); w.string(f.symbol); w.string(f.side); w.double(f.size)
                w.endArray()
            }
            w.endArray()
        }
        if seq > 0 { w.key("seq"); w.int(seq) }
        w.endObject()
        return w.bytes
    }

    public struct UnreadableBook: Error, Sendable, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Reads `encoded()`, and books written before marks (a position's mark is then its average
    /// price; the day began at `equity - dailyPnl`). Unknown keys are skipped; a missing
    /// figure, or one outside `Bounds`, is an error: Kenny then halts fills (it never trades on
    /// a book it cannot read whole).
    public init(json bytes: [UInt8]) throws(UnreadableBook) {
        do {
            self = try bytes.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                var equity: Double?, dailyPnl: Double?, day: String?, dayStart: Double?
                var positions: [String: Position]?
                var recent: [RecentFill] = []
                var seq: Int64 = 0
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    if r.matches(k, "equity") { equity = try Self.finite(&r, "equity") }
                    else if r.matches(k, "dailyPnl") { dailyPnl = try Self.finite(&r, "dailyPnl") }
                    else if r.matches(k, "day") { day = try r.readString() }
                    else if r.matches(k, "dayStartEquity") { dayStart = try Self.finite(&r, "dayStartEquity") }
                    else if r.matches(k, "positions") { positions = try Self.positions(&r) }
                    else if r.matches(k, "recentFills") { recent = try Self.recentFills(&r) }
                    else if r.matches(k, "seq") {
                        guard let v = try r.readNumber().integer, v >= 0 else { throw UnreadableBook(description: "seq is not a whole number ≥ 0") }
                        seq = v
                    }
                    else { try r.skipValue() }
                }
                try r.end()
                guard let equity, let dailyPnl, let day, let positions else {
                    throw UnreadableBook(description: "equity, dailyPnl, day and positions are required")
                }
                var book = PaperBook(equity: equity, day: day)
                book.positions = positions
                book.recentFills = recent
                book.seq = seq
                // Before marks, dailyPnl was realised only and equity had no unrealised part.
                book.dayStartEquity = dayStart ?? (equity - dailyPnl)
                if let problem = book.boundsProblem() { throw UnreadableBook(description: problem) }
                return book
            }
        } catch let e as UnreadableBook {
            throw e
        } catch {
            throw UnreadableBook(description: "\(error)")
        }
    }

    private static func positions(_ r: inout JSONReader) throws -> [String: Position] {
        var out: [String: Position] = [:]
        try r.beginObject()
        var first = true
        while let symbolKey = try r.nextKey(first: first) {
            first = false
            let symbol = try r.string(symbolKey)
            var q: Double?, avg: Double?, stop: Double?, take: Double?, mark: Double?, share: Double?
            try r.beginObject()
            var firstField = true
            while let k = try r.nextKey(first: firstField) {
                firstField = false
                if r.matches(k, "quantity") { q = try finite(&r, "quantity") }
                else if r.matches(k, "averagePrice") { avg = try finite(&r, "averagePrice") }
                else if r.matches(k, "stopLoss") { stop = try finite(&r, "stopLoss") }
                else if r.matches(k, "takeProfit") { take = try finite(&r, "takeProfit") }
                else if r.matches(k, "mark") { mark = try finite(&r, "mark") }
                else if r.matches(k, "fillShare") { share = try finite(&r, "fillShare") }
                else { try r.skipValue() }
            }
            guard let q, let avg, let stop, let take else {
                throw UnreadableBook(description: "position \(symbol): quantity, averagePrice, stopLoss and takeProfit are required")
            }
            out[symbol] = Position(quantity: q, averagePrice: avg, stopLoss: stop, takeProfit: take, mark: mark ?? avg, fillShare: share ?? 0)
        }
        return out
    }

    private static func recentFills(_ r: inout JSONReader) throws -> [RecentFill] {
        var out: [RecentFill] = []
        try r.beginArray()
        while try r.nextElement(first: out.isEmpty) {
            try r.beginArray()
            guard try r.nextElement(first: true), let at = try r.readNumber().integer,
                  try r.nextElement(first: false) else { throw UnreadableBook(description: "recentFills[\(out.count)] is not [ns, trace, symbol, side, size]") }
            let trace = try r.readString()
            guard try r.nextElement(first: false) else { throw UnreadableBook(description: "recentFills[\(out.count)] is short") }
            let symbol = try r.readString()
            guard try r.nextElement(first: false) else { throw UnreadableBook(description: "recentFills[\(out.count)] is short") }
            let side = try r.readString()
            guard try r.nextElement(first: false) else { throw UnreadableBook(description: "recentFills[\(out.count)] is short") }
            let size = try finite(&r, "recentFills size")
            guard try !r.nextElement(first: false) else { throw UnreadableBook(description: "recentFills[\(out.count)] is long") }
            out.append(RecentFill(atNs: at, traceID: trace, symbol: symbol, side: side, size: size))
            guard out.count <= maxRecentFills else { throw UnreadableBook(description: "recentFills holds more than \(maxRecentFills)") }
        }
        return out
    }

    private static func finite(_ r: inout JSONReader, _ name: String) throws -> Double {
        let v = try r.readNumber().value
        guard v.isFinite else { throw UnreadableBook(description: "\(name) is not a finite number") }
        return v
    }
}
