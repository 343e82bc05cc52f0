// Capped exponential back-off with full jitter, for reconnecting.

/// Capped exponential back-off with full jitter, for reconnecting to Redis: the n-th retry
/// waits a random time in [0, min(cap, base · 2ⁿ)], so restarted instances do not stampede.
public struct Backoff: Sendable {
    public var base: Duration
    public var cap: Duration
    public private(set) var attempt: Int = 0

    public init(base: Duration = .milliseconds(50), cap: Duration = .seconds(5)) {
        self.base = base
        self.cap = cap
    }

    /// The ceiling of the next wait, before jitter.
    public var ceiling: Duration {
        let factor = 1 << min(attempt, 20)
        let raw = base * factor
        return raw > cap ? cap : raw
    }

    /// The next wait, drawn with `generator`, and advances the attempt count.
    public mutating func next<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        let ceilingNs = max(1, Int64(ceiling.components.seconds) * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000)
        attempt += 1
        return .nanoseconds(Int64.random(in: 0...ceilingNs, using: &generator))
    }

    public mutating func next() -> Duration {
        var g = SystemRandomNumberGenerator()
        return next(using: &g)
    }

    public mutating func reset() { attempt = 0 }
}
