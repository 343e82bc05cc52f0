// Token buckets per client, per minute and per hour.

import Synchronization

/// A token bucket: `capacity` requests at once, refilled continuously at `capacity` per
/// `period`. Pure, so its arithmetic is tested without a clock.
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Double
    /// Tokens per second.
    public let refillRate: Double
    public private(set) var tokens: Double
    public private(set) var updatedNs: Int64

    public init(capacity: Int, periodSeconds: Double, nowNs: Int64) {
        self.capacity = Double(capacity)
        refillRate = Double(capacity) / periodSeconds
        tokens = Double(capacity)
        updatedNs = nowNs
    }

    mutating func refill(nowNs: Int64) {
        if nowNs > updatedNs {
            tokens = min(capacity, tokens + Double(nowNs - updatedNs) / 1e9 * refillRate)
            updatedNs = nowNs
        }
    }

    /// Seconds until one token is there (0 when one is there now).
    public mutating func wait(nowNs: Int64) -> Double {
        refill(nowNs: nowNs)
        return tokens >= 1 ? 0 : (1 - tokens) / refillRate
    }

    mutating func take() { tokens -= 1 }

    public var full: Bool { tokens >= capacity }
}

/// What the limiter said about one request.
public struct RateDecision: Sendable, Equatable {
    public var allowed: Bool
    /// Whole seconds to wait before a retry can succeed (0 when allowed).
    public var retryAfterSeconds: Int
    /// The tighter bucket's limit and what is left in it, for the X-RateLimit headers.
    public var limit: Int
    public var remaining: Int
}

/// Per-client rate limits: a per-minute and a per-hour token bucket for each client (the
/// token's subject). A request takes one token from both, or from neither: a refused
/// request does not use up the hour.
public final class RateLimiter: Sendable {
    let perMinute: Int
    let perHour: Int
    private let clients = Mutex<[String: (minute: TokenBucket, hour: TokenBucket)]>([:])
    /// Above this many clients, those whose buckets are full again are forgotten.
    static let sweepAbove = 10_000

    public init(perMinute: Int, perHour: Int) {
        self.perMinute = perMinute
        self.perHour = perHour
    }

    public func check(client: String, nowNs: Int64) -> RateDecision {
        clients.withLock { table in
            var entry = table[client] ?? (TokenBucket(capacity: perMinute, periodSeconds: 60, nowNs: nowNs),
                                          TokenBucket(capacity: perHour, periodSeconds: 3600, nowNs: nowNs))
            let wait = max(entry.minute.wait(nowNs: nowNs), entry.hour.wait(nowNs: nowNs))
            let allowed = wait == 0
            if allowed {
                entry.minute.take()
                entry.hour.take()
            }
            if table.count >= Self.sweepAbove && table[client] == nil {
                table = table.filter { _, b in
                    var m = b.minute, h = b.hour
                    _ = m.wait(nowNs: nowNs); _ = h.wait(nowNs: nowNs)
                    return !(m.full && h.full)
                }
            }
            table[client] = entry
            let minuteLeft = Int(entry.minute.tokens.rounded(.down)), hourLeft = Int(entry.hour.tokens.rounded(.down))
            let (limit, remaining) = minuteLeft <= hourLeft ? (perMinute, minuteLeft) : (perHour, hourLeft)
            return RateDecision(allowed: allowed, retryAfterSeconds: allowed ? 0 : max(1, Int(wait.rounded(.up))), limit: limit, remaining: max(0, remaining))
        }
    }
}
