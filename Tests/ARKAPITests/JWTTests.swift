@testable import ARKAPI
import ARKCore
import ARKIntake
import Testing

@Suite struct JWTTests {
    let authority = JWTAuthority(secret: "0123456789abcdef0123456789abcdef", issuer: "ark", maxTTLSeconds: 3600)
    let now: Int64 = 1_795_000_000

    @Test func mintedTokenVerifies() throws {
        let token = try authority.mint(subject: "desk-1", ttlSeconds: 600, nowSeconds: now)
        let claims = try authority.verify(authorization: "Bearer \(token)", nowSeconds: now + 10)
        #expect(claims.subject == "desk-1")
        #expect(claims.expires == now + 600)
        #expect(claims.issuer == "ark")
    }

    @Test func hmacMatchesRFC4231() throws {
        // RFC 4231 test case 2.
        let mac = try HMACSHA256.mac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(SHA256.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func base64URLRoundTripsAndRefusesJunk() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(($0 * 37 + n) & 0xFF) }
            #expect(Base64URL.decode(Substring(Base64URL.encode(bytes))) == bytes)
        }
        #expect(Base64URL.decode("ab+c") == nil)
        #expect(Base64URL.decode("abc=") == nil)
        #expect(Base64URL.decode("a") == nil)
    }

    @Test func everyBadTokenIsRefusedWithItsReason() throws {
        func refusal(_ header: String?, at time: Int64? = nil) -> AuthFailure? {
            do {
                _ = try authority.verify(authorization: header, nowSeconds: time ?? now)
                return nil
            } catch {
                return error
            }
        }
        let good = try authority.mint(subject: "desk-1", ttlSeconds: 600, nowSeconds: now)
        #expect(refusal(nil) == .missing)
        #expect(refusal("Basic dXNlcjpwYXNz") == .notBearer)
        #expect(refusal("Bearer abc.def")?.code == "token_malformed")
        #expect(refusal("Bearer !!!.???.***")?.code == "token_malformed")
        #expect(refusal("Bearer \(good)", at: now + 3600) == .expired(secondsAgo: 3000))
        let other = JWTAuthority(secret: "another-secret-another-secret-another", issuer: "ark", maxTTLSeconds: 3600)
        #expect(refusal("Bearer \(try other.mint(subject: "x", ttlSeconds: 60, nowSeconds: now))") == .badSignature)
        // A claims segment swapped for another subject's breaks the signature.
        let parts = good.split(separator: ".")
        let forged = try authority.mint(subject: "admin", ttlSeconds: 600, nowSeconds: now).split(separator: ".")
        #expect(refusal("Bearer \(parts[0]).\(forged[1]).\(parts[2])") == .badSignature)
        // alg none is refused whatever it claims.
        let none = Base64URL.encode(Array(#"{"alg":"none","typ":"JWT"}"#.utf8)) + "." + parts[1] + "."
        #expect(refusal("Bearer \(none)") == .unsupportedAlgorithm("none"))
        let wrongIssuer = JWTAuthority(secret: "0123456789abcdef0123456789abcdef", issuer: "elsewhere", maxTTLSeconds: 3600)
        #expect(refusal("Bearer \(try wrongIssuer.mint(subject: "x", ttlSeconds: 60, nowSeconds: now))") == .wrongIssuer("elsewhere"))
        #expect(refusal("Bearer \(try authority.mint(subject: "x", ttlSeconds: 7200, nowSeconds: now))") == .lifetimeTooLong(seconds: 7200, max: 3600))
        #expect(refusal("Bearer \(try authority.mint(subject: "x", ttlSeconds: 60, nowSeconds: now + 600))") == .notYetValid)
    }
}

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

@Suite struct SignalIntakeTests {
    let intake = SignalIntake(maxSignalBytes: 65_536, maxBatch: 3)

    @Test func splitsObjectsAndArraysIntoTheirOwnBytes() throws {
        let single = try intake.split(Array(#"  {"symbol":"AAPL","price":1,"volume":2} "#.utf8))
        #expect(single.single && single.items == [Array(#"{"symbol":"AAPL","price":1,"volume":2}"#.utf8)])
        let batch = try intake.split(Array(#"[ {"a":[1,{"b":"]"}]} , 7,"x" ]"#.utf8))
        #expect(!batch.single)
        #expect(batch.items.map { String(decoding: $0, as: UTF8.self) } == [#"{"a":[1,{"b":"]"}]}"#, "7", #""x""#])
    }

    @Test func refusesWhatIsNotASignalBatch() {
        func code(_ body: String) -> String? {
            do { _ = try intake.split(Array(body.utf8)); return nil } catch { return error.code }
        }
        #expect(code("[]") == "empty_batch")
        #expect(code("[{},{},{},{}]") == "batch_too_large")
        #expect(code("42") == "not_a_signal")
        #expect(code("{\"a\":") == "invalid_json")
        #expect(code("{} {}") == "invalid_json")
        #expect(code("") == "invalid_json")
        let small = SignalIntake(maxSignalBytes: 300, maxBatch: 3)
        let big = "{\"symbol\":\"AAPL\",\"pad\":\"" + String(repeating: "x", count: 300) + "\"}"
        for body in [big, "[{}," + big + "]"] {
            do { _ = try small.split(Array(body.utf8)); Issue.record("an oversized signal was let through") } catch {
                #expect(error.status == 413 && error.code == "signal_too_large")
            }
        }
    }

    @Test func resultsNameTheTraceKyleWillRecord() {
        let items = [Array(#"{"trace_id":"t-1","symbol":"AAPL","price":10,"volume":1}"#.utf8),
                     Array(#"{"symbol":"AAPL","price":10,"volume":1}"#.utf8),
                     Array(#"{"trace_id":"t-3","symbol":"AAPL","price":-1,"volume":1}"#.utf8)]
        let r = intake.results(for: items, fallbackTraceIDs: ["ark-1-0", "ark-1-1", "ark-1-2"], nowNs: 0)
        #expect(r.map(\.traceID) == ["t-1", "ark-1-1", "ark-1-2"])
        #expect(r.map(\.accepted) == [true, true, false])
        #expect(r[2].reasons.first?.hasPrefix("price:") == true)
    }

    @Test func inProductionTheAPIRefusesASigningSecretUnder32Bytes() throws {
        var config = ARKConfig()
        config.environment = "production"
        config.jwtSecret = String(repeating: "k", count: 31)
        do {
            _ = try APISettings(config: config)
            Issue.record("a 31-byte JWT_SECRET was taken in production")
        } catch {
            #expect(error.problems.map(\.variable) == ["JWT_SECRET"] && error.description.contains("31 bytes"), "\(error)")
        }
        config.jwtSecret = String(repeating: "k", count: 32)
        #expect(throws: Never.self) { _ = try APISettings(config: config) }
        // Outside production a short secret is a warning of `ark config validate`, not a refusal.
        config.environment = "local"
        config.jwtSecret = "short"
        #expect(throws: Never.self) { _ = try APISettings(config: config) }
    }
}
