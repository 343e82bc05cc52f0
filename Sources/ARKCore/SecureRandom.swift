// Cryptographically strong random bytes.

import CCrypto

/// Cryptographically strong random bytes (OpenSSL's CSPRNG), for secrets and token ids.
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
    precondition(ok == 1, "OpenSSL RAND_bytes failed: the system has no entropy source")
    return out
}
