// The audit tree's tables, and the upgrade of a store that was only hash-chained.

import ARKCore

/// The audit tree's tables: the right edge every writer extends (`audit_tree`), the stored
/// subtrees proofs are read from (`audit_nodes`) and the signed checkpoints
/// (`audit_checkpoints`); and the conversion of a store whose passes were hash-chained only.
public enum AuditTreeStore {
    /// The first pass's `prev_hash` (and the genesis link of the old hash chain).
    public static let genesisHash = String(repeating: "0", count: 64)

    /// The link of a record in the hash chain of stores written before the audit tree
    /// (schema v5 and earlier): SHA-256 of the previous hash (hex) followed by the record.
    /// Only the upgrade of such a store checks it (`AuditTreeStore.adoptExistingRows`).
    public static func chainHash(prev: String, record: [UInt8]) -> String {
        var input = Array(prev.utf8)
        input.append(contentsOf: record)
        return SHA256.hexDigest(input)
    }

    static let schema = """
        ALTER TABLE passes ADD COLUMN leaf INTEGER;
        ALTER TABLE orders ADD COLUMN leaf INTEGER;
        ALTER TABLE orders ADD COLUMN leaf_hash TEXT;
        ALTER TABLE dead_letters ADD COLUMN leaf INTEGER;
        ALTER TABLE dead_letters ADD COLUMN leaf_hash TEXT;
        CREATE TABLE audit_tree (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            size INTEGER NOT NULL,
            frontier BLOB NOT NULL
        );
        CREATE TABLE audit_nodes (
            height INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (height, idx)
        ) WITHOUT ROWID;
        CREATE TABLE audit_checkpoints (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            size INTEGER NOT NULL,
            root TEXT NOT NULL,
            time_ns INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            note TEXT NOT NULL,
            signature TEXT NOT NULL
        );
        """

    static let indexes = """
        CREATE UNIQUE INDEX passes_leaf ON passes(leaf);
        CREATE UNIQUE INDEX orders_leaf ON orders(leaf);
        CREATE UNIQUE INDEX dead_letters_leaf ON dead_letters(leaf);
        """

    /// Makes the rows a store already holds the first leaves of its tree: passes in `seq`
    /// order, then orders, then dead letters. The passes' old chain is checked first, since
    /// the tree would otherwise adopt an edit made before it: a broken chain stops the
    /// upgrade, naming the record.
    static func adoptExistingRows(_ db: SQLiteConnection) throws {
        try db.execute(schema)
        var tree = Merkle.Frontier()
        let insertNode = try db.prepare("INSERT OR REPLACE INTO audit_nodes (height, idx, hash) VALUES (?, ?, ?)")
        func append(_ leafHash: Merkle.Digest) throws {
            try Self.append(leafHash, to: &tree, storingWith: insertNode)
        }

        var prev = genesisHash
        var linkedPrev = genesisHash
        var passes: [(seq: Int64, prev: String, hash: String)] = []
        let select = try db.prepare("SELECT seq, trace_id, record, prev_hash, hash FROM passes ORDER BY seq")
        while try select.step() {
            let record = select.textBytes(2)
            guard select.text(3) == prev, chainHash(prev: prev, record: record) == select.text(4) else {
                throw StateStoreError("""
                    the audit chain of \(db.path) is broken at seq \(select.int64(0)) (trace \(select.text(1))): a record was \
                    changed, removed or inserted outside ARK, so this release will not adopt it into its signed log. Fix: \
                    restore a backup made before the change (ark restore), or read what differs with the previous release's \
                    ark verify-audit
                    """)
            }
            prev = select.text(4)
            let leafHash = Merkle.leafHash(record)
            try append(leafHash)
            let hash = SHA256.hex(leafHash)
            passes.append((select.int64(0), linkedPrev, hash))
            linkedPrev = hash
        }
        let updatePass = try db.prepare("UPDATE passes SET leaf = ?, prev_hash = ?, hash = ? WHERE seq = ?")
        for (i, p) in passes.enumerated() {
            updatePass.reset()
            updatePass.bind(i)
            updatePass.bind(p.prev)
            updatePass.bind(p.hash)
            updatePass.bind(p.seq)
            try updatePass.run()
        }

        // Orders, then dead letters: each row's leaf from its columns, numbered on.
        func adopt(_ select: String, rowid: String, table: String, leafData: (SQLiteStatement) -> [UInt8]) throws {
            var rows: [(rowid: Int64, leaf: Int, hash: String)] = []
            let s = try db.prepare(select)
            while try s.step() {
                let h = Merkle.leafHash(leafData(s))
                rows.append((s.int64(0), tree.size, SHA256.hex(h)))
                try append(h)
            }
            let update = try db.prepare("UPDATE \(table) SET leaf = ?, leaf_hash = ? WHERE \(rowid) = ?")
            for r in rows {
                update.reset()
                update.bind(r.leaf)
                update.bind(r.hash)
                update.bind(r.rowid)
                try update.run()
            }
        }
        try adopt("SELECT rowid, order_id, trace_id, symbol, side, quantity, price, notional, realized_pnl, ts_ns FROM orders ORDER BY rowid",
                  rowid: "rowid", table: "orders") { AuditLeaf.data(of: order($0, from: 1)) }
        try adopt("SELECT id, deadletter_id, stream, entry_id, consumer_group, consumer, reason, payload, deliveries, trace_id, ts_ns FROM dead_letters ORDER BY id",
                  rowid: "id", table: "dead_letters") { AuditLeaf.data(of: deadLetter($0, from: 1)) }
        try db.execute(indexes)
        let save = try db.prepare("INSERT INTO audit_tree (id, size, frontier) VALUES (1, ?, ?)")
        save.bind(tree.size)
        save.bind(blob: AuditLeaf.encode(tree))
        try save.run()
    }

