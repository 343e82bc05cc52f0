// `ark audit-key rotate`: the old key signs the record that names the new one.

import ARKCore
import ARKStoreWriter

/// `ark audit-key rotate`: the key being retired signs a rotation record over the log's head
/// naming its successor, so a verifier that pinned the first key trusts the next from there
/// on (`AuditKeyChain`). Done while ARK is stopped: the old key must sign nothing after it.
public enum AuditKeyRotation {
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func rotate(statePath: String, from old: Ed25519.PrivateKey, to successor: Ed25519.PublicKey, checkpointFile: String) throws -> AuditCheckpoint {
        guard old.publicKey != successor else { throw Problem(description: "the new key is the current key: nothing to rotate") }
        guard let hold = try StoreWriterLock.exclusive(statePath) else {
            throw Problem(description: "ARK is writing \(statePath) (Aletheia, the watchdog, ark run or the canary has it open): nothing was signed. Fix: stop ARK first (deployment/stop_production.sh), rotate, then start it with ARK_AUDIT_KEY set to the new key")
        }
        defer { withExtendedLifetime(hold) {} }
        let writer = try OutcomeWriter(path: statePath, signer: AuditSigner(key: old, checkpointFile: checkpointFile))
        return try writer.signHead(kind: .rotation, note: AuditCheckpoint.rotationNote(to: successor))
    }
}
