// Joey, the scorer: turns a validated signal into a proposal.

import ARKBus
import ARKCore

/// Per-symbol price state and the proposal it suggests. Pure: tested without Redis.
public struct JoeyScorer: Sendable {
    struct SymbolState {
        var mean: Double
        var variance: Double
        var count: Int
    }

    /// Weight of the newest price in the moving averages.
    public var alpha = 0.2
    /// Symbols tracked before the oldest state is dropped (bounded memory).
    public var maxSymbols = 50_000
    private var states: [String: SymbolState] = [:]

    public init() {}

    /// z-score of `price` against the symbol's exponentially weighted mean and variance,
    /// then updates them. The first price of a symbol scores 0.
    public mutating func score(symbol: String, price: Double) -> Double {
        guard var s = states[symbol] else {
            if states.count >= maxSymbols { states.removeAll(keepingCapacity: true) }
            states[symbol] = SymbolState(mean: price, variance: 0, count: 1)
            return 0
        }
        let deviation = price - s.mean
        let sd = s.variance.squareRoot()
        let z = sd > 0 ? deviation / sd : 0
        s.mean += alpha * deviation
        s.variance = (1 - alpha) * (s.variance + alpha * deviation * deviation)
        s.count += 1
        states[symbol] = s
        return z.isFinite ? z : 0
    }

    /// Fills the proposal fields the producer left out. The action follows the stop loss
    /// (a stop below the price protects a buy, above it a sell), else the momentum; the size
    /// grows with the signal's strength within 2–5% of equity. A stop loss is never invented:
    /// the Graveyard requires one from the producer.
    public mutating func propose(_ e: inout Event) {
        let z = score(symbol: e.symbol, price: e.price)
        if e.action == nil {
            if let stop = e.stopLoss, stop.isFinite {
                e.action = stop < e.price ? "buy" : (stop > e.price ? "sell" : "hold")
            } else {
                e.action = z > 1 ? "buy" : (z < -1 ? "sell" : "hold")
            }
        }
        if e.positionSizePct == nil { e.positionSizePct = 0.02 + 0.01 * min(abs(z), 3) }
        if e.leverage == nil { e.leverage = 1.0 }
        if e.riskRewardRatio == nil { e.riskRewardRatio = 2.0 }
    }
}

/// Joey: pattern scoring and proposal.
public final class Joey: StageProcessor {
    public let stage = Stage.joey
    public let track: Track
    public let shard: Shard
    var scorer = JoeyScorer()
    /// A rehearsed sizing bug (`ARK_FAULT=joey:size=…`): every proposal at this size.
    let forcedSize: Double?

    public init(config: ARKConfig = ARKConfig(), shard: Shard = .untagged) {
        self.shard = shard
        track = config.track
        forcedSize = config.fault?.stage == .joey ? config.fault?.positionSizePct : nil
    }

    public func handle(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult {
        try forwardEach(batch, context: context) { e in
            let given = (e.action, e.positionSizePct, e.leverage, e.riskRewardRatio)
            scorer.propose(&e)
            if let forcedSize { e.positionSizePct = forcedSize }
            var set: [(key: EventKey, json: [UInt8])] = []
            if let v = e.action, v != given.0 { set.append((.action, EventCodec.json(v))) }
            if let v = e.positionSizePct, v != given.1 { set.append((.positionSizePct, EventCodec.json(v))) }
            if let v = e.leverage, v != given.2 { set.append((.leverage, EventCodec.json(v))) }
            if let v = e.riskRewardRatio, v != given.3 { set.append((.riskRewardRatio, EventCodec.json(v))) }
            return set
        }
    }
}
