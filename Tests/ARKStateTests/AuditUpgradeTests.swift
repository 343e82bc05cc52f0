import ARKCore
@testable import ARKState
@testable import ARKStoreWriter
import ARKTestSupport
import Foundation
import GRDB
import Testing

/// A store written before the audit tree (schema v5: passes hash-chained only) becomes the
/// first leaves of the tree when it is opened; a chain broken before the upgrade stops it.
@Suite final class AuditUpgradeTests {
    let dir: TempDir
    init() throws { dir = try TempDir("ark-upgrade") }
    deinit { dir.remove() }

    /// Passes, orders and a dead letter as the v5 writer stored them, chained as it chained.
    func legacyStore(_ path: String, passes n: Int) throws -> [PassRecord] {
        try StoreSchema.migrate(SQLiteConnection(path: path), upTo: "v5_canary")
        var passes: [PassRecord] = []
        for i in 0..<n {
            let t0: Int64 = 1_000_000_000_000 + Int64(i)
            let verdict: Verdict = i % 4 == 0 ? .denied : .approved
            passes.append(auditedPass("old-\(i)", verdict: verdict, t0Ns: t0, doneNs: t0 + 2_000_000, order: i % 4 != 0))
        }
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            var prev = AuditTreeStore.genesisHash
            for p in passes {
                let record = p.auditRecord()
                let hash = AuditTreeStore.chainHash(prev: prev, record: record)
                var values: [(any DatabaseValueConvertible)?] = [p.traceID, p.signalID, p.symbol, p.source, p.verdict.rawValue]
                // Stores of that time kept the reasons in their column too.
                values += [String(decoding: try JSONSerialization.data(withJSONObject: p.reasons), as: UTF8.self), p.policyHash, p.complianceScore, p.t0Ns, p.doneNs, p.latencyMs, p.hrmEvalUs]
                values += [p.continuityOK ? 1 : 0, p.injectedViolation, p.orderID, String(decoding: record, as: UTF8.self), prev, hash]
                try db.execute(sql: """
                    INSERT INTO passes (trace_id, signal_id, symbol, source, verdict, reasons, policy_hash, compliance_score, t0_ns, done_ns,
                        latency_ms, hrm_eval_us, continuity_ok, injected_violation, order_id, track, record, prev_hash, hash)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'baseline', ?, ?, ?)
                    """, arguments: StatementArguments(values))
                prev = hash
                if let o = auditedOrder(p) {
                    try db.execute(sql: "INSERT INTO orders (order_id, trace_id, symbol, side, quantity, price, notional, realized_pnl, ts_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   arguments: [o.orderID, o.traceID, o.symbol, o.side, o.quantity, o.price, o.notional, o.realizedPnl, o.tsNs])
                }
            }
            try db.execute(sql: """
                INSERT INTO dead_letters (deadletter_id, stream, entry_id, consumer_group, consumer, reason, payload, deliveries, trace_id, ts_ns)
                VALUES ('1-0', 'ark:joey', '0-1', 'joey', 'joey-1', 'undecodable', x'00ff', 5, NULL, 1000000000000)
                """)
        }
        return passes
    }

    @Test func aChainedStoreBecomesTheTreesFirstLeavesAndGrowsOn() throws {
        let path = dir.path + "/v5.db"
        let passes = try legacyStore(path, passes: 300)
        let key = try Ed25519.PrivateKey.generate()
        let signer = AuditSigner(key: key, checkpointFile: dir.path + "/checkpoints.jsonl", intervalNs: 0)
        let writer = try OutcomeWriter(path: path, signer: signer)
        let orders = passes.filter { auditedOrder($0) != nil }.count
        let reader = try AuditReader(path: path)
        #expect(try reader.treeSize() == 300 + orders + 1)
        // The tree goes on from there; the next batch is signed.
        let more = (0..<10).map { auditedPass("new-\($0)", t0Ns: 2_000_000_000_000, doneNs: 2_000_001_000_000) }
        try writer.record(passes: more)
        let store = try StateStore(path: path, readOnly: true)
        let file = try #require(AuditSigner.read(file: dir.path + "/checkpoints.jsonl"))
        let report = try store.verifyAudit(publicKey: key.publicKey, outside: [CheckpointSource(name: "file", checkpoints: file.checkpoints)])
        #expect(report.ok && report.checked == 300 + orders + 1 + 10 && report.checkpointsVerified == 2, "\(report)")
        // Stored subtrees serve the proofs of old and new records alike.
        let nodes = try DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM audit_nodes") }
        #expect(nodes == 3)  // 536 leaves: two subtrees of 256 and one of 512
        for trace in ["old-0", "old-299", "new-9"] {
            let proof = try #require(try store.auditProof(traceID: trace))
            #expect(proof.problem(with: key.publicKey) == nil, "\(trace): \(proof.problem(with: key.publicKey) ?? "")")
        }
    }

