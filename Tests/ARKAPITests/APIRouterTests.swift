import ARKAuth
import ARKBus
import ARKCore
import ARKTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ARKAPI

/// The API's router with its middlewares, in process through HummingbirdTesting (no socket):
/// authentication, rate limits, CORS, request ids, the error envelope and the body limits,
/// against a private redis-server and a state store of the suite's own.
@Suite(.serialized) final class APIRouterTests {
    let redis: RedisServer
    let dir: TempDir

    init() throws {
        redis = try RedisServer()
        dir = try TempDir("ark-api-router")
    }

    deinit {
        redis.shutdown()
        dir.remove()
    }

    func settings(perMinute: Int = 60, cors: [String] = [], maxBody: Int = 16 * 1024 * 1024) throws -> APISettings {
        var config = ARKConfig()
        config.jwtSecret = String(repeating: "s", count: 40)
        config.redisURL = redis.urlString
        config.stateDB = dir.path + "/state.db"
        config.apiRateLimitPerMinute = perMinute
        config.apiCORSOrigins = cors
        config.apiMaxBodyBytes = maxBody
        config.apiBodyMemoryBytes = max(config.apiBodyMemoryBytes, 3 * maxBody)
        return try APISettings(config: config)
    }

    /// Runs `test` against the router of `settings`, and shuts its queue down after.
    func withRouter(_ settings: APISettings, _ test: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let queue = SignalQueue(url: settings.redisURL, size: 1, backlogBound: settings.streamMaxLen)
        let app = Application(router: APIHandlers(settings: settings, queue: queue).router())
        try await app.test(.router) { client in try await test(client) }
        await queue.shutdown()
    }

    func bearer(_ settings: APISettings, subject: String = "desk") async throws -> HTTPFields {
        [.authorization: "Bearer " + (try await settings.authority.mint(subject: subject, ttlSeconds: 600))]
    }

    @Test func everyV1RouteNeedsAValidTokenAndSaysWhy() async throws {
        let s = try settings()
        let forged = try JWTAuthority(secret: String(repeating: "x", count: 40), issuer: "ark", maxTTLSeconds: 600)
        let forgedToken = try await forged.mint(subject: "desk", ttlSeconds: 60)
        try await withRouter(s) { client in
            let missing = try await client.execute(uri: "/v1/decisions", method: .get)
            #expect(missing.status == .unauthorized && missing.headers[.wwwAuthenticate] == "Bearer realm=\"ark\"")
            let bad = try await client.execute(uri: "/v1/decisions", method: .get, headers: [.authorization: "Bearer " + forgedToken])
            #expect(bad.status == .unauthorized && bad.headers[.wwwAuthenticate]?.contains("invalid_token") == true)
            #expect(errorCode(bad.body) == "token_signature" && (jsonBody(bad.body)["error"] as? [String: Any])?["trace_id"] as? String != nil)
            // Open routes need none.
            #expect(try await client.execute(uri: "/openapi.json", method: .get).status == .ok)
        }
    }

