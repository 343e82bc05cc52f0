// Ed25519 keys and signatures through OpenSSL.

import CCrypto

/// Ed25519 (RFC 8032) through OpenSSL's libcrypto: the signature on the audit's checkpoints.
/// Keys are PEM files as `openssl genpkey -algorithm ed25519` writes them (PKCS#8 private,
/// SubjectPublicKeyInfo public), so an operator can check a checkpoint with OpenSSL alone.
public enum Ed25519 {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// A private key. Owns its OpenSSL key; immutable once made, so shared across threads.
    public final class PrivateKey: @unchecked Sendable {
        let key: OpaquePointer

        private init(_ key: OpaquePointer) { self.key = key }
        deinit { EVP_PKEY_free(key) }

        /// A new key from OpenSSL's CSPRNG.
        public static func generate() throws(Failure) -> PrivateKey {
            guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else { throw Failure("OpenSSL has no Ed25519") }
            defer { EVP_PKEY_CTX_free(ctx) }
            var key: OpaquePointer?
            guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_keygen(ctx, &key) == 1, let key else { throw Failure("OpenSSL could not make an Ed25519 key") }
            return PrivateKey(key)
        }

        /// Reads a PEM private key; it must be Ed25519.
        public init(pem: [UInt8]) throws(Failure) {
            key = try Ed25519.readPEM(pem, "private key", "the key is not an Ed25519 key (make one with `ark audit-key generate` or `openssl genpkey -algorithm ed25519`)") {
                PEM_read_bio_PrivateKey($0, nil, nil, nil)
            }
        }

        public var pem: [UInt8] {
            Ed25519.writePEM { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        }

        public var publicKey: PublicKey {
            // A key made or read above is Ed25519, whose public half is always 32 bytes.
            try! PublicKey(raw: Ed25519.rawPublicKey(of: key))
        }

        public func sign(_ message: [UInt8]) throws(Failure) -> [UInt8] {
            guard let ctx = EVP_MD_CTX_new() else { throw Failure("OpenSSL could not sign") }
            defer { EVP_MD_CTX_free(ctx) }
            var signature = [UInt8](repeating: 0, count: 64)
            var length = 64
            let ok = message.withUnsafeBytes { m in
                signature.withUnsafeMutableBufferPointer { s in
                    EVP_DigestSignInit(ctx, nil, nil, nil, key) == 1
                        && EVP_DigestSign(ctx, s.baseAddress, &length, m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count) == 1
                }
            }
            guard ok, length == 64 else { throw Failure("OpenSSL could not sign") }
            return signature
        }
    }

    /// A public key: what verification needs, and all it needs.
    public final class PublicKey: @unchecked Sendable, Equatable {
        let key: OpaquePointer
        /// The 32 bytes of RFC 8032.
        public let raw: [UInt8]

        /// A short name for the key: the first 16 hex digits of SHA-256 of its 32 bytes.
        public let keyID: String

        public init(raw: [UInt8]) throws(Failure) {
            guard raw.count == 32, let key = raw.withUnsafeBufferPointer({ EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32) }) else {
                throw Failure("an Ed25519 public key is 32 bytes")
            }
            self.key = key
            self.raw = raw
            keyID = String(SHA256.hexDigest(raw).prefix(16))
        }

        /// Reads a PEM public key (`-----BEGIN PUBLIC KEY-----`); it must be Ed25519.
        public convenience init(pem: [UInt8]) throws(Failure) {
            let parsed = try Ed25519.readPEM(pem, "public key", "the public key is not an Ed25519 key") { PEM_read_bio_PUBKEY($0, nil, nil, nil) }
            defer { EVP_PKEY_free(parsed) }
            try self.init(raw: Ed25519.rawPublicKey(of: parsed))
        }

        deinit { EVP_PKEY_free(key) }

        public var pem: [UInt8] {
            Ed25519.writePEM { PEM_write_bio_PUBKEY($0, key) }
        }

        public func verify(signature: [UInt8], message: [UInt8]) -> Bool {
            guard signature.count == 64, let ctx = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(ctx) }
            let ok = message.withUnsafeBytes { m in
                signature.withUnsafeBufferPointer { s in
                    EVP_DigestVerifyInit(ctx, nil, nil, nil, key) == 1
                        && EVP_DigestVerify(ctx, s.baseAddress, 64, m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count) == 1
                }
            }
            ERR_clear_error()
            return ok
        }

        public static func == (a: PublicKey, b: PublicKey) -> Bool { a.raw == b.raw }
    }

    /// The Ed25519 key `read` parses from `pem`; the caller owns it.
    static func readPEM(_ pem: [UInt8], _ what: String, _ notEd25519: String, _ read: (OpaquePointer) -> OpaquePointer?) throws(Failure) -> OpaquePointer {
        let parsed = pem.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return read(bio)
        }
        ERR_clear_error()
        guard let parsed else { throw Failure("not a PEM \(what)") }
        guard EVP_PKEY_get_base_id(parsed) == EVP_PKEY_ED25519 else {
            EVP_PKEY_free(parsed)
            throw Failure(notEd25519)
        }
        return parsed
    }

    static func rawPublicKey(of key: OpaquePointer) -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: 32)
        var length = 32
        _ = raw.withUnsafeMutableBufferPointer { EVP_PKEY_get_raw_public_key(key, $0.baseAddress, &length) }
        return raw
    }

    static func writePEM(_ write: (OpaquePointer?) -> Int32) -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { return [] }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { return [] }
        var pointer: UnsafeMutablePointer<CChar>?
        let n = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
        guard n > 0, let pointer else { return [] }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: n) { Array(UnsafeBufferPointer(start: $0, count: n)) }
    }
}
