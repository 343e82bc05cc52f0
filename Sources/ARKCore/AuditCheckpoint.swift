// A signed head of the audit log, its rotation records and witnesses' cosignatures.

/// A signed statement of the log's head: its size and root at a time, signed with the audit
/// key (Ed25519). What is signed is `signedText`, plain lines, so OpenSSL alone can check it.
/// A `restore` checkpoint is the one `ark restore` signs: the log starts again from the
/// restored copy, and the checkpoints before it that are larger were discarded with it. A
/// `rotation` checkpoint is signed by the key being retired and names its successor in its
/// note (`key <hex of the 32 bytes>`): from it on, checkpoints signed by the successor are the
/// log's (`AuditKeyChain`).
public struct AuditCheckpoint: Sendable, Equatable {
    public enum Kind: String, Sendable { case checkpoint, restore, rotation }

    public var kind: Kind
    public var size: Int
    public var root: Merkle.Digest
    public var timeNs: Int64
    public var keyID: String
    /// For a restore, the backup it restored; otherwise empty.
    public var note: String
    public var signature: [UInt8]

    public init(kind: Kind, size: Int, root: Merkle.Digest, timeNs: Int64, keyID: String, note: String, signature: [UInt8] = []) {
        self.kind = kind
        self.size = size
        self.root = root
        self.timeNs = timeNs
        self.keyID = keyID
        self.note = note.map { $0.isNewline ? " " : $0 }.reduce(into: "") { $0.append($1) }
        self.signature = signature
    }

    /// The bytes the signature covers.
    public var signedText: [UInt8] {
        Array("""
            ark-audit-checkpoint/v1
            kind \(kind.rawValue)
            size \(size)
            root \(SHA256.hex(root))
            time_ns \(timeNs)
            key_id \(keyID)
            note \(note)

            """.utf8)
    }

    public func verify(with key: Ed25519.PublicKey) -> Bool {
        keyID == key.keyID && key.verify(signature: signature, message: signedText)
    }

    /// The note of a rotation to `key`.
    public static func rotationNote(to key: Ed25519.PublicKey) -> String { "key " + SHA256.hex(key.raw) }

    /// The successor a rotation checkpoint names; nil for any other kind, or a note that
    /// names no key.
    public var successor: Ed25519.PublicKey? {
        guard kind == .rotation, note.hasPrefix("key "), let raw = bytes(fromHex: String(note.dropFirst(4))) else { return nil }
        return try? Ed25519.PublicKey(raw: raw)
    }

    /// The checkpoint as an object with its signed text, for a client that checks it
    /// (proofs, `GET /v1/audit/checkpoint`).
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        writeFields(to: &w)
        w.key("signed_text"); w.string(String(decoding: signedText, as: UTF8.self))
        w.endObject()
    }

    /// Its fields, as members of an object being written.
    func writeFields(to w: inout JSONWriter) {
        w.key("kind"); w.string(kind.rawValue)
        w.key("size"); w.int(Int64(size))
        w.key("root"); w.string(SHA256.hex(root))
        w.key("time_ns"); w.int(timeNs)
        w.key("key_id"); w.string(keyID)
        w.key("note"); w.string(note)
        w.key("signature"); w.string(SHA256.hex(signature))
    }

    /// One line of the checkpoint file (and the Redis key's value).
    public var json: [UInt8] {
        var w = JSONWriter(capacity: 400)
        w.beginObject()
        writeFields(to: &w)
        w.endObject()
        return w.bytes
    }

    public init?(json bytes: [UInt8]) {
        guard let o = JSONScalars(bytes), let kind = o.string("kind").flatMap(Kind.init(rawValue:)),
              let size = o.int64("size"), size >= 0, size < 1 << 53,
              let root = o.string("root").flatMap(bytes(fromHex:)), root.count == 32,
              let timeNs = o.int64("time_ns"), let keyID = o.string("key_id"),
              let signature = o.string("signature").flatMap(bytes(fromHex:)) else { return nil }
        self.init(kind: kind, size: Int(size), root: root, timeNs: timeNs, keyID: keyID, note: o.string("note") ?? "", signature: signature)
    }
}

/// The keys a log's checkpoints may be signed with: the pinned key (ARK_AUDIT_PUBLIC_KEY, the
/// trust root, never taken from beside the private key) and each successor a rotation
/// checkpoint, signed by a key already trusted, names. Trust only moves forward: a rotation
/// signed by an unknown key proves nothing, and a key rotated away signs nothing after its
/// rotation record.
public struct AuditKeyChain: Sendable {
    public private(set) var keys: [String: Ed25519.PublicKey]
    /// When each rotated-away key signed its rotation record: its last valid signature.
    public private(set) var retiredAt: [String: Int64] = [:]

