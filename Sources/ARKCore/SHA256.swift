import CCrypto

/// SHA-256 through OpenSSL's libcrypto, which uses the CPU's SHA extensions where present
/// (about ten times faster than portable Swift here, and Aletheia hashes every pass record).
/// Checked against the NIST vectors and `sha256sum` in the tests.
public struct SHA256: Sendable {
    /// Owns the OpenSSL digest context; a copied `SHA256` shares it, so keep one per digest.
    private final class Context: @unchecked Sendable {
        let pointer: OpaquePointer
        init() {
            pointer = EVP_MD_CTX_new()
            EVP_DigestInit_ex(pointer, EVP_sha256(), nil)
        }
        deinit { EVP_MD_CTX_free(pointer) }
    }

    private let context = Context()

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in _ = EVP_DigestUpdate(context.pointer, raw.baseAddress, raw.count) }
    }

    public mutating func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context.pointer, $0.baseAddress, &length) }
        return out
    }

    /// One-shot digest.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { _ = EVP_Digest(raw.baseAddress, raw.count, $0.baseAddress, &length, EVP_sha256(), nil) }
        }
        return out
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
