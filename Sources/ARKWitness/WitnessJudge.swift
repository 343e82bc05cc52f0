// A witness's decisions on a head, pure.

import ARKCore

/// Why a witness stopped cosigning: sticky until an operator of the witness host resets it.
public struct WitnessAlarm: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The log's newest head is smaller than one cosigned before.
        case rollback
        /// A head of the cosigned size with another root, or a larger one the consistency
        /// proof does not tie to the cosigned head.
        case fork
        /// A head not signed by the pinned key or a successor a trusted rotation names.
        case signature
        /// The log cannot produce the proof that its head extends the cosigned one.
        case unprovable
    }

    public var kind: Kind
    public var message: String
    public var atNs: Int64

    public init(_ kind: Kind, _ message: String, atNs: Int64) {
        self.kind = kind
        self.message = message
        self.atNs = atNs
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}

/// What a witness makes of the log's newest signed head against the last head it cosigned
/// (as Go's checksum database clients do with the last tree head they saw). Pure: the
/// runner fetches, this decides.
public struct WitnessJudge: Sendable {
    public enum Step: Sendable, Equatable {
        /// Nothing cosigned yet: cosign this head (the witness trusts the log from here on).
        case cosignFirst
        /// The head cosigned last, again.
        case unchanged
        /// A larger head: cosign it once a consistency proof from the held size verifies.
        case prove(from: Int, to: Int)
        case alarm(WitnessAlarm.Kind, String)
    }

    public let logKey: Ed25519.PublicKey

    public init(logKey: Ed25519.PublicKey) {
        self.logKey = logKey
    }

    /// The first step for `newest`, with `rotations` (every rotation record the log
    /// published) extending trust from the pinned log key.
    public func assess(held: AuditCheckpoint?, newest: AuditCheckpoint, rotations: [AuditCheckpoint] = []) -> Step {
        var chain = AuditKeyChain(pinned: logKey)
        if let (c, problem) = chain.admit(rotations.filter { $0.timeNs <= newest.timeNs }) {
            return .alarm(.signature, "the rotation record of size \(c.size) at time_ns \(c.timeNs) \(problem)")
        }
        guard let key = chain.key(newest.keyID) else {
            return .alarm(.signature, "the newest head (size \(newest.size), time_ns \(newest.timeNs)) was signed by key \(newest.keyID), which is not the pinned log key \(logKey.keyID) nor one a rotation record it signed names: the log was re-signed with another key")
        }
        guard newest.verify(with: key) else {
            return .alarm(.signature, "the newest head (size \(newest.size), time_ns \(newest.timeNs)) has a signature that does not verify with key \(key.keyID)")
        }
        guard let held else { return .cosignFirst }
        if newest.size < held.size {
            let restore = newest.kind == .restore ? " It is a restore checkpoint (\(newest.note)): if the operators restored a backup on purpose, reset this witness with `ark witness reset`." : ""
            return .alarm(.rollback, "the log's newest head has \(newest.size) leaves, but this witness cosigned \(held.size) (root \(SHA256.hex(held.root).prefix(16))…, time_ns \(held.timeNs)): \(held.size - newest.size) leaves were removed.\(restore)")
        }
        if newest.size == held.size {
            return newest.root == held.root ? .unchanged
                : .alarm(.fork, "the log signed two roots for \(held.size) leaves: \(SHA256.hex(held.root).prefix(16))… (cosigned at time_ns \(held.timeNs)) and \(SHA256.hex(newest.root).prefix(16))… (time_ns \(newest.timeNs)): its history was rewritten")
        }
        return .prove(from: held.size, to: newest.size)
    }

    /// After `.prove`: nil when `proof` ties `newest` to `held` (RFC 9162 §2.1.4.2), the roots
    /// being the signed ones, never the server's; else the alarm.
    public func check(held: AuditCheckpoint, newest: AuditCheckpoint, proof: [Merkle.Digest]) -> (WitnessAlarm.Kind, String)? {
        Merkle.verifyConsistency(first: held.size, second: newest.size, firstRoot: held.root, secondRoot: newest.root, proof: proof) ? nil
            : (.fork, "the log's head of \(newest.size) leaves (time_ns \(newest.timeNs)) does not extend the head of \(held.size) this witness cosigned (root \(SHA256.hex(held.root).prefix(16))…): the consistency proof fails, so the first \(held.size) leaves were changed")
    }
}
