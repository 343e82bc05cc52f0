// Proofs read from the store: inclusion paths, consistency and the tree's nodes.

import ARKCore
import GRDBSQLite

/// One decision proved: its audited record, its leaf, and the Merkle audit path from that
/// leaf to the root a checkpoint signs (RFC 9162 §2.1.3). Checking it needs the public key
/// and nothing of ARK's: hash the record as a leaf, fold the path, compare with the signed
/// root, check the signature over the checkpoint's text (docs/audit.md shows it in a few lines).
public struct AuditProof: Sendable, Equatable {
    public var traceID: String
    public var leafIndex: Int
    /// The leaf's data: the pass's audited record, byte for byte as stored and hashed.
    public var record: [UInt8]
    public var leafHash: Merkle.Digest
    public var treeSize: Int
    public var path: [Merkle.Digest]
    /// The signed head the path leads to; nil when no checkpoint covers the leaf yet (the
    /// path then leads to the store's own root, `unsignedRoot`, which proves nothing
    /// against an attacker who can write the store).
    public var checkpoint: AuditCheckpoint?
    public var unsignedRoot: Merkle.Digest?
    /// Witnesses' cosignatures of `checkpoint` (a proof to a cosigned head).
    public var cosignatures: [AuditCosignature] = []

    /// nil when the proof holds against `key` and, for each of `witnesses`, a cosignature
    /// of its checkpoint by that witness; else why not.
    public func problem(with key: Ed25519.PublicKey?, witnesses: [Ed25519.PublicKey] = []) -> String? {
        if let problem = problem(with: key) { return problem }
        for w in witnesses {
            guard let c = cosignatures.first(where: { $0.witnessKeyID == w.keyID }) else {
                return "the checkpoint carries no cosignature of witness \(w.keyID)"
            }
            guard c.checkpoint == checkpoint, c.verify(with: w) else { return "the cosignature of witness \(w.keyID) does not verify over this checkpoint" }
        }
        return nil
    }

    /// nil when the proof holds against `key`, else why not.
    public func problem(with key: Ed25519.PublicKey?) -> String? {
        guard Merkle.leafHash(record) == leafHash else { return "the record does not hash to the leaf hash" }
        guard let root = Merkle.rootFromInclusion(index: leafIndex, size: treeSize, leafHash: leafHash, path: path) else {
            return "the audit path has the wrong length for leaf \(leafIndex) of \(treeSize)"
        }
        guard let c = checkpoint else {
            return root == unsignedRoot ? "no signed checkpoint covers leaf \(leafIndex) yet: the path leads to the store's own, unsigned root" : "the audit path does not lead to the store's root"
        }
        guard c.size == treeSize else { return "the proof is for a tree of \(treeSize) leaves, the checkpoint signs \(c.size)" }
        guard root == c.root else { return "the audit path leads to \(SHA256.hex(root)), the checkpoint signs \(SHA256.hex(c.root))" }
        guard let key else { return "no public key to check the checkpoint's signature with" }
        guard c.keyID == key.keyID else { return "the checkpoint was signed by key \(c.keyID), not by \(key.keyID)" }
        guard c.verify(with: key) else { return "the checkpoint's signature does not verify" }
        return nil
    }

    /// The proof as `GET /v1/traces/{id}/proof` and `ark verify-audit --trace --json` give it.
    public var json: [UInt8] {
        var w = JSONWriter(capacity: record.count + 2048)
        w.beginObject()
        w.key("trace_id"); w.string(traceID)
        w.key("leaf_index"); w.int(Int64(leafIndex))
        w.key("tree_size"); w.int(Int64(treeSize))
        w.key("record"); w.string(String(decoding: record, as: UTF8.self))
        w.key("leaf_hash"); w.string(SHA256.hex(leafHash))
        w.key("audit_path")
        w.beginArray()
        for p in path { w.string(SHA256.hex(p)) }
        w.endArray()
        w.key("checkpoint")
        if let c = checkpoint { c.write(to: &w) } else { w.null() }
        if let r = unsignedRoot { w.key("unsigned_root"); w.string(SHA256.hex(r)) }
        if !cosignatures.isEmpty {
            w.key("cosignatures")
            w.beginArray()
            for c in cosignatures { c.write(to: &w) }
            w.endArray()
        }
        w.endObject()
        return w.bytes
    }
}

/// Reads the audit tree of a store: leaf hashes from the rows, subtree hashes from
/// `audit_nodes` where stored, roots, checkpoints and inclusion proofs. Its own read-only
/// connection; not thread-safe (one per use).
public final class AuditReader {
    let db: SQLiteConnection

    public init(path: String) throws {
        db = try SQLiteConnection(path: path, flags: SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX)
        sqlite3_busy_timeout(db.handle, Int32(StoreFile.busyTimeoutMs))
    }

    init(connection: SQLiteConnection) { db = connection }

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Leaves the tree holds, as its writers last left it.
    public func treeSize() throws -> Int {
        Int(try db.prepare("SELECT size FROM audit_tree WHERE id = 1").firstRow { $0.int64(0) } ?? 0)
    }

