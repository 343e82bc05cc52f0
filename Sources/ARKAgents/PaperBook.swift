import ARKCore
import Foundation

/// Kenny's paper account: one net position per symbol, closed when the price crosses its
/// stop loss or take-profit (stop distance × risk/reward). Pure: tested without Redis.
public struct PaperBook: Codable, Sendable, Equatable {
    public struct Position: Codable, Sendable, Equatable {
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
        var t = time_t(ns / 1_000_000_000)
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02d", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday))
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

    /// Applies HRM's decision for `e`: marks the symbol to the new price, then fills an
    /// approved buy or sell at the signal's price.
    public mutating func execute(_ e: Event, orderID: String) -> Execution {
        var realized = mark(e.symbol, price: e.price)
        let current = positions[e.symbol]?.quantity ?? 0
        guard let d = e.decision, d.approved, let action = e.action, action == "buy" || action == "sell",
              let pct = e.positionSizePct, pct > 0, e.price > 0, let stop = e.stopLoss
        else {
            return Execution(status: .none, positionAfter: current, realizedPnl: realized)
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
