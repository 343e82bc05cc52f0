/// A signed statement of the log's head: its size and root at a time, signed with the audit
/// key (Ed25519). What is signed is `signedText`, plain lines, so OpenSSL alone can check it.
/// A `restore` checkpoint is the one `ark restore` signs: the log starts again from the
/// restored copy, and the checkpoints before it that are larger were discarded with it.
public struct AuditCheckpoint: Sendable, Equatable {
    public enum Kind: String, Sendable { case checkpoint, restore }

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

    /// One line of the checkpoint file (and the Redis key's value).
    public var json: [UInt8] {
        var w = JSONWriter(capacity: 400)
        w.beginObject()
        w.key("kind"); w.string(kind.rawValue)
        w.key("size"); w.int(Int64(size))
        w.key("root"); w.string(SHA256.hex(root))
        w.key("time_ns"); w.int(timeNs)
        w.key("key_id"); w.string(keyID)
        w.key("note"); w.string(note)
        w.key("signature"); w.string(SHA256.hex(signature))
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