    /// The hashes of leaves lo..<hi, each from its row's data.
    public func leafHashes(_ lo: Int, _ hi: Int) throws -> [Merkle.Digest] {
        var out = [Merkle.Digest?](repeating: nil, count: hi - lo)
        func place(_ leaf: Int64, _ hash: Merkle.Digest) {
            let i = Int(leaf) - lo
            if i >= 0 && i < out.count { out[i] = hash }
        }
        let passes = try db.prepare("SELECT leaf, record FROM passes WHERE leaf >= ? AND leaf < ?")
        passes.bind(lo)
        passes.bind(hi)
        while try passes.step() { place(passes.int64(0), Merkle.leafHash(passes.textBytes(1))) }
        let orders = try db.prepare("SELECT leaf, order_id, trace_id, symbol, side, quantity, price, notional, realized_pnl, ts_ns FROM orders WHERE leaf >= ? AND leaf < ?")
        orders.bind(lo)
        orders.bind(hi)
        while try orders.step() { place(orders.int64(0), Merkle.leafHash(AuditLeaf.data(of: AuditTreeStore.order(orders, from: 1)))) }
        let dead = try db.prepare("SELECT leaf, deadletter_id, stream, entry_id, consumer_group, consumer, reason, payload, deliveries, trace_id, ts_ns FROM dead_letters WHERE leaf >= ? AND leaf < ?")
        dead.bind(lo)
        dead.bind(hi)
        while try dead.step() { place(dead.int64(0), Merkle.leafHash(AuditLeaf.data(of: AuditTreeStore.deadLetter(dead, from: 1)))) }
        let states = try db.prepare("SELECT leaf, control_id, shard, scope, mode, from_mode, reason, by, at_ns FROM trading_states WHERE leaf >= ? AND leaf < ?")
        states.bind(lo)
        states.bind(hi)
        while try states.step() { place(states.int64(0), Merkle.leafHash(AuditLeaf.data(of: AuditTreeStore.tradingState(states, from: 1)))) }
        return try out.enumerated().map { i, h in
            guard let h else { throw Problem(description: "leaf \(lo + i) of the audit log has no row in passes, orders, dead_letters or trading_states") }
            return h
        }
    }

    /// MTH of leaves lo..<hi, from a stored node when it is one, else from its halves.
    public func subtreeHash(_ lo: Int, _ hi: Int) throws -> Merkle.Digest {
        let n = hi - lo
        if n <= 1 << AuditLeaf.storedHeight {
            return Merkle.root(try leafHashes(lo, hi)[...])
        }
        if n.nonzeroBitCount == 1 && lo % n == 0 {
            let node = try db.prepare("SELECT hash FROM audit_nodes WHERE height = ? AND idx = ?")
            node.bind(n.trailingZeroBitCount)
            node.bind(lo / n)
            if let h = try node.firstRow({ $0.blob(0) }), h.count == 32 { return h }
        }
        let k = Merkle.split(n)
        return Merkle.nodeHash(try subtreeHash(lo, lo + k), try subtreeHash(lo + k, hi))
    }

    public func root(size: Int) throws -> Merkle.Digest {
        size == 0 ? Merkle.emptyRoot : try subtreeHash(0, size)
    }

    /// Every checkpoint the store holds, oldest first.
    public func checkpoints() throws -> [AuditCheckpoint] {
        try read(try db.prepare("\(Self.columns) ORDER BY id"))
    }

    /// The newest `count` checkpoints, oldest first (a checkpoint a second makes 86,400 a day).
    public func newestCheckpoints(_ count: Int) throws -> [AuditCheckpoint] {
        let s = try db.prepare("\(Self.columns) ORDER BY id DESC LIMIT ?")
        s.bind(count)
        return try read(s).reversed()
    }

    /// The newest checkpoint that covers `leaf`, signed since the newest restore (before it,
    /// larger heads were discarded with the records the restore rolled back).
    public func newestCheckpoint(covering leaf: Int) throws -> AuditCheckpoint? {
        let s = try db.prepare("""
            \(Self.columns) WHERE size > ? AND id >= (SELECT coalesce(max(id), 0) FROM audit_checkpoints WHERE kind = 'restore')
            ORDER BY id DESC LIMIT 1
            """)
        s.bind(leaf)
        return try read(s).first
    }

    /// When the newest restore checkpoint was signed; nil when the log was never restored.
    public func newestRestoreNs() throws -> Int64? {
        try db.prepare("SELECT time_ns FROM audit_checkpoints WHERE kind = 'restore' ORDER BY id DESC LIMIT 1").firstRow { $0.int64(0) }
    }

    /// The oldest checkpoint signed since the newest restore whose size is over `size`.
    public func oldestCheckpoint(largerThan size: Int) throws -> AuditCheckpoint? {
        let s = try db.prepare("""
            \(Self.columns) WHERE size > ? AND id >= (SELECT coalesce(max(id), 0) FROM audit_checkpoints WHERE kind = 'restore')
            ORDER BY id LIMIT 1
            """)
        s.bind(size)
        return try read(s).first
    }

