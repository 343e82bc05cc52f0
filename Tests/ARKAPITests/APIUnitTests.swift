@testable import ARKAPI
import ARKAuth
import ARKCore
import Foundation
import Testing

@Suite struct RateLimiterTests {
    @Test func minuteBucketRefusesThenRefills() {
        let limiter = RateLimiter(perMinute: 3, perHour: 100)
        let t0: Int64 = 1_000_000_000_000
        for _ in 0..<3 { #expect(limiter.check(client: "a", nowNs: t0).allowed) }
        let refused = limiter.check(client: "a", nowNs: t0)
        #expect(!refused.allowed)
        #expect(refused.retryAfterSeconds == 20)  // one token per 20 s
        #expect(limiter.check(client: "b", nowNs: t0).allowed)  // per client
        #expect(limiter.check(client: "a", nowNs: t0 + 20_000_000_000).allowed)
        #expect(!limiter.check(client: "a", nowNs: t0 + 20_000_000_000).allowed)
    }

    @Test func hourBucketBindsAndRefusalsCostNothing() {
        let limiter = RateLimiter(perMinute: 100, perHour: 5)
        let t0: Int64 = 1_000_000_000_000
        for _ in 0..<5 { #expect(limiter.check(client: "a", nowNs: t0).allowed) }
        let refused = limiter.check(client: "a", nowNs: t0)
        #expect(!refused.allowed)
        #expect(refused.retryAfterSeconds == 720)  // 3600 / 5
        #expect(refused.limit == 5)
        // Refused requests took no token: after one refill period exactly one more is allowed.
        for _ in 0..<10 { _ = limiter.check(client: "a", nowNs: t0 + 1) }
        #expect(limiter.check(client: "a", nowNs: t0 + 720_000_000_000).allowed)
        #expect(!limiter.check(client: "a", nowNs: t0 + 720_000_000_000).allowed)
    }
}

/// The API's settings, checked once at start.
@Suite struct APISettingsTests {
    /// RFC 7518 §3.2: an HS256 key as long as the hash, in every environment (jwt-kit
    /// enforces it too).
    @Test func theAPIRefusesASigningSecretUnder32Bytes() throws {
        for environment in ["production", "local"] {
            var config = ARKConfig()
            config.environment = environment
            config.jwtSecret = String(repeating: "k", count: 31)
            do {
                _ = try APISettings(config: config)
                Issue.record("a 31-byte JWT_SECRET was taken in \(environment)")
            } catch {
                #expect(error.problems.map(\.variable) == ["JWT_SECRET"] && error.description.contains("31 bytes"), "\(error)")
            }
            config.jwtSecret = String(repeating: "k", count: 32)
            #expect(throws: Never.self) { _ = try APISettings(config: config) }
        }
        #expect(throws: JWTAuthority.KeySetProblem.self) { try JWTAuthority(secret: "short", issuer: "ark", maxTTLSeconds: 60) }
    }
}
