// The outcome writer's prepared statements and the binding of each record to its row.

import ARKCore
import GRDBSQLite

/// The prepared statements of the outcome writer's path, and the binding of each record to
/// its row: prepared once with the connection (a lookup by SQL text per batch would hash a
/// few kilobytes per signal at 1 kHz).
struct OutcomeStatements {
    let lastHash, insertPass, insertOrder, insertDeadLetter, insertTradingState, rollupPasses, rollupHistograms, upsertRollup, upsertHeartbeat: SQLiteStatement
    let loadTree, saveTree, insertNode, insertCheckpoint, newestCheckpoint, pruneRollups: SQLiteStatement

    init(_ db: SQLiteConnection) throws {
        lastHash = try db.prepare("SELECT hash FROM passes ORDER BY seq DESC LIMIT 1")
        insertPass = try db.prepare("""
            INSERT INTO passes (trace_id, signal_id, symbol, source, verdict, reasons, policy_hash, compliance_score,
                t0_ns, done_ns, latency_ms, hrm_eval_us, continuity_ok, injected_violation, order_id, track, record, prev_hash, hash, leaf)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(trace_id) DO NOTHING
            """)
        insertOrder = try db.prepare("""
            INSERT INTO orders (order_id, trace_id, symbol, side, quantity, price, notional, realized_pnl, ts_ns, leaf, leaf_hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """)
        insertDeadLetter = try db.prepare("""
            INSERT INTO dead_letters (deadletter_id, stream, entry_id, consumer_group, consumer, reason, payload, deliveries, trace_id, ts_ns, leaf, leaf_hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """)
        insertTradingState = try db.prepare("""
            INSERT INTO trading_states (control_id, shard, scope, mode, from_mode, reason, by, at_ns, leaf, leaf_hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """)
        loadTree = try db.prepare("SELECT size, frontier FROM audit_tree WHERE id = 1")
        saveTree = try db.prepare("INSERT INTO audit_tree (id, size, frontier) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET size = excluded.size, frontier = excluded.frontier")
        insertNode = try db.prepare("INSERT OR REPLACE INTO audit_nodes (height, idx, hash) VALUES (?, ?, ?)")
        insertCheckpoint = try db.prepare("INSERT INTO audit_checkpoints (kind, size, root, time_ns, key_id, note, signature) VALUES (?, ?, ?, ?, ?, ?, ?)")
        newestCheckpoint = try db.prepare("SELECT size FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        rollupPasses = try db.prepare("SELECT passes FROM rollup_1s WHERE second = ?")
        pruneRollups = try db.prepare("DELETE FROM rollup_1s WHERE second < ?")
        rollupHistograms = try db.prepare("SELECT latency_hist, hrm_hist, stage_hists FROM rollup_1s WHERE second = ?")
        upsertRollup = try db.prepare("""
            INSERT INTO rollup_1s (second, passes, approved, denied, rejected, errors, deadlettered, slow, latency_sum_ms, latency_max_ms,
                latency_hist, hrm_hist, failed, timed, over_latency_slo, hrm_timed, hrm_over_slo, stage_hists)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(second) DO UPDATE SET
                passes = passes + excluded.passes, approved = approved + excluded.approved,
                denied = denied + excluded.denied, rejected = rejected + excluded.rejected,
                errors = errors + excluded.errors, deadlettered = deadlettered + excluded.deadlettered,
                slow = slow + excluded.slow, latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms,
                latency_max_ms = max(latency_max_ms, excluded.latency_max_ms),
                latency_hist = excluded.latency_hist, hrm_hist = excluded.hrm_hist,
                failed = failed + excluded.failed, timed = timed + excluded.timed,
                over_latency_slo = over_latency_slo + excluded.over_latency_slo,
                hrm_timed = hrm_timed + excluded.hrm_timed, hrm_over_slo = hrm_over_slo + excluded.hrm_over_slo,
                stage_hists = excluded.stage_hists
            """)
        upsertHeartbeat = try db.prepare("""
            INSERT INTO heartbeats (instance, stage, host, pid, processed, failed, pending, p50_ms, p95_ms, ts_ns)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(instance) DO UPDATE SET stage = excluded.stage, host = excluded.host, pid = excluded.pid,
                processed = excluded.processed, failed = excluded.failed, pending = excluded.pending,
                p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, ts_ns = excluded.ts_ns
            WHERE excluded.ts_ns >= heartbeats.ts_ns
            """)
    }

    // MARK: leaves

    /// Runs the pass INSERT for `p`; true when a row was added (false: the trace was already
    /// recorded). The 1 KB record is bound in place, not copied.
    func insert(_ p: PassRecord, record: [UInt8], prev: String, hash: String, leaf: Int) throws -> Bool {
        let stmt = insertPass
        stmt.reset()
        stmt.bind(p.traceID)
        stmt.bind(p.signalID)
        stmt.bind(p.symbol)
        stmt.bind(p.source)
        stmt.bind(p.verdict.rawValue)
        // The audited record holds the reasons: the column stays empty (`PassColumns.reasons`
        // reads them back), so no pass writes its reasons twice.
        stmt.bind("")
        stmt.bind(p.policyHash)
        stmt.bind(p.complianceScore)
        stmt.bind(p.t0Ns)
        stmt.bind(p.doneNs)
        stmt.bind(p.latencyMs)
        stmt.bind(p.hrmEvalUs)
        stmt.bind(p.continuityOK ? 1 : 0)
        stmt.bind(p.injectedViolation)
        stmt.bind(p.orderID)
        stmt.bind(p.track.rawValue)
        try record.withUnsafeBufferPointer { buf throws(SQLiteError) in
            stmt.bindInPlace(buf)
            stmt.bind(prev)
            stmt.bind(hash)
            stmt.bind(leaf)
            try stmt.run()
        }
        return stmt.connection.changes == 1
    }

    /// True when the order's row was added (false: it was recorded before).
    func insert(_ o: OrderRecord, leaf: Int, leafHash: Merkle.Digest) throws -> Bool {
        let stmt = insertOrder
        stmt.reset()
        stmt.bind(o.orderID)
        stmt.bind(o.traceID)
        stmt.bind(o.symbol)
        stmt.bind(o.side)
        stmt.bind(o.quantity)
        stmt.bind(o.price)
        stmt.bind(o.notional)
        stmt.bind(o.realizedPnl)
        stmt.bind(o.tsNs)
        stmt.bind(leaf)
        stmt.bind(SHA256.hex(leafHash))
        try stmt.run()
        return stmt.connection.changes == 1
    }

    /// True when the dead letter's row was added (false: it was recorded before).
    func insert(_ d: DeadLetterRecord, leaf: Int, leafHash: Merkle.Digest) throws -> Bool {
        let stmt = insertDeadLetter
        stmt.reset()
        stmt.bind(d.deadLetterID)
        stmt.bind(d.stream)
        stmt.bind(d.entryID)
        stmt.bind(d.group)
        stmt.bind(d.consumer)
        stmt.bind(d.reason)
        stmt.bind(blob: d.payload)
        stmt.bind(d.deliveries)
        stmt.bind(d.traceID)
        stmt.bind(d.tsNs)
        stmt.bind(leaf)
        stmt.bind(SHA256.hex(leafHash))
        try stmt.run()
        return stmt.connection.changes == 1
    }

    /// True when the trading state's row was added (false: it was recorded before).
    func insert(_ t: TradingStateRecord, leaf: Int, leafHash: Merkle.Digest) throws -> Bool {
        let stmt = insertTradingState
        stmt.reset()
        stmt.bind(t.controlID)
        stmt.bind(t.shard)
        stmt.bind(t.scope)
        stmt.bind(t.mode)
        stmt.bind(t.from)
        stmt.bind(t.reason)
        stmt.bind(t.by)
        stmt.bind(t.atNs)
        stmt.bind(leaf)
        stmt.bind(SHA256.hex(leafHash))
        try stmt.run()
        return stmt.connection.changes == 1
    }

    // MARK: the audit tree

    /// The tree's right edge as the store holds it; `path` names the store in the error.
    func loadTree(path: String) throws -> Merkle.Frontier {
        guard let (size, blob) = try loadTree.firstRow({ (Int($0.int64(0)), $0.blob(1)) }) else { return Merkle.Frontier() }
        guard let tree = AuditLeaf.decode(size: size, blob) else {
            throw StateStoreError("the audit tree's right edge in \(path) (audit_tree) is damaged: \(blob.count) bytes for \(size) leaves. Fix: run ark verify-audit, and restore a backup")
        }
        return tree
    }

    func save(_ tree: Merkle.Frontier) throws {
        saveTree.reset()
        saveTree.bind(tree.size)
        saveTree.bind(blob: AuditLeaf.encode(tree))
        try saveTree.run()
    }

    func append(_ leafHash: Merkle.Digest, to tree: inout Merkle.Frontier) throws {
        try AuditTreeStore.append(leafHash, to: &tree, storingWith: insertNode)
    }

    func insert(_ c: AuditCheckpoint) throws {
        let s = insertCheckpoint
        s.reset()
        s.bind(c.kind.rawValue)
        s.bind(c.size)
        s.bind(SHA256.hex(c.root))
        s.bind(c.timeNs)
        s.bind(c.keyID)
        s.bind(c.note)
        s.bind(SHA256.hex(c.signature))
        try s.run()
    }

    /// The tree size the newest checkpoint signed (nil: none yet).
    func newestCheckpointSize() throws -> Int? {
        try newestCheckpoint.firstRow { Int($0.int64(0)) }
    }

    // MARK: rollups and heartbeats

    /// A rollup row's histograms as this writer last wrote them, and its pass count then.
    struct CachedRollup {
        var second: Int64
        var passes: Int
        var histograms: RollupHistograms
    }

    /// Adds `r` to the row of `second`. At 1,000 passes/s every batch merges into the same
    /// row, and decoding its three histograms again each time was a fifth of Aletheia's CPU:
    /// the histograms this writer wrote last are kept in `cached`, and used while the row's
    /// pass count shows no other writer added to it since (every merge adds passes).
    func mergeRollup(second: Int64, _ r: RollupAccumulator, cached: inout CachedRollup?) throws {
        var histograms = r.histograms
        let count = rollupPasses
        count.reset()
        count.bind(second)
        let storedPasses = try count.firstRow { Int($0.int64(0)) }
        if let storedPasses {
            if let c = cached, c.second == second, c.passes == storedPasses {
                histograms.merge(c.histograms)
            } else {
                let select = rollupHistograms
                select.reset()
                select.bind(second)
                if let (l, h, s) = try select.firstRow({ ($0.blob(0), $0.blob(1), $0.blob(2)) }) {
                    histograms.latency.merge(LogHistogram(encoded: l))
                    histograms.hrm.merge(LogHistogram(encoded: h))
                    histograms.stages.merge(StageHistograms(encoded: s))
                }
            }
        }
        let t = r.totals
        cached = CachedRollup(second: second, passes: (storedPasses ?? 0) + t.passes, histograms: histograms)
        let upsert = upsertRollup
        upsert.reset()
        upsert.bind(second)
        for n in [t.passes, t.approved, t.denied, t.rejected, t.errors, t.deadlettered, t.slow] { upsert.bind(n) }
        upsert.bind(r.latencySumMs)
        upsert.bind(r.latencyMaxMs)
        upsert.bind(blob: histograms.latency.encoded())
        upsert.bind(blob: histograms.hrm.encoded())
        for n in [t.failed, t.timed, t.overLatencySLO, t.hrmTimed, t.hrmOverSLO] { upsert.bind(n) }
        upsert.bind(blob: histograms.stages.encoded())
        try upsert.run()
    }

    func upsert(_ b: HeartbeatRecord) throws {
        let stmt = upsertHeartbeat
        stmt.reset()
        stmt.bind(b.instance)
        stmt.bind(b.stage)
        stmt.bind(b.host)
        stmt.bind(b.pid)
        stmt.bind(b.processed)
        stmt.bind(b.failed)
        stmt.bind(b.pending)
        stmt.bind(b.p50Ms)
        stmt.bind(b.p95Ms)
        stmt.bind(b.tsNs)
        try stmt.run()
    }
}
