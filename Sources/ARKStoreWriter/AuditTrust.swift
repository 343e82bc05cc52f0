// Which public key the audit log is verified from, and the chain of rotations it accepts.

import ARKCore
#if canImport(Glibc)
import Glibc
#endif

/// Which public key the audit log is verified from: the pinned one (ARK_AUDIT_PUBLIC_KEY, or
/// a path given on the command line), whose successors only rotation records signed by it
/// can name (`AuditKeyChain`). A `.pub` beside the private key is whatever the holder of that
/// host wrote there: outside production it stands in for a pin, with a note; in production it
/// is refused.
public struct AuditTrust: Sendable {
    public var key: Ed25519.PublicKey
    /// Whether the key was pinned (configured or given), not read from beside the private key.
    public var pinned: Bool
    public var source: String

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The root key: `explicit`, else ARK_AUDIT_PUBLIC_KEY, else (not in production)
    /// `<ARK_AUDIT_KEY>.pub` or the private key's public half; nil when none is configured.
    public static func root(_ config: ARKConfig, explicit: String? = nil) throws(Problem) -> AuditTrust? {
        if let path = explicit ?? (config.auditPublicKey.isEmpty ? nil : config.auditPublicKey) {
            return AuditTrust(key: try read(path), pinned: true, source: path)
        }
        guard !config.auditKey.isEmpty else { return nil }
        if config.environment == "production" {
            throw Problem(description: "ARK_AUDIT_PUBLIC_KEY is not set: in production the audit log's key is pinned, and a .pub beside the private key is not trusted on its own (whoever holds the host can replace both). Fix: copy the public key (ark audit-key public) to a place the ARK host cannot write, or at least set ARK_AUDIT_PUBLIC_KEY to the copy made at installation")
        }
        let beside = config.auditKey + ".pub"
        if access(beside, F_OK) == 0 { return AuditTrust(key: try read(beside), pinned: false, source: beside) }
        if let key = try? AuditSigner.loadKey(path: config.auditKey) { return AuditTrust(key: key.publicKey, pinned: false, source: config.auditKey) }
        return nil
    }

    static func read(_ path: String) throws(Problem) -> Ed25519.PublicKey {
        do {
            return try Ed25519.PublicKey(pem: try readFileBytes(path))
        } catch {
            throw Problem(description: "the audit public key \(path) is unusable: \(error)")
        }
    }

    /// Said beside a verification that used an unpinned key.
    public var note: String? {
        pinned ? nil : "the public key was read from \(source), beside the private key, not pinned: anyone who can write there can re-sign the log. Pin it with ARK_AUDIT_PUBLIC_KEY"
    }
}

/// The witnesses' public keys (ARK_WITNESS_KEYS), read once.
public enum WitnessKeys {
    public static func load(_ paths: [String]) throws(AuditTrust.Problem) -> [Ed25519.PublicKey] {
        var keys: [Ed25519.PublicKey] = []
        for path in paths {
            do {
                keys.append(try Ed25519.PublicKey(pem: try readFileBytes(path)))
            } catch {
                throw AuditTrust.Problem(description: "the witness key \(path) (ARK_WITNESS_KEYS) is unusable: \(error)")
            }
        }
        return keys
    }
}

/// How long the log's heads have waited for a witness.
public enum WitnessWait {
    /// The oldest head signed since the newest restore that no valid cosignature of
    /// `witnessKeys` covers (a cosigned head of its size or larger, signed since that restore
    /// too); nil when all are covered.
    public static func oldestUnwitnessed(_ reader: AuditReader, cosignatures: [AuditCosignature], witnessKeys: [Ed25519.PublicKey]) throws -> AuditCheckpoint? {
        let restoredNs = try reader.newestRestoreNs() ?? .min
        let covered = cosignatures.filter { c in c.checkpoint.timeNs >= restoredNs && witnessKeys.contains { c.verify(with: $0) } }.map(\.checkpoint.size).max() ?? 0
        return try reader.oldestCheckpoint(largerThan: covered)
    }

    /// The check's words: nil when no head has waited longer than `maxLagNs`.
    public static func problem(_ waiting: AuditCheckpoint?, nowNs: Int64, maxLagNs: Int64) -> String? {
        guard let waiting, nowNs - waiting.timeNs > maxLagNs else { return nil }
        return "the head of \(waiting.size) leaves signed \((nowNs - waiting.timeNs) / 1_000_000_000) s ago has no witness's cosignature (ARK_WITNESS_MAX_LAG_SECONDS=\(maxLagNs / 1_000_000_000)): is `ark witness run` up on its host? `ark witness show` there; an alarmed witness means this log was rolled back or forked"
    }
}
