@testable import ARKAuth
import ARKCore
import ARKTestSupport
import Foundation
import JWTKit
import Testing

@Suite struct JWTTests {
    let authority = try! JWTAuthority(secret: "0123456789abcdef0123456789abcdef", issuer: "ark", maxTTLSeconds: 3600)
    let now: Int64 = 1_795_000_000

    func refusal(_ header: String?, at time: Int64? = nil, by authority: JWTAuthority? = nil) async -> AuthFailure? {
        do {
            _ = try await (authority ?? self.authority).verify(authorization: header, nowSeconds: time ?? now)
            return nil
        } catch {
            return error
        }
    }

    static func b64url(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    @Test func mintedTokenVerifies() async throws {
        let token = try await authority.mint(subject: "desk-1", ttlSeconds: 600, nowSeconds: now)
        let claims = try await authority.verify(authorization: "Bearer \(token)", nowSeconds: now + 10)
        #expect(claims.subject == "desk-1")
        #expect(claims.expires == now + 600)
        #expect(claims.issuer == "ark")
        #expect(claims.tokenID?.count == 24)
        // The header jwt-kit writes: HS256, a JWT.
        let header = try #require(Data(base64Encoded: String(token.split(separator: ".")[0]) + "=="))
        #expect(String(decoding: header, as: UTF8.self).contains("\"alg\":\"HS256\""))
    }

    @Test func everyBadTokenIsRefusedWithItsReason() async throws {
        let good = try await authority.mint(subject: "desk-1", ttlSeconds: 600, nowSeconds: now)
        #expect(await refusal(nil) == .missing)
        #expect(await refusal("Basic dXNlcjpwYXNz") == .notBearer)
        #expect(await refusal("Bearer abc.def")?.code == "token_malformed")
        #expect(await refusal("Bearer !!!.???.***")?.code == "token_malformed")
        #expect(await refusal("Bearer " + String(repeating: "a", count: 5000)) == .malformed("longer than 4096 bytes"))
        #expect(await refusal("Bearer \(good)", at: now + 3600) == .expired(secondsAgo: 3000))
        // Within the 30 s leeway: still good.
        #expect(await refusal("Bearer \(good)", at: now + 620) == nil)
        let other = try JWTAuthority(secret: "another-secret-another-secret-another", issuer: "ark", maxTTLSeconds: 3600)
        #expect(await refusal("Bearer \(try await other.mint(subject: "x", ttlSeconds: 60, nowSeconds: now))") == .badSignature)
        // A claims segment swapped for another subject's breaks the signature.
        let parts = good.split(separator: ".")
        let forged = try await authority.mint(subject: "admin", ttlSeconds: 600, nowSeconds: now).split(separator: ".")
        #expect(await refusal("Bearer \(parts[0]).\(forged[1]).\(parts[2])") == .badSignature)
        // alg none is refused whatever it claims, and so is every algorithm but the three.
        for alg in ["none", "HS384", "RS512", "ES256", "PS256"] {
            let header = Self.b64url(Array(#"{"alg":"\#(alg)","typ":"JWT"}"#.utf8)) + "." + parts[1] + "."
            #expect(await refusal("Bearer \(header)") == .unsupportedAlgorithm(alg), "\(alg)")
        }
        #expect(await refusal("Bearer \(Self.b64url(Array(#"{"typ":"JWT"}"#.utf8))).\(parts[1]).\(parts[2])") == .malformed("the header has no 'alg'"))
        let wrongIssuer = try JWTAuthority(secret: "0123456789abcdef0123456789abcdef", issuer: "elsewhere", maxTTLSeconds: 3600)
        #expect(await refusal("Bearer \(try await wrongIssuer.mint(subject: "x", ttlSeconds: 60, nowSeconds: now))") == .wrongIssuer("elsewhere"))
        #expect(await refusal("Bearer \(try await authority.mint(subject: "x", ttlSeconds: 7200, nowSeconds: now))") == .lifetimeTooLong(seconds: 7200, max: 3600))
        #expect(await refusal("Bearer \(try await authority.mint(subject: "x", ttlSeconds: 60, nowSeconds: now + 600))") == .notYetValid)
    }

    /// A token verified once is remembered by its text: asked again, only its times are
    /// checked; any other text, one byte of its signature changed, is verified in full.
    @Test func aVerifiedTokenIsRememberedAndOnlyItsTimesAreCheckedAgain() async throws {
        let authority = try JWTAuthority(secret: "0123456789abcdef0123456789abcdef", issuer: "ark", maxTTLSeconds: 3600)
        let token = try await authority.mint(subject: "desk-1", ttlSeconds: 600, nowSeconds: now)
        #expect(authority.verified.count == 0)
        let first = try await authority.verify(token: token, nowSeconds: now)
        #expect(authority.verified.count == 1 && authority.verified[token]?.claims == first)
        #expect(try await authority.verify(token: token, nowSeconds: now + 5) == first)
        // Its times, against the clock of each request.
        #expect(await refusal("Bearer \(token)", at: now + 631, by: authority) == .expired(secondsAgo: 31))
        #expect(await refusal("Bearer \(token)", at: now - 31, by: authority) == .notYetValid)
        #expect(await refusal("Bearer \(token)", at: now + 630, by: authority) == nil)
        // The remembered text only: an altered signature, or the token under another key.
        var altered = Array(token.utf8)
        altered[altered.count - 2] = altered[altered.count - 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(await refusal("Bearer \(String(decoding: altered, as: UTF8.self))", by: authority) == .badSignature)
        let other = try JWTAuthority(secret: "another-secret-another-secret-another", issuer: "ark", maxTTLSeconds: 3600)
        #expect(await refusal("Bearer \(token)", by: other) == .badSignature)
        // Refusals are never remembered.
        #expect(authority.verified.count == 1 && other.verified.count == 0)
        // A not-before in the claims is kept with them.
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: "0123456789abcdef0123456789abcdef"), digestAlgorithm: .sha256)
        let later = try await keys.sign(JWTAuthority.Claims(iss: "ark", sub: "x", iat: now, exp: now + 600, jti: "j", nbf: now + 100))
        #expect(await refusal("Bearer \(later)", at: now + 100, by: authority) == nil)
        #expect(await refusal("Bearer \(later)", at: now + 60, by: authority) == .notYetValid)
    }

    /// The table of verified tokens stays bounded however many good tokens arrive.
    @Test func theRememberedTokensAreBounded() async throws {
        let authority = try JWTAuthority(secret: "0123456789abcdef0123456789abcdef", issuer: "ark", maxTTLSeconds: 3600)
        let wall = Int64(wallClockNanoseconds() / 1_000_000_000)
        for i in 0..<(VerifiedTokens.capacity + 10) {
            let token = try await authority.mint(subject: "client-\(i)", ttlSeconds: 600, nowSeconds: wall)
            _ = try await authority.verify(token: token, nowSeconds: wall)
            #expect(authority.verified.count <= VerifiedTokens.capacity)
        }
        #expect(authority.verified.count >= 10)
    }

    /// Claims signed with the right key but missing, mistyped or too long: each named.
    @Test func signedButIncompleteClaimsAreNamed() async throws {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: "0123456789abcdef0123456789abcdef"), digestAlgorithm: .sha256)
        struct Loose: JWTPayload {
            var fields: [String: JWTHeaderField]
            func encode(to encoder: any Encoder) throws { try fields.encode(to: encoder) }
            init(_ fields: [String: JWTHeaderField]) { self.fields = fields }
            init(from decoder: any Decoder) throws { fields = try [String: JWTHeaderField](from: decoder) }
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let full: [String: JWTHeaderField] = ["iss": .string("ark"), "sub": .string("x"), "iat": .int(Int(now)), "exp": .int(Int(now + 60))]
        func signed(_ change: (inout [String: JWTHeaderField]) -> Void) async throws -> String {
            var f = full
            change(&f)
            return "Bearer " + (try await keys.sign(Loose(f)))
        }
        #expect(await refusal(try await signed { _ in }) == nil)
        #expect(await refusal(try await signed { $0["iss"] = nil }) == .missingClaim("iss"))
        #expect(await refusal(try await signed { $0["sub"] = .string("") }) == .missingClaim("sub"))
        #expect(await refusal(try await signed { $0["sub"] = .string(String(repeating: "s", count: 129)) }) == .missingClaim("sub"))
        #expect(await refusal(try await signed { $0["exp"] = nil }) == .missingClaim("exp"))
        // A boolean or a string is never a date.
        #expect(await refusal(try await signed { $0["exp"] = .bool(true) }) == .missingClaim("exp"))
        #expect(await refusal(try await signed { $0["iat"] = .string("\(now)") }) == .missingClaim("iat"))
        #expect(await refusal(try await signed { $0["nbf"] = .int(Int(now + 600)) }) == .notYetValid)
    }

    /// Tokens from an identity provider: RS256 and EdDSA with the keys of a JWKS file.
    @Test func rs256AndEdDSATokensVerifyWithTheirJWKSKeysOnly() async throws {
        let ed = try EdDSA.PrivateKey()
        let rsaPEM = try rsaPrivateKeyPEM()
        let rsa = try Insecure.RSA.PrivateKey(pem: rsaPEM)
        let (n, e) = try rsa.publicKey.getKeyPrimitives()
        let jwks = """
            {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "idp-ed", "x": "\(Self.b64url(ed.publicKey.rawRepresentation))"},
                      {"kty": "RSA", "kid": "idp-rsa", "alg": "RS256", "n": "\(Self.b64url(n))", "e": "\(Self.b64url(e))"}]}
            """
        let server = try JWTAuthority(secret: "0123456789abcdef0123456789abcdef", issuer: "https://idp.example", maxTTLSeconds: 3600, jwks: jwks)
        try await server.ready()
        let idp = JWTKeyCollection()
        await idp.add(eddsa: ed, kid: "idp-ed")
        await idp.add(rsa: rsa, digestAlgorithm: .sha256, kid: "idp-rsa")
        let claims = JWTAuthority.Claims(iss: "https://idp.example", sub: "alice@idp", iat: now, exp: now + 600, jti: "j1")
        for kid in ["idp-ed", "idp-rsa"] {
            let token = try await idp.sign(claims, kid: JWKIdentifier(string: kid))
            #expect(try await server.verify(authorization: "Bearer " + token, nowSeconds: now).subject == "alice@idp", "\(kid)")
            #expect(await refusal("Bearer " + token, at: now + 3600, by: server) == .expired(secondsAgo: 3000))
        }
        // Another EdDSA key under the same kid: the signature fails.
        let impostor = JWTKeyCollection()
        await impostor.add(eddsa: try EdDSA.PrivateKey(), kid: "idp-ed")
        #expect(await refusal("Bearer " + (try await impostor.sign(claims, kid: "idp-ed")), by: server) == .badSignature)
        // An unknown kid is not checked against the secret; a known kid is used only for its
        // own algorithm (HS256 signed with the RSA key's public modulus as a secret: refused).
        let unknown = JWTKeyCollection()
        await unknown.add(eddsa: try EdDSA.PrivateKey(), kid: "elsewhere")
        #expect(await refusal("Bearer " + (try await unknown.sign(claims, kid: "elsewhere")), by: server) == .unknownKey("elsewhere"))
        let confused = JWTKeyCollection()
        await confused.add(hmac: HMACKey(from: Data(n)), digestAlgorithm: .sha256, kid: "idp-rsa")
        #expect(await refusal("Bearer " + (try await confused.sign(claims, kid: "idp-rsa")), by: server) == .unknownKey("idp-rsa"))
        // HS256 signed with the secret itself but naming a kid the server does not hold: refused
        // (the secret has no kid; jwt-kit alone would fall back to it).
        let withSecret = JWTKeyCollection()
        await withSecret.add(hmac: HMACKey(from: "0123456789abcdef0123456789abcdef"), digestAlgorithm: .sha256, kid: "rotated-away")
        #expect(await refusal("Bearer " + (try await withSecret.sign(claims, kid: "rotated-away")), by: server) == .unknownKey("rotated-away"))
        let noJWKS = try JWTAuthority(secret: "0123456789abcdef0123456789abcdef", issuer: "https://idp.example", maxTTLSeconds: 3600)
        #expect(await refusal("Bearer " + (try await withSecret.sign(claims, kid: "rotated-away")), by: noJWKS) == .unknownKey("rotated-away"))
        // HS256 still works beside them.
        #expect(await refusal("Bearer " + (try await server.mint(subject: "ops", ttlSeconds: 60, nowSeconds: now)), by: server) == nil)
    }

    @Test func aBadKeySetStopsTheServerAtStart() throws {
        func problem(_ jwks: String) -> String? {
            do { _ = try JWTAuthority(secret: String(repeating: "s", count: 32), issuer: "ark", maxTTLSeconds: 60, jwks: jwks); return nil } catch { return error.description }
        }
        #expect(problem("not json")?.contains("is not a JWKS document") == true)
        #expect(problem(#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?.contains("has no 'kid'") == true)
        #expect(problem(#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "a", "x": "a", "y": "b"}]}"#)?.contains("only RSA (RS256) and OKP (EdDSA)") == true)
        #expect(problem(#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}"#)?.contains("holds a private key") == true)
        #expect(problem(#"{"keys": []}"#) == nil)
    }

    /// A 2048-bit RSA key from Python's `cryptography` (which scripts/test.sh installs for the
    /// audit proof's hand check): swift-crypto's RSA generation is not a product ARK links.
    func rsaPrivateKeyPEM() throws -> String {
        let r = try runCommand("/usr/bin/env", ["python3", "-c", """
            from cryptography.hazmat.primitives.asymmetric import rsa
            from cryptography.hazmat.primitives import serialization as s
            k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            print(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode(), end="")
            """])
        guard r.code == 0, r.output.contains("BEGIN PRIVATE KEY") else { throw TestSetupError("python3 cryptography: \(r.output)") }
        return r.output
    }
}
