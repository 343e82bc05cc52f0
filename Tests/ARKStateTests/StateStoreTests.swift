import ARKCore
@testable import ARKState
@testable import ARKStoreWriter
import ARKTestSupport
import Foundation
import GRDB
import Testing

func pass(_ id: String, verdict: Verdict = .approved, t0: Int64 = 1_000_000_000_000, latencyMs: Double = 2, order: Bool = false) -> PassRecord {
    auditedPass(id, verdict: verdict, t0Ns: t0, doneNs: t0 + Int64(latencyMs * 1e6), order: order)
}

@Suite final class StateStoreTests {
    let dir: TempDir
    init() throws { dir = try TempDir("ark-state") }
    deinit { dir.remove() }

    @Test func walModeFileMode600AndMigrationsOnce() throws {
        let path = dir.path + "/sub/ark_state.db"
        let store = try StateStore(path: path)
        #expect(try store.journalMode() == "wal")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
        #expect(mode == 0o600)
        _ = try StateStore(path: path)  // reopening applies no migration twice
        #expect(try store.passCount() == 0)
    }

    /// A migrated store is only read on open: `ark health` and the other readers-that-may-write
    /// open it while a stuck writer holds the write lock, and must not wait for it.
    @Test func openingAMigratedStoreNeverWaitsForTheWriteLock() throws {
        let path = dir.path + "/held.db"
        // As in production: a writer keeps the store open, so its WAL is never empty.
        let first = try StateStore(path: path)
        try first.record(passes: [pass("first")])
        let holder = try DatabaseQueue(path: path)
        try holder.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            defer { try? db.execute(sql: "ROLLBACK") }
            let store = try StateStore(path: path)
            #expect(try store.passCount() == 1)
            let expected = "SQLite error 5: database is locked"
            #expect { try store.record(passes: [pass("blocked")]) } throws: { error in
                StoreUnavailable(error) != nil && "\(error)".hasPrefix(expected)
            }
        }
    }

    @Test func concurrentFirstOpensBothMigrate() async throws {
        let path = dir.path + "/race.db"
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 { group.addTask { try StateStore(path: path).passCount() } }
            for try await count in group { #expect(count == 0) }
        }
    }

    @Test func recordsAreIdempotentAndChained() throws {
        let store = try StateStore(path: dir.path + "/a.db")
        let batch = (0..<100).map { pass("t\($0)", verdict: $0 % 10 == 0 ? .denied : .approved, order: $0 % 10 != 0) }
        let orders = batch.compactMap(auditedOrder)
        let first = try store.record(passes: batch, orders: orders)
        #expect(first.passesInserted == 100 && first.ordersInserted == 90)
        let again = try store.record(passes: batch, orders: orders)  // a redelivered batch
        #expect(again.passesInserted == 0 && again.passesAlreadyPresent == 100 && again.ordersInserted == 0)
        #expect(try store.passCount() == 100 && store.orderCount() == 90)
        #expect(try store.verdictCounts() == [.approved: 90, .denied: 10])
        let report = try store.verifyAudit()
        #expect(report.ok && report.checked == 190)  // 100 passes and 90 orders, each a leaf
        let p = try #require(try store.pass(traceID: "t10"))
        #expect(p.verdict == .denied && p.violatedRules == ["max_leverage"])
        #expect(try store.passes(traceIDs: ["t1", "t2", "nope"]).count == 2)
        // A redelivered trace done again differently (after a failover Kenny may fill on the
        // promoted replica what it had refused before): the first outcome stays, and the second
        // execution's order is not recorded against a pass that shows no fill.
        #expect(batch.first { $0.traceID == "t10" }?.verdict == .denied)
        let redone = pass("t10", verdict: .approved, order: true)
        let late = try store.record(passes: [redone], orders: auditedOrder(redone).map { [$0] } ?? [])
        #expect(late.passesAlreadyPresent == 1 && late.ordersInserted == 0)
        #expect(try store.orderCount() == 90 && store.verifyAudit().ok)
        // Both outcomes of one new trace in one batch (a resubmission refused, then filled):
        // the first is recorded, and the second's order is not.
        let refused = pass("t200", verdict: .denied)
        let filled = pass("t200", verdict: .approved, order: true)
        let both = try store.record(passes: [refused, filled], orders: auditedOrder(filled).map { [$0] } ?? [])
        #expect(both.passesInserted == 1 && both.ordersInserted == 0)
        #expect(try store.orderCount() == 90 && store.verifyAudit().ok)
    }

    @Test func tamperingIsFoundAtTheFirstBrokenLink() throws {
        let path = dir.path + "/b.db"
        let store = try StateStore(path: path)
        try store.record(passes: (0..<50).map { pass("t\($0)") })
        let db = try DatabaseQueue(path: path)
        try db.write { try $0.execute(sql: "UPDATE passes SET record = replace(record, 'approved', 'denied') WHERE trace_id = 't20'") }
        let report = try store.verifyAudit()
        #expect(report.firstBroken?.traceID == "t20" && report.checked == 20)
        try db.write { try $0.execute(sql: "UPDATE passes SET record = replace(record, 'denied', 'approved') WHERE trace_id = 't20'") }
        #expect(try store.verifyAudit().ok)
        try db.write { try $0.execute(sql: "DELETE FROM passes WHERE trace_id = 't30'") }
        #expect(try store.verifyAudit().firstBroken?.traceID == "t31")
        try db.write { try $0.execute(sql: "UPDATE passes SET verdict = 'denied' WHERE trace_id = 't5'") }
        #expect(try store.verifyAudit().firstBroken?.traceID == "t5")
    }

    @Test func rollupsCountEveryVerdictPerSecond() throws {
        let path = dir.path + "/c.db"
        let store = try StateStore(path: path)
        let base: Int64 = 1_700_000_000 * 1_000_000_000
        var batch = (0..<90).map { pass("a\($0)", t0: base, latencyMs: 2) }
        batch += (0..<5).map { pass("d\($0)", verdict: .denied, t0: base) }
        batch += [pass("e", verdict: .error, t0: base), pass("s", t0: base, latencyMs: 6_000)]
        try store.record(passes: Array(batch[..<40]), thresholds: RollupThresholds(passTimeoutMs: 5_000))
        try store.record(passes: Array(batch[40...]), thresholds: RollupThresholds(passTimeoutMs: 5_000))
        let db = try DatabaseQueue(path: path)
        let rows = try db.read { try Row.fetchAll($0, sql: "SELECT * FROM rollup_1s ORDER BY second") }
        let passes = rows.map { $0["passes"] as Int }.reduce(0, +)
        let slow = rows.map { $0["slow"] as Int }.reduce(0, +)
        #expect(passes == 97 && slow == 1)
        #expect(rows.map { $0["denied"] as Int }.reduce(0, +) == 5 && rows.map { $0["errors"] as Int }.reduce(0, +) == 1)
        var merged = LogHistogram()
        for r in rows { merged.merge(LogHistogram(encoded: [UInt8](r["latency_hist"] as Data))) }
        #expect(merged.total == 97)
        #expect(abs(merged.quantile(0.5)! - 2_000) / 2_000 < 0.01)
    }

    /// The writer keeps the last rollup row's histograms rather than decoding them again; a
    /// second writer adding to the same second, and a transaction that failed, must both
    /// send it back to the row.
    @Test func rollupHistogramsStayWholeWithTwoWritersAndAFailedBatch() throws {
        let path = dir.path + "/two.db"
        let a = try StateStore(path: path)
        let b = try StateStore(path: path)
        let base: Int64 = 1_700_000_000 * 1_000_000_000
        var expected = LogHistogram()
        for round in 0..<6 {
            let writer = round % 3 == 2 ? b : a
            let batch = (0..<10).map { pass("r\(round)-\($0)", t0: base, latencyMs: Double(1 + round)) }
            try writer.record(passes: batch)
            for p in batch { expected.record(micros: p.latencyMs * 1000) }
            if round == 3 {
                // An order SQLite refuses (NaN binds as NULL) rolls the whole batch back.
                let bad = OrderRecord(orderID: "ord-lost", traceID: "lost", symbol: "AAPL", side: "buy", quantity: .nan, price: 1, notional: 1, realizedPnl: 0, tsNs: 1)
                #expect(throws: (any Error).self) { try a.record(passes: [pass("lost", t0: base, order: true)], orders: [bad]) }
            }
        }
        let stored = try a.rollupHistograms(since: 0)
        #expect(stored.latency.total == 60)
        #expect(stored.latency == expected)
        #expect(try a.passCount() == 60)
    }

    @Test func migrationV3ResamplesFineStageHistograms() throws {
        let path = dir.path + "/v2.db"
        var fine = [LogHistogram](repeating: LogHistogram(), count: Stage.allCases.count)
        for v in stride(from: 100.0, through: 10_000, by: 7) { fine[2].record(micros: v) }
        var blob: [UInt8] = []
        for h in fine {
            let bytes = h.total == 0 ? [] : h.encoded()
            withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { blob.append(contentsOf: $0) }
            blob += bytes
        }
        do {
            try StoreSchema.migrate(SQLiteConnection(path: path), upTo: "v2_rollup_slo_counts")
            let queue = try DatabaseQueue(path: path)
            try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO rollup_1s (second, passes, approved, denied, rejected, errors, deadlettered, slow,
                        latency_sum_ms, latency_max_ms, latency_hist, hrm_hist, stage_hists)
                    VALUES (5, 1, 1, 0, 0, 0, 0, 0, 1, 1, x'', x'', ?)
                    """, arguments: [Data(blob)])
            }
        }
        let store = try StateStore(path: path)
        let stages = try store.rollupHistograms(since: 0).stages
        let hrm = stages[Stage.allCases[2]]
        #expect(hrm.resolution == .coarse)
        #expect(hrm.total == fine[2].total)
        #expect(hrm == fine[2].resampled(to: .coarse))
        #expect(stages[Stage.allCases[0]].total == 0)
    }

    @Test func deadLettersAndHeartbeats() throws {
        let store = try StateStore(path: dir.path + "/d.db")
        let dl = DeadLetterRecord(deadLetterID: "1-0", stream: "ark:hrm", entryID: "5-0", group: "HRM", consumer: "HRM-h-1", reason: "cannot decode",
                                  payload: [0xFF], deliveries: 6, traceID: nil, tsNs: 1)
        #expect(try store.record(passes: [], deadLetters: [dl, dl]).deadLettersInserted == 1)
        #expect(try store.deadLetters() == [dl])
        let hb = HeartbeatRecord(instance: "Kyle-h-1", stage: "Kyle", host: "h", pid: 1, processed: 5, failed: 0, pending: 2, p50Ms: 0.1, p95Ms: 0.2, tsNs: 10)
        try store.upsertHeartbeats([hb])
        var older = hb
        older.tsNs = 5
        older.processed = 1
        try store.upsertHeartbeats([older])  // an older beat never overwrites a newer one
        #expect(try store.heartbeats() == [hb])
    }

    @Test func onlineBackupIsAConsistentCopy() throws {
        let store = try StateStore(path: dir.path + "/e.db")
        try store.record(passes: (0..<20).map { pass("t\($0)") })
        try store.backup(to: dir.path + "/backup.db")
        let copy = try StateStore(path: dir.path + "/backup.db", readOnly: true)
        #expect(try copy.passCount() == 20 && copy.verifyAudit().ok)
    }
}

@Suite final class WALCheckpointTests {
    let dir: TempDir
    init() throws { dir = try TempDir("ark-wal") }
    deinit { dir.remove() }

    func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// The writer's commits never checkpoint; the checkpoint thread does, so the database
    /// file grows while the writer goes on, and the WAL is reused instead of growing.
    @Test func theBackgroundCheckpointerCopiesTheWALWhileTheWriterGoesOn() throws {
        let path = dir.path + "/bg.db"
        let writer = try OutcomeWriter.aletheia(path: path, checkpointInterval: .seconds(300))
        let store = try StateStore(path: path, readOnly: true)
        var maxWAL = 0
        for b in 0..<1_000 {
            try writer.record(passes: (0..<5).map { pass("b\(b)-\($0)", t0: 1_000_000_000_000 + Int64(b) * 1_000_000) })
            maxWAL = max(maxWAL, fileSize(path + "-wal"))
            if b % 50 == 49 { usleep(50_000) }  // give the checkpoint thread its turns
        }
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while fileSize(path) < 200_000 && monotonicNanoseconds() < deadline { usleep(20_000) }
        // 1,000 small transactions write about 40 MB of WAL frames (each holds the passes, their
        // indexes, the audit tree's edge and the rollup row); the file starts with the
        // schema's few pages. Reused, the WAL stays under the 4,000-page (16 MB) mark past
        // which the checkpoint thread makes it start over, with a margin for the batches
        // written while it does.
        #expect(fileSize(path) > 200_000, "the database file never received the WAL's pages")
        #expect(maxWAL < 24_000_000, "the WAL grew to \(maxWAL) bytes: it was never reused")
        #expect(try store.passCount() == 5000)
        #expect(try store.verifyAudit().ok)
    }
}

/// The store on a small tmpfs that really fills (root only, as in the runbook rehearsal).
@Suite(.enabled(if: getuid() == 0, "mounts a tmpfs disk to fill: needs root")) final class FullDiskTests {
    let dir: TempDir
    let disk: String
    init() throws {
        dir = try TempDir("ark-full")
        disk = dir.path + "/disk"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let r = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", disk])
        guard r.code == 0 else { throw TestSetupError("mount tmpfs on \(disk): \(r.output)") }
    }
    deinit {
        _ = try? runCommand("/bin/umount", ["-l", disk])
        dir.remove()
    }

    /// With Aletheia's checkpoints on their own thread, a full disk still fails the write
    /// with SQLite's own reason (the runbook's confirm step greps for it), never with a lock
    /// held by the checkpoint, and writing resumes once space is freed.
    @Test func aFullDiskFailsTheWriteWithItsReasonAndWritingResumes() throws {
        let store = try OutcomeWriter.aletheia(path: disk + "/s.db", checkpointInterval: .seconds(1))
        let reader = try StateStore(path: disk + "/s.db", readOnly: true)
        var n = 0
        func batch() -> [PassRecord] {
            n += 1
            return (0..<20).map { pass("f\(n)-\($0)") }
        }
        for _ in 0..<50 { try store.record(passes: batch()) }
        _ = try runCommand("/bin/bash", ["-c", "dd if=/dev/zero of='\(disk)/filler' bs=64k 2>/dev/null; true"])
        // As Aletheia does: retry the failing batch for a while (the checkpoint thread keeps
        // trying too).
        var errors: [String] = []
        let until = monotonicNanoseconds() + 4_000_000_000
        while monotonicNanoseconds() < until {
            do { try store.record(passes: batch()) } catch { errors.append("\(error)") }
            usleep(100_000)
        }
        #expect(!errors.isEmpty, "the disk never filled")
        for e in errors { #expect(e.contains("database or disk is full"), "\(e)") }
        try FileManager.default.removeItem(atPath: disk + "/filler")
        try store.record(passes: batch())
        #expect(try reader.verifyAudit().ok)
    }
}
