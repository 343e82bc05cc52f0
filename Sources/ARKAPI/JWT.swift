import ARKCore
import Foundation

/// Why a bearer token was refused; each reaches the client as a 401 with this text.
public enum AuthFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case missing
    case notBearer
    case malformed(String)
    case unsupportedAlgorithm(String)
    case badSignature
    case expired(secondsAgo: Int64)
    case notYetValid
    case wrongIssuer(String)
    case lifetimeTooLong(seconds: Int64, max: Int)
    case missingClaim(String)
    /// The server's HMAC failed: the token is refused, never taken as verified.
    case unverifiable

    public var description: String {
        switch self {
        case .missing: "missing bearer token: send 'Authorization: Bearer <jwt>' (an operator mints one with 'ark token')"
        case .notBearer: "the Authorization header is not a bearer token: use 'Authorization: Bearer <jwt>'"
        case .malformed(let why): "malformed token: \(why)"
        case .unsupportedAlgorithm(let alg): "token algorithm '\(alg)' is not accepted: tokens must be HS256"
        case .badSignature: "token signature does not verify: it was not signed with this server's JWT_SECRET, or it was altered"
        case .expired(let ago): "token expired \(ago) s ago: mint a new one with 'ark token'"
        case .notYetValid: "token is not valid yet (nbf or iat in the future): check the clocks of the minting host"
        case .wrongIssuer(let iss): "token issuer '\(iss)' is not the issuer this server accepts (JWT_ISSUER)"
        case .lifetimeTooLong(let s, let max): "token lifetime \(s) s is longer than the \(max) s this server accepts (JWT_MAX_TTL_SECONDS)"
        case .missingClaim(let c): "token has no '\(c)' claim"
        case .unverifiable: "the server could not check the token's signature; the request is refused, try again"
        }
    }

    /// A short machine-readable code, for logs and the error body.
    public var code: String {
        switch self {
        case .missing: "token_missing"
        case .notBearer, .malformed: "token_malformed"
        case .unsupportedAlgorithm: "token_algorithm"
        case .badSignature: "token_signature"
        case .expired: "token_expired"
        case .notYetValid: "token_not_yet_valid"
        case .wrongIssuer: "token_issuer"
        case .lifetimeTooLong: "token_lifetime"
        case .missingClaim: "token_claims"
        case .unverifiable: "token_unverifiable"
        }
    }
}

/// The claims the API acts on.
public struct TokenClaims: Sendable, Equatable {
    /// The client: rate limits and logs are per subject.
    public var subject: String
    public var issuer: String
    public var issuedAt: Int64
    public var expires: Int64
    public var tokenID: String?
}

/// Mints and verifies the API's bearer tokens: JWT (RFC 7519), HS256 only, with `iss`,
/// `sub`, `iat` and `exp` required. A token with `alg: none` or any other algorithm is
/// refused outright, whatever it claims.
public struct JWTAuthority: Sendable {
    let key: [UInt8]
    public let issuer: String
    public let maxTTLSeconds: Int
    /// Clock skew tolerated between the minting host and this one.
    public static let leewaySeconds: Int64 = 30
    /// Tokens longer than this are refused before any parsing.
    public static let maxTokenBytes = 4096

    public init(secret: String, issuer: String, maxTTLSeconds: Int) {
        key = Array(secret.utf8)
        self.issuer = issuer
        self.maxTTLSeconds = maxTTLSeconds
    }

    public func mint(subject: String, ttlSeconds: Int, nowSeconds: Int64 = Int64(wallClockNanoseconds() / 1_000_000_000)) throws(HMACSHA256.Failure) -> String {
        var header = JSONWriter(capacity: 32)
        header.beginObject(); header.key("alg"); header.string("HS256"); header.key("typ"); header.string("JWT"); header.endObject()
        var claims = JSONWriter(capacity: 160)
        claims.beginObject()
        claims.key("iss"); claims.string(issuer)
        claims.key("sub"); claims.string(subject)
        claims.key("iat"); claims.int(nowSeconds)
        claims.key("exp"); claims.int(nowSeconds + Int64(ttlSeconds))
        claims.key("jti"); claims.string(SHA256.hex(secureRandomBytes(12)))
        claims.endObject()
        let signingInput = Base64URL.encode(header.bytes) + "." + Base64URL.encode(claims.bytes)
        return signingInput + "." + Base64URL.encode(try HMACSHA256.mac(key: key, message: Array(signingInput.utf8)))
    }

