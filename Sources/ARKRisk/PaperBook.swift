import ARKCore
import Graveyard
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Kenny's paper account: one net position per symbol, closed when the price crosses its
/// stop loss or take-profit (stop distance × risk/reward). Pure: tested without Redis.
public struct PaperBook: Sendable, Equatable {
    public struct Position: Sendable, Equatable {
        /// Signed quantity: long > 0, short < 0.
        public var quantity: Double
        public var averagePrice: Double
        public var stopLoss: Double
        public var takeProfit: Double
    }

    public var equity: Double
    public var dailyPnl: Double
    /// UTC day (yyyy-MM-dd) that `dailyPnl` belongs to.
    public var day: String
    public var positions: [String: Position]

    public init(equity: Double, day: String) {
        self.equity = equity
        self.dailyPnl = 0
        self.day = day
        self.positions = [:]
    }

    static let epsilon = 1e-9

    public static func utcDay(_ ns: Int64) -> String {
        // Twice a batch: no Foundation formatter on the hot path.
        String(iso8601(ns).prefix(10))
    }

    /// Starts a new trading day's P&L.
    public mutating func roll(to day: String) {
        if day != self.day {
            self.day = day
            dailyPnl = 0
        }
    }

    /// Closes the symbol's position if `price` crossed its stop or target; returns the P&L realised.
    public mutating func mark(_ symbol: String, price: Double) -> Double {
        guard let p = positions[symbol] else { return 0 }
        let long = p.quantity > 0
        let hit = long ? (price <= p.stopLoss || price >= p.takeProfit) : (price >= p.stopLoss || price <= p.takeProfit)
        guard hit else { return 0 }
        let realized = p.quantity * (price - p.averagePrice)
        positions[symbol] = nil
        book(realized)
        return realized
    }

    mutating func book(_ realized: Double) {
        equity += realized
        dailyPnl += realized
    }

    /// The book as the portfolio rules read it: equity, today's P&L, and each open
    /// position's signed notional at cost.
    public var snapshot: PortfolioSnapshot {
        PortfolioSnapshot(equity: equity, dailyPnl: dailyPnl, exposure: positions.mapValues { $0.quantity * $0.averagePrice })
    }

    /// Applies HRM's decision for `e`: marks the symbol to the new price, then fills an
    /// approved buy or sell at the signal's price, unless `limits` (the portfolio rules,
    /// asked about the book as it is at this moment) name a limit the fill would break: then
    /// nothing is filled and the execution is `limited`, with those violations.
    public mutating func execute(_ e: Event, orderID: String, limits: (PortfolioSnapshot) -> [Violation] = { _ in [] }) -> Execution {
        var realized = mark(e.symbol, price: e.price)
        let current = positions[e.symbol]?.quantity ?? 0
        guard let d = e.decision, d.approved, let action = e.action, action == "buy" || action == "sell",
              let pct = e.positionSizePct, pct > 0, e.price > 0, let stop = e.stopLoss
        else {
            return Execution(status: .none, positionAfter: current, realizedPnl: realized)
        }
        let refused = limits(snapshot)
        guard refused.isEmpty else {
            return Execution(status: .limited, side: action, positionAfter: current, realizedPnl: realized, violations: refused)
        }
        let quantity = pct * equity / e.price
        let signed = action == "buy" ? quantity : -quantity
        let rr = e.riskRewardRatio ?? 2
        let target = e.price + (e.price - stop) * rr  // works for both sides: stop is on the losing side
        if var p = positions[e.symbol], abs(p.quantity) > Self.epsilon {
            if (p.quantity > 0) == (signed > 0) {
                p.averagePrice = (p.quantity * p.averagePrice + signed * e.price) / (p.quantity + signed)
                p.quantity += signed
                p.stopLoss = stop
                p.takeProfit = target
                positions[e.symbol] = p
            } else {
                let closing = min(abs(signed), abs(p.quantity))
                let gain = closing * (e.price - p.averagePrice) * (p.quantity > 0 ? 1 : -1)
                realized += gain
                book(gain)
                let remaining = p.quantity + signed
                if abs(remaining) <= Self.epsilon {
                    positions[e.symbol] = nil
                } else if (remaining > 0) == (p.quantity > 0) {
                    p.quantity = remaining
                    positions[e.symbol] = p
                } else {
                    positions[e.symbol] = Position(quantity: remaining, averagePrice: e.price, stopLoss: stop, takeProfit: target)
                }
            }
        } else {
            positions[e.symbol] = Position(quantity: signed, averagePrice: e.price, stopLoss: stop, takeProfit: target)
        }
        return Execution(status: .filled, orderID: orderID, side: action, quantity: quantity, price: e.price,
                         notional: quantity * e.price, positionAfter: positions[e.symbol]?.quantity ?? 0, realizedPnl: realized)
    }

