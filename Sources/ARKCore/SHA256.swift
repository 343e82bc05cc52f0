import CCrypto

/// SHA-256 through OpenSSL's libcrypto, which uses the CPU's SHA extensions where present
/// (about ten times faster than portable Swift here, and Aletheia hashes every pass record).
/// The low-level `SHA256_*` calls, not EVP: see `CCrypto/shim.h` for why.
/// Checked against the NIST vectors and `sha256sum` in the tests.
public struct SHA256: Sendable {
    /// Owns the digest state; a copied `SHA256` shares it, so keep one per digest.
    private final class Context: @unchecked Sendable {
        var state = SHA256_CTX()
        init() { SHA256_Init(&state) }
    }

    private let context = Context()

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in _ = SHA256_Update(&context.state, raw.baseAddress, raw.count) }
    }

    public mutating func finalize() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            SHA256_Final(out.baseAddress, &context.state)
            count = 32
        }
    }

    /// One-shot digest.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            var state = SHA256_CTX()
            SHA256_Init(&state)
            bytes.withUnsafeBytes { raw in _ = SHA256_Update(&state, raw.baseAddress, raw.count) }
            SHA256_Final(out.baseAddress, &state)
            count = 32
        }
    }

    public static func hexDigest(_ bytes: [UInt8]) -> String {
        hex(hash(bytes))
    }

    public static func hex(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(digest.count * 2)
        for b in digest {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
