// The synthetic signals and the outcome each should lead to.

import ARKCore

/// What a synthetic signal should lead to.
public enum Expectation: Sendable, Equatable {
    /// A compliant proposal: approved, or denied only by a portfolio limit.
    case compliant
    /// Built to break this Graveyard rule: must be denied, naming it.
    case violation(rule: String)
}

/// Makes the synthetic loop's signals: compliant trades on a few symbols whose prices walk
/// randomly and now and then jump across the stops, alternating buy and sell per symbol so
/// the book does not fill up, and every
/// one signal in `violationEvery` built to break one rule, cycling through the rules.
public struct SyntheticSignals: Sendable {
    public static let symbols = ["AAPL", "MSFT", "NVDA", "SPY"]
    public static let injectedViolations: [(rule: String, apply: @Sendable (inout Event) -> Void)] = [
        ("max_leverage", { $0.leverage = 5 }),
        ("max_position_size", { $0.positionSizePct = 0.5 }),
        ("stop_loss_required", { $0.stopLoss = nil }),
        ("manipulative_intent", { $0.intent = "spoofing the order book" }),
        ("blocked_symbols", { $0.symbol = "BLOCKED" }),
        ("graveyard_immutable", { $0.action = "modify_graveyard" }),
    ]

    public let runID: String
    public var violationEvery: Int
    var rng: SplitMix64
    var prices: [String: Double] = [:]
    /// Where each symbol's walk began: it stays near it.
    var anchors: [String: Double] = [:]
    var sides: [String: Int] = [:]
    var violationsMade = 0

    /// `prices`: where each symbol's walk starts (the pipeline's trusted prices, so a new run
    /// continues the market the last one left instead of gapping past the price band); a
    /// symbol without one starts at 100, 150, 200 or 250.
    public init(runID: String, seed: UInt64, violationEvery: Int = 60, prices: [String: Double] = [:]) {
        self.prices = prices
        self.runID = runID
        self.rng = SplitMix64(seed: seed)
        self.violationEvery = violationEvery
    }

    /// The `index`-th signal (1-based): its trace id, the event and what it should lead to.
    public mutating func make(_ index: Int, nowNs: Int64) -> (event: Event, expectation: Expectation) {
        let symbol = Self.symbols[index % Self.symbols.count]
        var price = prices[symbol] ?? Double(100 + 50 * (index % Self.symbols.count))
        let anchor = anchors[symbol] ?? price
        anchors[symbol] = anchor
        price *= 1 + Double.random(in: -0.002...0.002, using: &rng)
        // One move in twenty is a 3 % jump, past the 2 % stops: positions close at their stop
        // or target, so a long run's book lives (opens, adds, reduces, closes) instead of
        // filling up and denying everything. Jumps head back towards where the walk began and
        // the walk stays within ±4.5 % of it, so any two of its quotes are inside the ±10 %
        // price band: a quote held up seconds behind a hung instance is still a true one.
        if Double.random(in: 0..<1, using: &rng) < 0.05 {
            let up = price == anchor ? Bool.random(using: &rng) : price < anchor
            price *= up ? 1.03 : 0.97
        }
        price = min(max(price, anchor * 0.955), anchor * 1.045)
        price = (price * 100).rounded() / 100
        prices[symbol] = price
        let side = sides[symbol, default: 0]
        sides[symbol] = side + 1
        let buy = side % 2 == 0
        let traceID = "syn-\(runID)-\(index)"
        var e = Event(
            traceID: traceID, id: traceID, symbol: symbol, price: price, volume: Double(100 + index % 900),
            ts: Double(nowNs) / 1e9, source: "synthetic", t0Ns: nowNs, action: buy ? "buy" : "sell",
            positionSizePct: 0.02, leverage: 1.0, stopLoss: ((buy ? price * 0.98 : price * 1.02) * 100).rounded() / 100,
            riskRewardRatio: 2.0)
        // Mid-cycle (30th, 90th, … of every 60), so even a 30 s run at 1 Hz proves a denial.
        guard violationEvery > 0, index % violationEvery == violationEvery / 2 else { return (e, .compliant) }
        let v = Self.injectedViolations[violationsMade % Self.injectedViolations.count]
        violationsMade += 1
        v.apply(&e)
        e.injectedViolation = v.rule
        // A violating signal must not move the compliant alternation of its symbol.
        sides[symbol] = side
        return (e, .violation(rule: v.rule))
    }
}