    @Test func aChainBrokenBeforeTheUpgradeStopsItNamingTheRecord() throws {
        let path = dir.path + "/broken.db"
        _ = try legacyStore(path, passes: 20)
        try DatabaseQueue(path: path).write { try $0.execute(sql: "UPDATE passes SET record = replace(record, 'approved', 'denied') WHERE seq = 7") }
        var refusal = ""
        do { _ = try OutcomeWriter(path: path) } catch { refusal = "\(error)" }
        #expect(refusal.contains("broken at seq 7") && refusal.contains("restore a backup"), "\(refusal)")
        // Nothing was changed: the old chain and schema are as they were.
        let applied = try DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM grdb_migrations WHERE identifier = 'v6_audit_tree'") }
        #expect(applied == 0)
    }

    /// Two writers (two Aletheia instances, or a canary's beside the baseline's) extend one
    /// tree in turn, from threads of their own, and both sign: every leaf and checkpoint holds.
    @Test func twoWritersExtendOneTreeAndBothSign() async throws {
        let path = dir.path + "/two.db"
        let key = try Ed25519.PrivateKey.generate()
        let file = dir.path + "/two.jsonl"
        let a = try OutcomeWriter(path: path, signer: AuditSigner(key: key, checkpointFile: file, intervalNs: 0))
        let b = try OutcomeWriter(path: path, signer: AuditSigner(key: key, checkpointFile: file, intervalNs: 0))
        await withTaskGroup(of: Void.self) { group in
            for (name, writer) in [("a", a), ("b", b)] {
                group.addTask {
                    for i in 0..<40 {
                        let p = auditedPass("\(name)-\(i)", t0Ns: 1_000_000_000_000, doneNs: 1_000_001_000_000, order: i % 2 == 0)
                        do { try writer.record(passes: [p], orders: auditedOrder(p).map { [$0] } ?? []) } catch { Issue.record("\(name)-\(i): \(error)") }
                    }
                }
            }
        }
        let store = try StateStore(path: path, readOnly: true)
        let read = try #require(AuditSigner.read(file: file))
        let report = try store.verifyAudit(publicKey: key.publicKey, outside: [CheckpointSource(name: "file", checkpoints: read.checkpoints)])
        #expect(report.ok && report.checked == 120 && report.signedSize == 120, "\(report)")
        #expect(read.checkpoints.count == 80)
    }
}

/// The checkpoint file is read from outside the store, so its lines are hostile input: every
/// mutation of a signed line either fails to parse or fails its signature, and none traps.
@Suite struct CheckpointLineTests {
    @Test func mutatedLinesNeverVerifyAndNeverTrap() throws {
        let key = try Ed25519.PrivateKey.generate()
        let signer = AuditSigner(key: key, checkpointFile: "/dev/null")
        let c = try signer.sign(size: 1234, root: Merkle.leafHash([1, 2, 3]), timeNs: 1_796_000_000_000_000_000)
        let line = c.json
        #expect(AuditCheckpoint(json: line) == c && c.verify(with: key.publicKey))
        var parsed = 0
        for m in Self.mutations(of: line, seed: 9) {
            guard m != line, let read = AuditCheckpoint(json: m) else { continue }
            parsed += 1
            // A line that still parses to the same checkpoint is the same line re-spaced.
            if read != c { #expect(!read.verify(with: key.publicKey), "\(String(decoding: m, as: UTF8.self))") }
        }
        #expect(parsed > 0)
        for bad in ["", "{}", "[]", "{\"kind\":\"checkpoint\",\"size\":-1}", "{\"kind\":\"checkpoint\",\"size\":1e300,\"root\":\"00\"}", String(decoding: line.prefix(line.count / 2), as: UTF8.self)] {
            #expect(AuditCheckpoint(json: Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    /// The same for a witness's cosignature line: a mutation that still parses never verifies
    /// with the witness's key (unless it is the same cosignature re-spaced).
    @Test func mutatedCosignaturesNeverVerifyAndNeverTrap() throws {
        let log = try Ed25519.PrivateKey.generate()
        let witness = try Ed25519.PrivateKey.generate()
        let head = try AuditSigner(key: log, checkpointFile: "/dev/null").sign(size: 99, root: Merkle.leafHash([7]), timeNs: 1_796_000_000_000_000_000)
        let c = try AuditCosignature.sign(head, with: witness, timeNs: 1_796_000_000_500_000_000)
        let line = c.json
        #expect(AuditCosignature(json: line) == c && c.verify(with: witness.publicKey) && !c.verify(with: log.publicKey))
        var parsed = 0
        for m in Self.mutations(of: line, seed: 11) {
            guard m != line, let read = AuditCosignature(json: m) else { continue }
            parsed += 1
            if read != c { #expect(!read.verify(with: witness.publicKey), "\(String(decoding: m, as: UTF8.self))") }
        }
        #expect(parsed > 0)
    }

    /// 20,000 copies of `line`, each with one to three bytes replaced, removed or inserted
    /// from JSON's and hex's alphabet.
    static func mutations(of line: [UInt8], seed: UInt64) -> [[UInt8]] {
        var rng = SplitMix64(seed: seed)
        let alphabet = Array("0123456789abcdef\"{}:,-e.\\ ".utf8)
        return (0..<20_000).map { _ in
            var m = line
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let i = Int(rng.next() % UInt64(m.count))
                switch rng.next() % 3 {
                case 0: m[i] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: m.remove(at: i)
                default: m.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: i)
                }
                if m.isEmpty { break }
            }
            return m
        }
    }
}