    public init(pinned: Ed25519.PublicKey) {
        keys = [pinned.keyID: pinned]
    }

    /// Why `checkpoints` (in any order; read oldest first) are not all signed by this chain,
    /// extending it with each valid rotation; nil when they are.
    public mutating func admit(_ checkpoints: [AuditCheckpoint]) -> (AuditCheckpoint, String)? {
        for c in checkpoints.sorted(by: { $0.timeNs < $1.timeNs }) {
            guard let key = keys[c.keyID] else {
                return (c, "was signed by key \(c.keyID), which is neither the pinned key nor one a trusted rotation record names (pinned: \(keys.keys.sorted().joined(separator: ", ")))")
            }
            guard c.verify(with: key) else { return (c, "(key \(c.keyID)) has a signature that does not verify: it was replaced or forged") }
            if let retired = retiredAt[c.keyID], c.timeNs > retired {
                return (c, "was signed by key \(c.keyID) after its rotation record (time_ns \(retired)): a retired key signs nothing more")
            }
            if c.kind == .rotation {
                guard let next = c.successor else { return (c, "is a rotation record that names no key") }
                keys[next.keyID] = next
                retiredAt[c.keyID] = min(retiredAt[c.keyID] ?? .max, c.timeNs)
            }
        }
        return nil
    }

    /// The trusted key of `keyID`.
    public func key(_ keyID: String) -> Ed25519.PublicKey? { keys[keyID] }

    /// Whether `keyID` may sign new checkpoints: trusted and not rotated away.
    public func isCurrent(_ keyID: String) -> Bool { keys[keyID] != nil && retiredAt[keyID] == nil }
}

/// A witness's cosignature of a log checkpoint: the witness, on a host of its own, checked
/// the checkpoint's signature and that its tree extends every head it cosigned before
/// (RFC 9162 consistency), and signed this. It signs `signedText`: its own lines, then the
/// checkpoint's signed text, so the cosignature binds the whole head and its signature.
public struct AuditCosignature: Sendable, Equatable {
    public var checkpoint: AuditCheckpoint
    public var witnessKeyID: String
    public var timeNs: Int64
    public var signature: [UInt8]

    public init(checkpoint: AuditCheckpoint, witnessKeyID: String, timeNs: Int64, signature: [UInt8] = []) {
        self.checkpoint = checkpoint
        self.witnessKeyID = witnessKeyID
        self.timeNs = timeNs
        self.signature = signature
    }

    /// Its lines (the witness, its time, the log's signature it checked), then the
    /// checkpoint's signed text: a cosignature binds the head and the log's signature on it.
    public var signedText: [UInt8] {
        Array("ark-audit-cosignature/v1\nwitness \(witnessKeyID)\ntime_ns \(timeNs)\nlog_signature \(SHA256.hex(checkpoint.signature))\n".utf8)
            + checkpoint.signedText
    }

    public static func sign(_ checkpoint: AuditCheckpoint, with key: Ed25519.PrivateKey, timeNs: Int64) throws(Ed25519.Failure) -> AuditCosignature {
        var c = AuditCosignature(checkpoint: checkpoint, witnessKeyID: key.publicKey.keyID, timeNs: timeNs)
        c.signature = try key.sign(c.signedText)
        return c
    }

    public func verify(with key: Ed25519.PublicKey) -> Bool {
        witnessKeyID == key.keyID && key.verify(signature: signature, message: signedText)
    }

    /// One line: the cosignature's fields and the checkpoint's, flat.
    public var json: [UInt8] {
        var w = JSONWriter(capacity: 600)
        w.beginObject()
        w.key("witness_key_id"); w.string(witnessKeyID)
        w.key("cosigned_ns"); w.int(timeNs)
        w.key("cosignature"); w.string(SHA256.hex(signature))
        checkpoint.writeFields(to: &w)
        w.endObject()
        return w.bytes
    }

    /// The cosignature's own fields, for a client that checks it against its checkpoint.
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("witness_key_id"); w.string(witnessKeyID)
        w.key("cosigned_ns"); w.int(timeNs)
        w.key("cosignature"); w.string(SHA256.hex(signature))
        w.key("signed_text"); w.string(String(decoding: signedText, as: UTF8.self))
        w.endObject()
    }

    public init?(json bytes: [UInt8]) {
        guard let checkpoint = AuditCheckpoint(json: bytes), let o = JSONScalars(bytes), let witness = o.string("witness_key_id"),
              let timeNs = o.int64("cosigned_ns"), let signature = o.string("cosignature").flatMap(bytes(fromHex:)) else { return nil }
        self.init(checkpoint: checkpoint, witnessKeyID: witness, timeNs: timeNs, signature: signature)
    }
}