    @Test func aClientOverItsRateIsRefusedWithRetryAfterAndOthersAreNot() async throws {
        let s = try settings(perMinute: 3)
        let desk = try await bearer(s, subject: "desk")
        let other = try await bearer(s, subject: "other")
        try await withRouter(s) { client in
            let started = ContinuousClock.now
            for _ in 0..<3 {
                let r = try await client.execute(uri: "/v1/trading", method: .get, headers: desk)
                #expect(r.status == .ok, "\(r.status) \(String(buffer: r.body))")
            }
            let refused = try await client.execute(uri: "/v1/trading", method: .get, headers: desk)
            // The bucket refills on the real clock (3 a minute, a token every 20 s): the wait is
            // 20 s less what the requests took, which on a loaded machine can pass a second.
            let took = Int((ContinuousClock.now - started).components.seconds)
            let wait = Int(refused.headers[.retryAfter] ?? "") ?? -1
            #expect(refused.status == .tooManyRequests && (20 - took - 1...20).contains(wait) && refused.headers[.rateLimitRemaining] == "0" && refused.headers[.rateLimitLimit] == "3",
                    "Retry-After \(wait) after \(took) s")
            #expect(errorCode(refused.body) == "rate_limited")
            #expect(try await client.execute(uri: "/v1/trading", method: .get, headers: other).status == .ok)
        }
    }

    @Test func corsPreflightsFromListedOriginsOnly() async throws {
        let s = try settings(cors: ["https://desk.example.com"])
        try await withRouter(s) { client in
            let allowed = try await client.execute(uri: "/v1/signals", method: .options, headers: [
                .origin: "https://desk.example.com", .accessControlRequestMethod: "POST"])
            #expect(allowed.status == .noContent && allowed.headers[.accessControlAllowOrigin] == "https://desk.example.com")
            let refused = try await client.execute(uri: "/v1/signals", method: .options, headers: [
                .origin: "https://evil.example.com", .accessControlRequestMethod: "POST"])
            #expect(refused.status == .forbidden && errorCode(refused.body) == "origin_not_allowed")
        }
    }

    @Test func aRequestIDIsKeptWhenSaneAndMadeOtherwise() async throws {
        let s = try settings()
        try await withRouter(s) { client in
            let kept = try await client.execute(uri: "/healthz", method: .get, headers: [.requestID: "abc-123"])
            #expect(kept.headers[.requestID] == "abc-123")
            let odd = try await client.execute(uri: "/healthz", method: .get, headers: [.requestID: String(repeating: "x", count: 500)])
            #expect(odd.headers[.requestID].map { $0.count <= 128 && $0 != String(repeating: "x", count: 500) } == true)
        }
    }

    @Test func unknownRoutesAndWrongMethodsAreTheEnvelopesNotAStackTrace() async throws {
        let s = try settings()
        let auth = try await bearer(s)
        try await withRouter(s) { client in
            let notFound = try await client.execute(uri: "/v2/nothing", method: .get)
            #expect(notFound.status == .notFound && errorCode(notFound.body) != nil)
            let wrongType = try await client.execute(uri: "/v1/signals", method: .post, headers: auth + [.contentType: "text/plain"],
                                                     body: ByteBuffer(string: "{}"))
            #expect(wrongType.status == .unsupportedMediaType, "\(wrongType.status)")
        }
    }

    @Test func aBodyOverTheLimitIs413BeforeItIsRead() async throws {
        let s = try settings(maxBody: 1024)
        let auth = try await bearer(s)
        try await withRouter(s) { client in
            let big = try await client.execute(uri: "/v1/signals", method: .post, headers: auth + [.contentType: "application/json"],
                                               body: ByteBuffer(string: "[" + String(repeating: " ", count: 2048) + "]"))
            #expect(big.status == .contentTooLarge, "\(big.status)")
        }
    }

    @Test func aSignalIsTakenThroughTheWholeEnvelope() async throws {
        let s = try settings()
        let auth = try await bearer(s)
        try await withRouter(s) { client in
            let body = #"[{"id":"s1","symbol":"AAPL","price":189.5,"volume":100,"ts":1700000000,"source":"test"}]"#
            let taken = try await client.execute(uri: "/v1/signals", method: .post, headers: auth + [.contentType: "application/json"], body: ByteBuffer(string: body))
            #expect(taken.status == .accepted, "\(String(buffer: taken.body))")
        }
        #expect(try redis.client().command(["XLEN", "ark:kyle"]).integer == 1)
    }
}

private func jsonBody(_ body: ByteBuffer) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
}

/// The `error.code` of the API's error envelope.
private func errorCode(_ body: ByteBuffer) -> String? {
    (jsonBody(body)["error"] as? [String: Any])?["code"] as? String
}

private func + (a: HTTPFields, b: HTTPFields) -> HTTPFields {
    var out = a
    out.append(contentsOf: b)
    return out
}
