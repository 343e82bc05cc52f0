// Bearer tokens: minting HS256 ones and verifying HS256, RS256 and EdDSA ones.

import ARKCore
import Foundation
import JWTKit
import Synchronization

/// Why a bearer token was refused; each reaches the client as a 401 with this text.
public enum AuthFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case missing
    case notBearer
    case malformed(String)
    case unsupportedAlgorithm(String)
    case badSignature
    /// The header names a key (`kid`) this server does not hold (for any algorithm: the
    /// secret has no kid), or one of another algorithm.
    case unknownKey(String)
    case expired(secondsAgo: Int64)
    case notYetValid
    case wrongIssuer(String)
    case lifetimeTooLong(seconds: Int64, max: Int)
    case missingClaim(String)
    /// The server could not run the check: the token is refused, never taken as verified.
    case unverifiable

    public var description: String {
        switch self {
        case .missing: "missing bearer token: send 'Authorization: Bearer <jwt>' (an operator mints one with 'ark token')"
        case .notBearer: "the Authorization header is not a bearer token: use 'Authorization: Bearer <jwt>'"
        case .malformed(let why): "malformed token: \(why)"
        case .unsupportedAlgorithm(let alg): "token algorithm '\(alg)' is not accepted: tokens must be HS256 (JWT_SECRET), or RS256 or EdDSA with a key of JWT_JWKS_FILE"
        case .badSignature: "token signature does not verify: it was not signed with this server's JWT_SECRET or a key of its JWT_JWKS_FILE, or it was altered"
        case .unknownKey(let kid): "token key '\(kid)' is not one this server holds for the token's algorithm (JWT_JWKS_FILE)"
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
        case .badSignature, .unknownKey: "token_signature"
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

/// Mints and verifies the bearer tokens of the API and the console's actions: JWT (RFC 7519)
/// with vapor/jwt-kit. HS256 with JWT_SECRET, as `ark token` mints them; RS256 and EdDSA with
/// the public keys of a JWKS file (JWT_JWKS_FILE, each key with its `kid`), for tokens an
/// identity provider issues. `iss`, `sub`, `iat` and `exp` are required; any other algorithm
/// (`none` among them) is refused outright, whatever the token claims.
public struct JWTAuthority: Sendable {
    let keys: JWTKeyCollection
    /// The `kid`s of the JWKS file: a token naming any other key is refused, whatever its
    /// algorithm (jwt-kit would check an unknown kid against the default key, the secret).
    let keyIDs: Set<String>
    /// The keys of the JWKS file, registered on first use (the collection is an actor).
    private let registered: Task<Void, any Error>
    /// Tokens this authority has verified, by their exact text.
    let verified = VerifiedTokens()
    public let issuer: String
    public let maxTTLSeconds: Int
    /// Clock skew tolerated between the minting host and this one.
    public static let leewaySeconds: Int64 = 30
    /// Tokens longer than this are refused before any parsing.
    public static let maxTokenBytes = 4096
    /// The algorithms verified: HMAC with the secret, and the two public-key ones.
    public static let algorithms: Set<String> = ["HS256", "RS256", "EdDSA"]
    /// An HS256 key at least as long as the hash (RFC 7518 §3.2: MUST).
    public static let minimumSecretBytes = 32

    public struct KeySetProblem: Error, CustomStringConvertible {
        public let description: String
    }

    /// `jwks`: the text of a JWKS document (RFC 7517 §5) of RS256 or EdDSA public keys,
    /// each with a `kid`; checked here, so a bad file stops the server at start.
    public init(secret: String, issuer: String, maxTTLSeconds: Int, jwks: String? = nil) throws(KeySetProblem) {
        guard secret.utf8.count >= Self.minimumSecretBytes else {
            throw KeySetProblem(description: "JWT_SECRET is \(secret.utf8.count) bytes: an HS256 key must be at least \(Self.minimumSecretBytes) (RFC 7518 §3.2); set it to openssl rand -hex 32")
        }
        let keys = JWTKeyCollection()
        var set: JWKS?
        if let jwks {
            do {
                set = try JSONDecoder().decode(JWKS.self, from: Data(jwks.utf8))
            } catch {
                throw KeySetProblem(description: "JWT_JWKS_FILE is not a JWKS document ({\"keys\": [...]}): \(error)")
            }
            for key in set?.keys ?? [] {
                guard let kid = key.keyIdentifier?.string, !kid.isEmpty else {
                    throw KeySetProblem(description: "a key of JWT_JWKS_FILE has no 'kid': every key needs one, or it would take the place of JWT_SECRET")
                }
                guard key.keyType == .rsa || key.keyType == .octetKeyPair else {
                    throw KeySetProblem(description: "key '\(kid)' of JWT_JWKS_FILE is of type \(key.keyType.rawValue): only RSA (RS256) and OKP (EdDSA) keys are accepted")
                }
                if key.privateExponent != nil {
                    throw KeySetProblem(description: "key '\(kid)' of JWT_JWKS_FILE holds a private key: give this server only the public keys")
                }
            }
        }
        let secretKey = HMACKey(from: secret)
        registered = Task { [set] in
            await keys.add(hmac: secretKey, digestAlgorithm: .sha256)
            if let set { _ = try await keys.add(jwks: set) }
        }
        self.keys = keys
        keyIDs = Set((set?.keys ?? []).compactMap { $0.keyIdentifier?.string })
        self.issuer = issuer
        self.maxTTLSeconds = maxTTLSeconds
    }

    /// The authority ARKConfig describes: JWT_SECRET, JWT_ISSUER, JWT_MAX_TTL_SECONDS and the
    /// keys of JWT_JWKS_FILE.
    public init(config: ARKConfig) throws(KeySetProblem) {
        var jwks: String?
        if !config.jwtJWKSFile.isEmpty {
            do {
                jwks = String(decoding: try readFileBytes(config.jwtJWKSFile), as: UTF8.self)
            } catch {
                throw KeySetProblem(description: "cannot read JWT_JWKS_FILE \(config.jwtJWKSFile): \(error)")
            }
        }
        try self.init(secret: config.jwtSecret, issuer: config.jwtIssuer, maxTTLSeconds: config.jwtMaxTTLSeconds, jwks: jwks)
    }

    /// Waits for the keys to be registered; throws when a JWKS key's material is unusable.
    public func ready() async throws(KeySetProblem) {
        do { try await registered.value } catch { throw KeySetProblem(description: "a key of JWT_JWKS_FILE cannot be used: \(error)") }
    }

    public func mint(subject: String, ttlSeconds: Int, nowSeconds: Int64 = Int64(wallClockNanoseconds() / 1_000_000_000)) async throws -> String {
        try await registered.value
        return try await keys.sign(Claims(iss: issuer, sub: subject, iat: nowSeconds, exp: nowSeconds + Int64(ttlSeconds), jti: SHA256.hex(secureRandomBytes(12))))
    }

    /// Verifies an `Authorization` header value.
    public func verify(authorization: String?, nowSeconds: Int64) async throws(AuthFailure) -> TokenClaims {
        guard let authorization, !authorization.isEmpty else { throw .missing }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw .notBearer }
        return try await verify(token: parts[1].trimmingCharacters(in: .whitespaces), nowSeconds: nowSeconds)
    }

    public func verify(token: String, nowSeconds: Int64) async throws(AuthFailure) -> TokenClaims {
        guard token.utf8.count <= Self.maxTokenBytes else { throw .malformed("longer than \(Self.maxTokenBytes) bytes") }
        // A token verified before (the same text: signature, issuer, subject and lifetime
        // checked) only has its times checked again.
        if let known = verified[token] {
            try Self.checkTimes(exp: known.claims.expires, iat: known.claims.issuedAt, nbf: known.notBefore, nowSeconds: nowSeconds)
            return known.claims
        }
        let segments = token.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count == 3 else { throw .malformed("a JWT has three dot-separated parts, this has \(segments.count)") }
        // The header decides which key checks the signature; nothing else of it is trusted.
        let header: JWTHeader
        do {
            header = try DefaultJWTParser().parse(Array(token.utf8), as: Unread.self).header
        } catch {
            throw .malformed("the header is not base64url-encoded JSON")
        }
        guard let alg = header.alg else { throw .malformed("the header has no 'alg'") }
        guard Self.algorithms.contains(alg) else { throw .unsupportedAlgorithm(alg) }
        if let named = header.kid, !keyIDs.contains(named) { throw .unknownKey(named) }
        let kid = header.kid.flatMap { JWKIdentifier(string: $0) }
        do { try await registered.value } catch { throw .unverifiable }
        // A key is used only for its own algorithm: an HS256 header naming an RSA key, or one
        // naming an unknown kid (which jwt-kit would check against the secret), is refused.
        let key: any JWTAlgorithm
        do { key = try await keys.getKey(for: kid, alg: alg) } catch { throw .unknownKey(header.kid ?? "") }
        guard key.name == alg else {
            if let kid = header.kid { throw .unknownKey(kid) }
            throw .badSignature
        }
        let claims: Claims
        do {
            claims = try await keys.verify(token, as: Claims.self)
        } catch let error as JWTError {
            switch error.errorType {
            case .signatureVerificationFailed: throw .badSignature
            case .malformedToken: throw .malformed("the claims are not base64url-encoded JSON")
            case .unknownKID, .noKeyProvided: throw .unknownKey(header.kid ?? "")
            default: throw .unverifiable
            }
        } catch {
            throw .unverifiable
        }
        // Only now, with the signature checked, are the claims read.
        guard let iss = claims.iss else { throw .missingClaim("iss") }
        guard iss == issuer else { throw .wrongIssuer(iss) }
        guard let sub = claims.sub, !sub.isEmpty, sub.utf8.count <= 128 else { throw .missingClaim("sub") }
        guard let exp = claims.exp else { throw .missingClaim("exp") }
        guard let iat = claims.iat else { throw .missingClaim("iat") }
        try Self.checkTimes(exp: exp, iat: iat, nbf: claims.nbf, nowSeconds: nowSeconds)
        if exp - iat > Int64(maxTTLSeconds) { throw .lifetimeTooLong(seconds: exp - iat, max: maxTTLSeconds) }
        let verifiedClaims = TokenClaims(subject: sub, issuer: iss, issuedAt: iat, expires: exp, tokenID: claims.jti)
        verified.remember(token, VerifiedTokens.Entry(claims: verifiedClaims, notBefore: claims.nbf))
        return verifiedClaims
    }

    /// The checks that depend on the clock, with the leeway.
    static func checkTimes(exp: Int64, iat: Int64, nbf: Int64?, nowSeconds: Int64) throws(AuthFailure) {
        if exp + leewaySeconds < nowSeconds { throw .expired(secondsAgo: nowSeconds - exp) }
        if iat - leewaySeconds > nowSeconds { throw .notYetValid }
        if let nbf, nbf - leewaySeconds > nowSeconds { throw .notYetValid }
    }

    /// The claims ARK reads. Each is optional and of its one type (a NumericDate is a
    /// number, never a boolean or a string), so a missing or mistyped claim is named as
    /// missing rather than failing the whole decode; checked by `verify`, not by jwt-kit.
    struct Claims: JWTPayload {
        var iss: String?
        var sub: String?
        var iat: Int64?
        var exp: Int64?
        var nbf: Int64?
        var jti: String?

        enum CodingKeys: String, CodingKey { case iss, sub, iat, exp, nbf, jti }

        init(iss: String, sub: String, iat: Int64, exp: Int64, jti: String, nbf: Int64? = nil) {
            self.iss = iss
            self.sub = sub
            self.iat = iat
            self.exp = exp
            self.jti = jti
            self.nbf = nbf
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            iss = try? c.decodeIfPresent(String.self, forKey: .iss)
            sub = try? c.decodeIfPresent(String.self, forKey: .sub)
            jti = try? c.decodeIfPresent(String.self, forKey: .jti)
            iat = Self.numericDate(c, .iat)
            exp = Self.numericDate(c, .exp)
            nbf = Self.numericDate(c, .nbf)
        }

        /// Whole seconds (a fraction is cut); nil for anything but a finite number.
        static func numericDate(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) -> Int64? {
            if (try? c.decodeIfPresent(Bool.self, forKey: key)) != nil { return nil }
            guard let d = try? c.decodeIfPresent(Double.self, forKey: key), d.isFinite, abs(d) < 1e15 else { return nil }
            return Int64(d)
        }

        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// A payload read for nothing: the header is what is wanted, whatever the claims hold.
    struct Unread: JWTPayload {
        init(from decoder: any Decoder) throws {}
        func encode(to encoder: any Encoder) throws {}
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }
}

/// The tokens one `JWTAuthority` has verified, by their exact text. A client sends the same
/// token with every request; checking it again costs jwt-kit's JSON decoding of its header
/// and claims twice and two hops onto its key collection's actor (7 % of `ark run`'s CPU
/// under `Benchmarks/api_load.sh`). Only tokens whose signature, issuer, subject and
/// lifetime passed are kept, so nobody without a signing key can fill it; any other text
/// (one byte of the signature changed) is verified in full. Keys never change while the
/// process runs (a new JWT_SECRET or JWT_JWKS_FILE takes a restart), so an entry stays true
/// until its token expires; expired entries are dropped when the table is full.
final class VerifiedTokens: Sendable {
    struct Entry: Sendable {
        var claims: TokenClaims
        var notBefore: Int64?
    }

    /// Enough for every client of a deployment: at most 4 MB (tokens of the 4,096-byte limit),
    /// about 300 KB of the tokens `ark token` mints.
    static let capacity = 1024
    private let entries = Mutex<[String: Entry]>([:])

    subscript(token: String) -> Entry? { entries.withLock { $0[token] } }

    var count: Int { entries.withLock { $0.count } }

    func remember(_ token: String, _ entry: Entry) {
        entries.withLock { table in
            if table.count >= Self.capacity {
                let now = Int64(wallClockNanoseconds() / 1_000_000_000)
                table = table.filter { $0.value.claims.expires + JWTAuthority.leewaySeconds >= now }
                if table.count >= Self.capacity { table.removeAll(keepingCapacity: true) }
            }
            table[token] = entry
        }
    }
}
