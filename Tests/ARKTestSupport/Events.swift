import ARKCore

/// A proposal as HRM hands it to Kenny, for the book's and the stages' unit tests.
public func event(_ symbol: String = "AAPL", price: Double, action: String?, size: Double = 0.05, stop: Double? = nil, rr: Double = 2, approved: Bool = true) -> Event {
    var e = Event(traceID: "t-\(price)", id: "s", symbol: symbol, price: price, volume: 1, ts: 0, source: "test", t0Ns: 0,
                  action: action, positionSizePct: size, leverage: 1, stopLoss: stop ?? (action == "sell" ? price * 1.02 : price * 0.98), riskRewardRatio: rr)
    e.decision = Decision(approved: approved, violations: [], warnings: [], rulesChecked: 11, complianceScore: 1, policyHash: "h", evalNs: 1)
    return e
}