    /// The figures HRM reads: equity, daily P&L and the signed notional of each open position.
    public var publishedFields: [(String, String)] {
        var out: [(String, String)] = [
            ("equity", equity.description), ("daily_pnl", dailyPnl.description),
            ("open_positions", String(positions.count)), ("day", day),
        ]
        for (symbol, p) in positions.sorted(by: { $0.key < $1.key }) {
            out.append(("pos:" + symbol, (p.quantity * p.averagePrice).description))
        }
        return out
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
        w.key("equity"); w.double(equity)
        w.key("positions")
        w.beginObject()
        for (symbol, p) in positions.sorted(by: { $0.key < $1.key }) {
            w.key(dynamic: symbol)
            w.beginObject()
            w.key("averagePrice"); w.double(p.averagePrice)
            w.key("quantity"); w.double(p.quantity)
            w.key("stopLoss"); w.double(p.stopLoss)
            w.key("takeProfit"); w.double(p.takeProfit)
            w.endObject()
        }
        w.endObject()
        w.endObject()
        return w.bytes
    }

    public struct UnreadableBook: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads `encoded()`. Unknown keys are skipped; a missing or non-finite figure is an error.
    public init(json bytes: [UInt8]) throws(UnreadableBook) {
        do {
            self = try bytes.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                var equity: Double?, dailyPnl: Double?, day: String?
                var positions: [String: Position]?
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    if r.matches(k, "equity") { equity = try Self.finite(&r, "equity") }
                    else if r.matches(k, "dailyPnl") { dailyPnl = try Self.finite(&r, "dailyPnl") }
                    else if r.matches(k, "day") { day = try r.readString() }
                    else if r.matches(k, "positions") { positions = try Self.positions(&r) }
                    else { try r.skipValue() }
                }
                try r.end()
                guard let equity, let dailyPnl, let day, let positions else {
                    throw UnreadableBook(description: "equity, dailyPnl, day and positions are required")
                }
                var book = PaperBook(equity: equity, day: day)
                book.dailyPnl = dailyPnl
                book.positions = positions
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
            var q: Double?, avg: Double?, stop: Double?, take: Double?
            try r.beginObject()
            var firstField = true
            while let k = try r.nextKey(first: firstField) {
                firstField = false
                if r.matches(k, "quantity") { q = try finite(&r, "quantity") }
                else if r.matches(k, "averagePrice") { avg = try finite(&r, "averagePrice") }
                else if r.matches(k, "stopLoss") { stop = try finite(&r, "stopLoss") }
                else if r.matches(k, "takeProfit") { take = try finite(&r, "takeProfit") }
                else { try r.skipValue() }
            }
            guard let q, let avg, let stop, let take else {
                throw UnreadableBook(description: "position \(symbol): quantity, averagePrice, stopLoss and takeProfit are required")
            }
            out[symbol] = Position(quantity: q, averagePrice: avg, stopLoss: stop, takeProfit: take)
        }
        return out
    }

    private static func finite(_ r: inout JSONReader, _ name: String) throws -> Double {
        let v = try r.readNumber().value
        guard v.isFinite else { throw UnreadableBook(description: "\(name) is not a finite number") }
        return v
    }
}