    static let columns = "SELECT kind, size, root, time_ns, key_id, note, signature FROM audit_checkpoints"

    private func read(_ s: SQLiteStatement) throws -> [AuditCheckpoint] {
        var out: [AuditCheckpoint] = []
        while try s.step() {
            out.append(AuditCheckpoint(kind: AuditCheckpoint.Kind(rawValue: s.text(0)) ?? .checkpoint, size: Int(s.int64(1)),
                                       root: bytes(fromHex: s.text(2)) ?? [], timeNs: s.int64(3), keyID: s.text(4), note: s.text(5),
                                       signature: bytes(fromHex: s.text(6)) ?? []))
        }
        return out
    }

    /// The events of the passes from leaf `fromLeaf` on whose execution changed an account's
    /// book (it carries the book's sequence number, `Execution.seq`), in leaf order, each with
    /// its leaf: what `LedgerFold` replays. Returns the leaf after the last pass read.
    @discardableResult
    public func sequencedEvents(fromLeaf: Int = 0, _ body: (Int, Event) throws -> Void) throws -> Int {
        // Only a sequenced execution writes `"seq":` unescaped into a record (in a string a
        // quote is escaped), so the rest are never decoded.
        let s = try db.prepare("SELECT leaf, record FROM passes WHERE leaf >= ? AND instr(record, '\"seq\":') > 0 ORDER BY leaf")
        s.bind(fromLeaf)
        var next = fromLeaf
        while try s.step() {
            let leaf = Int(s.int64(0))
            next = leaf + 1
            let record = s.textBytes(1)
            guard let event = Self.event(ofRecord: record) else {
                throw Problem(description: "the audited record of leaf \(leaf) does not hold a readable event")
            }
            try body(leaf, event)
        }
        return next
    }

    /// The event an audited pass record embeds (`PassRecord.auditRecord`).
    static func event(ofRecord record: [UInt8]) -> Event? {
        record.withUnsafeBufferPointer { buf -> Event? in
            var r = JSONReader(buf)
            do {
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    guard r.matches(k, "event") else { try r.skipValue(); continue }
                    r.skipWhitespace()
                    let start = r.offset
                    try r.skipValue()
                    return try EventCodec.decode(Array(buf[start..<r.offset]))
                }
            } catch {}
            return nil
        }
    }

    /// The consistency proof (RFC 9162 §2.1.4) from the tree of `from` leaves to the tree of
    /// `to`, with both roots as this store gives them; nil when `to` is beyond the tree.
    public func consistency(from: Int, to: Int) throws -> (proof: [Merkle.Digest], fromRoot: Merkle.Digest, toRoot: Merkle.Digest)? {
        precondition(from >= 0 && from <= to)
        guard to <= (try treeSize()) else { return nil }
        return (try Merkle.consistencyProof(first: from, second: to, subtree: subtreeHash), try root(size: from), try root(size: to))
    }

    /// The newest checkpoint (the log's signed head), and every rotation record, oldest first:
    /// what a witness needs to check the head's signature from its pinned key on.
    public func head() throws -> (newest: AuditCheckpoint?, rotations: [AuditCheckpoint]) {
        (try newestCheckpoints(1).first, try read(try db.prepare("\(Self.columns) WHERE kind = 'rotation' ORDER BY id")))
    }

    /// The proof of the pass of `traceID` up to the newest checkpoint that covers it, or to
    /// `head` when given (a cosigned head, which must cover it) (nil: no such pass).
    public func proof(traceID: String, to head: AuditCheckpoint? = nil) throws -> AuditProof? {
        let select = try db.prepare("SELECT leaf, record FROM passes WHERE trace_id = ?")
        select.bind(traceID)
        guard let (leaf, record) = try select.firstRow({ ($0.isNull(0) ? -1 : Int($0.int64(0)), $0.textBytes(1)) }) else { return nil }
        guard leaf >= 0 else { throw Problem(description: "the pass of \(traceID) has no leaf in the audit log") }
        if let head, leaf >= head.size {
            throw Problem(description: "the pass of \(traceID) is leaf \(leaf), not yet under the cosigned head of \(head.size) leaves; retry when the witness cosigned a newer one")
        }
        if let head, head.size > (try treeSize()) {
            throw Problem(description: "the cosigned head has \(head.size) leaves, the store's log only \(try treeSize()): records were deleted")
        }
        let cover = try head ?? newestCheckpoint(covering: leaf)
        let size = try cover?.size ?? treeSize()
        guard leaf < size else { throw Problem(description: "the pass of \(traceID) is leaf \(leaf), beyond the tree's \(size) leaves") }
        let path = try Merkle.inclusionPath(index: leaf, size: size, subtree: subtreeHash)
        return AuditProof(traceID: traceID, leafIndex: leaf, record: record, leafHash: Merkle.leafHash(record), treeSize: size, path: path,
                          checkpoint: cover, unsignedRoot: cover == nil ? try root(size: size) : nil)
    }
}