    /// Verifies an `Authorization` header value.
    public func verify(authorization: String?, nowSeconds: Int64) throws(AuthFailure) -> TokenClaims {
        guard let authorization, !authorization.isEmpty else { throw .missing }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw .notBearer }
        return try verify(token: parts[1].trimmingCharacters(in: .whitespaces), nowSeconds: nowSeconds)
    }

    public func verify(token: String, nowSeconds: Int64) throws(AuthFailure) -> TokenClaims {
        guard token.utf8.count <= Self.maxTokenBytes else { throw .malformed("longer than \(Self.maxTokenBytes) bytes") }
        let segments = token.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count == 3 else { throw .malformed("a JWT has three dot-separated parts, this has \(segments.count)") }
        guard let headerBytes = Base64URL.decode(segments[0]), let header = jsonObject(headerBytes) else {
            throw .malformed("the header is not base64url-encoded JSON")
        }
        guard let alg = header["alg"]?.string else { throw .malformed("the header has no 'alg'") }
        guard alg == "HS256" else { throw .unsupportedAlgorithm(alg) }
        guard let signature = Base64URL.decode(segments[2]) else { throw .malformed("the signature is not base64url") }
        let signingInput = Array(token.utf8.prefix(segments[0].utf8.count + 1 + segments[1].utf8.count))
        // The signature is checked before the claims are read: nothing unsigned is trusted.
        let expected: [UInt8]
        do { expected = try HMACSHA256.mac(key: key, message: signingInput) } catch { throw .unverifiable }
        guard HMACSHA256.equal(signature, expected) else { throw .badSignature }
        guard let claimBytes = Base64URL.decode(segments[1]), let claims = jsonObject(claimBytes) else {
            throw .malformed("the claims are not base64url-encoded JSON")
        }
        guard let iss = claims["iss"]?.string else { throw .missingClaim("iss") }
        guard iss == issuer else { throw .wrongIssuer(iss) }
        guard let sub = claims["sub"]?.string, !sub.isEmpty, sub.utf8.count <= 128 else { throw .missingClaim("sub") }
        guard let exp = integer(claims["exp"]) else { throw .missingClaim("exp") }
        guard let iat = integer(claims["iat"]) else { throw .missingClaim("iat") }
        if exp + Self.leewaySeconds < nowSeconds { throw .expired(secondsAgo: nowSeconds - exp) }
        if iat - Self.leewaySeconds > nowSeconds { throw .notYetValid }
        if let nbf = integer(claims["nbf"]), nbf - Self.leewaySeconds > nowSeconds { throw .notYetValid }
        if exp - iat > Int64(maxTTLSeconds) { throw .lifetimeTooLong(seconds: exp - iat, max: maxTTLSeconds) }
        return TokenClaims(subject: sub, issuer: iss, issuedAt: iat, expires: exp, tokenID: claims["jti"]?.string)
    }

    /// The string and number members of a JSON object (others are ignored); nil when the
    /// bytes are not one JSON object. Read with ARK's own reader, so a boolean is never a date.
    private func jsonObject(_ bytes: [UInt8]) -> [String: ClaimValue]? {
        bytes.withUnsafeBufferPointer { buf -> [String: ClaimValue]? in
            var r = JSONReader(buf)
            var out: [String: ClaimValue] = [:]
            do {
                guard try r.peekKind() == .object else { return nil }
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    let name = try r.string(k)
                    switch try r.peekKind() {
                    case .string: out[name] = .string(try r.readString())
                    case .number: out[name] = .number(try r.readNumber().value)
                    default: try r.skipValue()
                    }
                }
                try r.end()
            } catch {
                return nil
            }
            return out
        }
    }

    /// NumericDate: whole seconds (a fraction is cut).
    private func integer(_ value: ClaimValue?) -> Int64? {
        guard case .number(let d) = value, d.isFinite, abs(d) < 1e15 else { return nil }
        return Int64(d)
    }
}

enum ClaimValue {
    case string(String)
    case number(Double)

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}