    /// Adds a leaf to `tree`, storing each subtree it completes from `AuditLeaf.storedHeight` up.
    static func append(_ leafHash: Merkle.Digest, to tree: inout Merkle.Frontier, storingWith insertNode: SQLiteStatement) throws {
        var completed: [(Int, Int, Merkle.Digest)] = []
        tree.append(leafHash) { h, i, d in if h >= AuditLeaf.storedHeight { completed.append((h, i, d)) } }
        for (h, i, d) in completed { try storeNode(insertNode, height: h, index: i, hash: d) }
    }

    static func storeNode(_ stmt: SQLiteStatement, height: Int, index: Int, hash: Merkle.Digest) throws(SQLiteError) {
        stmt.reset()
        stmt.bind(height)
        stmt.bind(index)
        stmt.bind(blob: hash)
        try stmt.run()
    }

    /// An order from columns `first`…: order_id, trace_id, symbol, side, quantity, price,
    /// notional, realized_pnl, ts_ns.
    static func order(_ s: SQLiteStatement, from first: Int32) -> OrderRecord {
        OrderRecord(orderID: s.text(first), traceID: s.text(first + 1), symbol: s.text(first + 2), side: s.text(first + 3),
                    quantity: s.double(first + 4), price: s.double(first + 5), notional: s.double(first + 6),
                    realizedPnl: s.double(first + 7), tsNs: s.int64(first + 8))
    }

    /// A trading state change from columns `first`…: control_id, shard, scope, mode,
    /// from_mode, reason, by, at_ns.
    static func tradingState(_ s: SQLiteStatement, from first: Int32) -> TradingStateRecord {
        TradingStateRecord(controlID: s.text(first), shard: s.text(first + 1), scope: s.text(first + 2), mode: s.text(first + 3),
                           from: s.text(first + 4), reason: s.text(first + 5), by: s.text(first + 6), atNs: s.int64(first + 7))
    }

    /// A dead letter from columns `first`…: deadletter_id, stream, entry_id, consumer_group,
    /// consumer, reason, payload, deliveries, trace_id, ts_ns.
    static func deadLetter(_ s: SQLiteStatement, from first: Int32) -> DeadLetterRecord {
        DeadLetterRecord(deadLetterID: s.text(first), stream: s.text(first + 1), entryID: s.text(first + 2), group: s.text(first + 3),
                         consumer: s.text(first + 4), reason: s.text(first + 5), payload: s.blob(first + 6), deliveries: Int(s.int64(first + 7)),
                         traceID: s.isNull(first + 8) ? nil : s.text(first + 8), tsNs: s.int64(first + 9))
    }
}
