// The audit log's leaves and the signer of its checkpoints.

import ARKCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the audit log's leaves are (the data each leaf hashes, RFC 9162 `H(0x00 || data)`):
/// a pass's audited record as stored in `passes.record`; an order's, a dead letter's and a
/// trading state change's canonical JSON, built from their columns here. Leaves are numbered
/// in the order Aletheia committed them: within a batch its passes, then its orders, then its
/// dead letters, then its trading state changes.
public enum AuditLeaf {
    /// Subtrees of 2^8 leaves and more are stored (`audit_nodes`), so a proof reads at most
    /// 255 leaves and O(log n) nodes; smaller ones are hashed again from their rows.
    public static let storedHeight = 8

    public static func data(of o: OrderRecord) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("leaf"); w.string("order")
        w.key("order_id"); w.string(o.orderID)
        w.key("trace_id"); w.string(o.traceID)
        w.key("symbol"); w.string(o.symbol)
        w.key("side"); w.string(o.side)
        w.key("quantity"); w.double(o.quantity)
        w.key("price"); w.double(o.price)
        w.key("notional"); w.double(o.notional)
        w.key("realized_pnl"); w.double(o.realizedPnl)
        w.key("ts_ns"); w.int(o.tsNs)
        w.endObject()
        return w.bytes
    }

    /// The payload enters by its SHA-256: it may be any bytes, and its hash binds it as well.
    public static func data(of d: DeadLetterRecord) -> [UInt8] {
        var w = JSONWriter(capacity: 384)
        w.beginObject()
        w.key("leaf"); w.string("dead_letter")
        w.key("deadletter_id"); w.string(d.deadLetterID)
        w.key("stream"); w.string(d.stream)
        w.key("entry_id"); w.string(d.entryID)
        w.key("group"); w.string(d.group)
        w.key("consumer"); w.string(d.consumer)
        w.key("reason"); w.string(d.reason)
        w.key("payload_sha256"); w.string(SHA256.hexDigest(d.payload))
        w.key("deliveries"); w.int(Int64(d.deliveries))
        w.key("trace_id")
        if let t = d.traceID { w.string(t) } else { w.null() }
        w.key("ts_ns"); w.int(d.tsNs)
        w.endObject()
        return w.bytes
    }

    public static func data(of t: TradingStateRecord) -> [UInt8] {
        var w = JSONWriter(capacity: 256 + t.reason.utf8.count)
        w.beginObject()
        w.key("leaf"); w.string("trading_state")
        w.key("control_id"); w.string(t.controlID)
        w.key("shard"); w.string(t.shard)
        w.key("scope"); w.string(t.scope)
        w.key("mode"); w.string(t.mode)
        w.key("from"); w.string(t.from)
        w.key("reason"); w.string(t.reason)
        w.key("by"); w.string(t.by)
        w.key("at_ns"); w.int(t.atNs)
        w.endObject()
        return w.bytes
    }

    /// The tree's right edge as `audit_tree.frontier` stores it: its hashes, 32 bytes each.
    static func encode(_ f: Merkle.Frontier) -> [UInt8] { f.nodes.flatMap { $0 } }

    static func decode(size: Int, _ blob: [UInt8]) -> Merkle.Frontier? {
        guard blob.count % 32 == 0 else { return nil }
        let nodes = stride(from: 0, to: blob.count, by: 32).map { Array(blob[$0..<($0 + 32)]) }
        return Merkle.Frontier(size: size, nodes: nodes)
    }
}

/// Aletheia's signer of checkpoints: the audit key, where checkpoints are published outside
/// the store (an append-only file), and how often.
public final class AuditSigner: Sendable {
    public let key: Ed25519.PrivateKey
    public let keyID: String
    public let checkpointFile: String
    /// ARK_AUDIT_CHECKPOINT_MS: no leaf waits longer for a signature.
    public let intervalNs: Int64
    /// A checkpoint is signed once the oldest unsigned leaf is this old (OutcomeWriter.due).
    public var dueAfterNs: Int64 { intervalNs / 2 }

    public init(key: Ed25519.PrivateKey, checkpointFile: String, intervalNs: Int64 = 1_000_000_000) {
        self.key = key
        self.keyID = key.publicKey.keyID
        self.checkpointFile = checkpointFile
        self.intervalNs = intervalNs
    }

