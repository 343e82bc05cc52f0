// SHA-256 through OpenSSL.

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

/// The bytes that lowercase or uppercase hex digits spell; nil for anything else (an odd
/// count, a non-digit).
public func bytes(fromHex text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    func value(_ d: UInt8) -> UInt8? {
        switch d {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return d - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return d - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return d - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(digits.count / 2)
    var i = 0
    while i < digits.count {
        guard let hi = value(digits[i]), let lo = value(digits[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}
