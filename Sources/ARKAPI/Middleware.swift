// The request envelope every route shares: authentication, rate limits, CORS, request ids and
// errors.

import ARKAuth
import ARKCore
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// The request envelope every route shares: a correlation id (the client's X-Request-ID
/// when it is sane, else a new one) returned as a header and logged; CORS for configured
/// origins; every failure turned into the JSON error body with the right status, never
/// internals; one log line and one metric per request.
struct FrontDoorMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let corsOrigins: [String]

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        let start = monotonicNanoseconds()
        var context = context
        context.requestID = Self.requestID(request.headers[.requestID])
        context.logger[metadataKey: "request_id"] = .string(context.requestID)
        let origin = request.headers[.origin]
        let allowedOrigin = origin.flatMap { o in corsOrigins.contains(o) || corsOrigins.contains("*") ? o : nil }

        var response: Response
        if request.method == .options, origin != nil, request.headers[.accessControlRequestMethod] != nil {
            response = allowedOrigin == nil
                ? APIError(.forbidden, "origin_not_allowed", "origin \(origin!) may not call this API: add it to API_CORS_ORIGINS").response(requestID: context.requestID)
                : Response(status: .noContent, headers: [
                    .accessControlAllowMethods: "GET, POST, OPTIONS",
                    .accessControlAllowHeaders: "Authorization, Content-Type, X-Request-ID",
                    .accessControlMaxAge: "600",
                ])
        } else {
            do {
                response = try await next(request, context)
            } catch let error as APIError {
                response = error.response(requestID: context.requestID)
            } catch let error as any HTTPResponseError {
                response = Self.translate(error.status, request).response(requestID: context.requestID)
            } catch {
                context.logger.error("request failed", metadata: ["path": .string(request.uri.path), "error": .string("\(error)")])
                response = APIError(.internalServerError, "internal", "the server failed to handle this request; it is logged under this trace_id")
                    .response(requestID: context.requestID)
            }
        }
        if let allowedOrigin {
            response.headers[.accessControlAllowOrigin] = allowedOrigin
            response.headers[.accessControlExposeHeaders] = "X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining"
            response.headers[values: .vary].append("Origin")
        }
        response.headers[.requestID] = context.requestID
        let ms = Double(monotonicNanoseconds() - start) / 1e6
        var metadata: Logger.Metadata = [
            "method": .string(request.method.rawValue), "path": .string(request.uri.path),
            "status": .stringConvertible(response.status.code), "duration_ms": .stringConvertible((ms * 1000).rounded() / 1000),
        ]
        if let client = context.client.subject { metadata["client"] = .string(client) }
        context.logger.info("request", metadata: metadata)
        Counter(label: MetricName.apiRequests, dimensions: [("method", request.method.rawValue), ("status", String(response.status.code))]).increment()
        Metrics.Timer(label: MetricName.apiLatency).recordNanoseconds(monotonicNanoseconds() - start)
        return response
    }

    /// A client-chosen correlation id is kept when it is short and plain; anything else is
    /// replaced, so a header cannot inject into logs.
    static func requestID(_ supplied: String?) -> String {
        if let s = supplied, (1...128).contains(s.utf8.count),
           s.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }) {
            return s
        }
        return "req-" + SHA256.hex(secureRandomBytes(8))
    }

    /// The router's own errors, in the API's words: an unknown path is 404, a known path
    /// with the wrong method 405 with Allow.
    static func translate(_ status: HTTPResponse.Status, _ request: Request) -> APIError {
        switch status {
        case .notFound:
            let methods = APIRoute.all.filter { $0.matches(request.uri.path) }.map(\.method.rawValue)
            if !methods.isEmpty {
                return APIError(.methodNotAllowed, "method_not_allowed", "\(request.method.rawValue) is not allowed on \(request.uri.path); use \(methods.joined(separator: ", "))",
                                headers: [.allow: methods.joined(separator: ", ")])
            }
            return APIError(.notFound, "not_found", "no such endpoint: \(request.uri.path); the endpoints are listed in /openapi.json")
        case .contentTooLarge:
            return APIError(.contentTooLarge, "body_too_large", "the request body is larger than this server accepts (API_MAX_BODY_BYTES)")
        default:
            return APIError(status, "http_\(status.code)", status.reasonPhrase)
        }
    }
}

/// Every `/v1` route: a valid bearer token, then the client's rate limit.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let authority: JWTAuthority
    let limiter: RateLimiter

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        let claims: TokenClaims
        do {
            claims = try await authority.verify(authorization: request.headers[.authorization], nowSeconds: wallClockNanoseconds() / 1_000_000_000)
        } catch {
            // Refusals are rate limited per peer address, as clients are: guessing tokens or
            // flooding the verifier costs the same budget as using the API.
            let peer = context.remoteAddress?.ipAddress ?? "unknown"
            let refused = limiter.check(client: "unauthenticated " + peer, nowNs: monotonicNanoseconds())
            guard refused.allowed else {
                context.logger.notice("unauthenticated requests over their rate limit", metadata: ["peer": .string(peer)])
                throw APIError(.tooManyRequests, "rate_limited",
                               "too many requests without a valid token from this address (\(limiter.perMinute)/min); retry after \(refused.retryAfterSeconds) s with a valid token",
                               headers: [.retryAfter: String(refused.retryAfterSeconds), .rateLimitLimit: String(refused.limit), .rateLimitRemaining: "0"])
            }
            var challenge = "Bearer realm=\"ark\""
            if error != .missing { challenge += ", error=\"invalid_token\"" }
            context.logger.notice("token refused", metadata: ["reason": .string(error.code), "peer": .string(peer)])
            throw APIError(.unauthorized, error.code, error.description, headers: [.wwwAuthenticate: challenge])
        }
        context.client.subject = claims.subject
        let decision = limiter.check(client: claims.subject, nowNs: monotonicNanoseconds())
        guard decision.allowed else {
            throw APIError(.tooManyRequests, "rate_limited",
                           "client '\(claims.subject)' is over its rate limit (\(limiter.perMinute)/min and \(limiter.perHour)/hour); retry after \(decision.retryAfterSeconds) s, or batch signals (up to \(ARKConfig.apiMaxBatch) per request)",
                           headers: [.retryAfter: String(decision.retryAfterSeconds), .rateLimitLimit: String(decision.limit), .rateLimitRemaining: "0"])
        }
        var response = try await next(request, context)
        response.headers[.rateLimitLimit] = String(decision.limit)
        response.headers[.rateLimitRemaining] = String(decision.remaining)
        return response
    }
}