    public struct KeyProblem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads the private key at `path`, which must be a regular file of this user that no one
    /// else may read (mode 600 or 400).
    public static func loadKey(path: String) throws(KeyProblem) -> Ed25519.PrivateKey {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw KeyProblem(description: "cannot read the audit key \(path): \(String(cString: strerror(errno))). Fix: make one with `ark audit-key generate --out \(path)`, or point ARK_AUDIT_KEY at it")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw KeyProblem(description: "the audit key \(path) is not a regular file") }
        guard st.st_mode & 0o077 == 0 else {
            throw KeyProblem(description: "the audit key \(path) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))). Fix: chmod 600 \(path)")
        }
        guard st.st_uid == getuid() else { throw KeyProblem(description: "the audit key \(path) belongs to another user (uid \(st.st_uid)). Fix: chown it to the user ARK runs as") }
        let pem: [UInt8]
        do { pem = try readFileBytes(path) } catch { throw KeyProblem(description: "cannot read the audit key \(path): \(error)") }
        do { return try Ed25519.PrivateKey(pem: pem) } catch { throw KeyProblem(description: "the audit key \(path) is unusable: \(error)") }
    }

    public func sign(kind: AuditCheckpoint.Kind = .checkpoint, size: Int, root: Merkle.Digest, timeNs: Int64, note: String = "") throws(Ed25519.Failure) -> AuditCheckpoint {
        var c = AuditCheckpoint(kind: kind, size: size, root: root, timeNs: timeNs, keyID: keyID, note: note)
        c.signature = try key.sign(c.signedText)
        return c
    }

    /// Appends `c` as one line to the checkpoint file (mode 600, made if missing). One write
    /// with O_APPEND, so lines of two writers never interleave.
    public func publish(_ c: AuditCheckpoint) throws(StateStoreError) {
        try Self.append(c, to: checkpointFile)
    }

    public static func append(_ c: AuditCheckpoint, to path: String) throws(StateStoreError) {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex, let failure = StoreFile.makeDirectories(String(path[..<slash])) {
            throw StateStoreError("cannot create the directory of the checkpoint file \(path): \(failure)")
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard fd >= 0 else { throw StateStoreError("cannot open the checkpoint file \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var line = c.json
        line.append(UInt8(ascii: "\n"))
        let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == line.count else { throw StateStoreError("cannot write the checkpoint file \(path): \(n < 0 ? String(cString: strerror(errno)) : "short write")") }
    }

    /// The checkpoints in the last 64 KB of a checkpoint file (the newest few hundred):
    /// what Aletheia's start-up check needs, without reading a year of lines.
    public static func newest(inFile path: String) -> [AuditCheckpoint] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return [] }
        let start = max(0, Int(st.st_size) - 65_536)
        var tail = [UInt8](repeating: 0, count: Int(st.st_size) - start)
        let n = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
        guard n == tail.count else { return [] }
        // From the middle of a line on: that first piece is not a checkpoint.
        if start > 0, let newline = tail.firstIndex(of: UInt8(ascii: "\n")) { tail.removeSubrange(...newline) }
        return tail.split(separator: UInt8(ascii: "\n")).compactMap { AuditCheckpoint(json: Array($0)) }
    }

    /// The checkpoints of a checkpoint file, with the numbers of the lines that are not one.
    public struct FileContents: Sendable {
        public var checkpoints: [AuditCheckpoint]
        public var badLines: [Int]
        /// The number of the file's last line: only that one may be torn (a crash mid-write).
        public var lastLine: Int
    }

    /// The checkpoints in a checkpoint file, with the numbers of lines that are not one.
    public static func read(file path: String) -> FileContents? {
        guard let bytes = try? readFileBytes(path) else { return nil }
        var out: [AuditCheckpoint] = []
        var bad: [Int] = []
        var last = 0
        for (i, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            last = i + 1
            if let c = AuditCheckpoint(json: Array(line)) { out.append(c) } else { bad.append(i + 1) }
        }
        return FileContents(checkpoints: out, badLines: bad, lastLine: last)
    }

    /// Cuts a torn last line (no newline: a crash in the middle of its write) off the
    /// checkpoint file before the next line is appended to it, which would make it a garbled
    /// line in the middle, a failure of `ark verify-audit`. The bytes cut, or nil.
    public func cutTornTail() throws(StateStoreError) -> Int? {
        let fd = open(checkpointFile, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return nil }
        let size = Int(st.st_size)
        var offset = size
        var byte: UInt8 = 0
        // Back to the last newline, 1 byte at a time: a torn line is shorter than one checkpoint.
        while offset > 0 {
            guard pread(fd, &byte, 1, off_t(offset - 1)) == 1 else { throw StateStoreError("cannot read the checkpoint file \(checkpointFile): \(String(cString: strerror(errno)))") }
            if byte == UInt8(ascii: "\n") { break }
            offset -= 1
        }
        guard offset < size else { return nil }
        guard ftruncate(fd, off_t(offset)) == 0, fsync(fd) == 0 else {
            throw StateStoreError("cannot cut the torn last line of the checkpoint file \(checkpointFile): \(String(cString: strerror(errno)))")
        }
        return size - offset
    }
}
