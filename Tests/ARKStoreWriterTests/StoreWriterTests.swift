import ARKCore
import ARKTestSupport
import Foundation
import Testing

@testable import ARKStoreWriter

/// The rollup counts and histograms one batch adds, without SQLite.
@Suite struct RollupAccumulatorTests {
    let t0: Int64 = 1_000_000_000_000
    func pass(_ id: String, _ verdict: Verdict = .approved, ms: Double = 2, hrmUs: Double? = 3.5) -> PassRecord {
        auditedPass(id, verdict: verdict, t0Ns: t0, doneNs: t0 + Int64(ms * 1e6), hrmEvalUs: hrmUs)
    }

    @Test func everyVerdictIsCountedAndOnlyFailuresFailAvailability() {
        let t = RollupThresholds(passTimeoutMs: 5_000, latencySLOMs: 400, hrmSLOMs: 0.05)
        var r = RollupAccumulator()
        for (i, v) in [Verdict.approved, .denied, .rejected, .error, .deadlettered].enumerated() { r.add(pass("p\(i)", v), t) }
        let c = r.totals
        #expect(c.passes == 5 && c.approved == 1 && c.denied == 1 && c.rejected == 1 && c.errors == 1 && c.deadlettered == 1)
        // A dead letter has no latency: failed, not timed.
        #expect(c.failed == 2 && c.timed == 4 && c.slow == 0)
        // A rejected signal never reached HRM; 3.5 µs is within a 50 µs HRM SLO.
        #expect(c.hrmTimed == 3 && c.hrmOverSLO == 0)
        #expect(r.histograms.latency.total == 4 && r.histograms.hrm.total == 3)
    }

    @Test func latencyAgainstTheTimeoutAndTheSLO() {
        let t = RollupThresholds(passTimeoutMs: 1_000, latencySLOMs: 400, hrmSLOMs: 0.001)
        var r = RollupAccumulator()
        r.add(pass("fast", ms: 2), t)
        r.add(pass("over-slo", ms: 500), t)
        r.add(pass("timed-out", ms: 1_500, hrmUs: nil), t)
        #expect(r.totals.slow == 1 && r.totals.failed == 1 && r.totals.overLatencySLO == 2)
        #expect(r.totals.hrmTimed == 2 && r.totals.hrmOverSLO == 2)
        #expect(r.latencyMaxMs == 1_500 && abs(r.latencySumMs - 2_002) < 1e-9)
    }

    @Test func anUntracedDeadLetterStillFailsAPass() {
        var r = RollupAccumulator()
        r.addUntracedDeadLetter()
        #expect(r.totals.passes == 1 && r.totals.deadlettered == 1 && r.totals.failed == 1 && r.totals.timed == 0)
    }

    @Test func totalsAddUpFieldByField() {
        let t = RollupThresholds()
        var a = RollupAccumulator(), b = RollupAccumulator(), both = RollupAccumulator()
        for i in 0..<7 { a.add(pass("a\(i)", i % 3 == 0 ? .denied : .approved, ms: Double(i * 100)), t); both.add(pass("a\(i)", i % 3 == 0 ? .denied : .approved, ms: Double(i * 100)), t) }
        for i in 0..<5 { b.add(pass("b\(i)", .error, ms: 6_000), t); both.add(pass("b\(i)", .error, ms: 6_000), t) }
        var sum = a.totals
        sum += b.totals
        #expect(sum == both.totals)
    }
}

/// When the head is signed, on a made-up clock.
@Suite struct CheckpointScheduleTests {
    @Test func aTailLeftUnsignedAtOpeningIsDueHalfAnIntervalLater() {
        let s = CheckpointSchedule(dueAfterNs: 500, openedNs: 1_000)
        #expect(!s.isDue(nowNs: 1_499) && s.isDue(nowNs: 1_500))
    }

    @Test func theOldestUnsignedLeafSetsTheClock() {
        var s = CheckpointSchedule(dueAfterNs: 500, openedNs: 0)
        s.signed()
        #expect(!s.isDue(nowNs: 10_000))
        s.committed(leaves: 0, nowNs: 10_000)  // an empty batch starts nothing
        #expect(s.oldestUnsignedNs == nil)
        s.committed(leaves: 3, nowNs: 10_000)
        s.committed(leaves: 5, nowNs: 10_400)  // a later batch does not move it
        #expect(!s.isDue(nowNs: 10_499) && s.isDue(nowNs: 10_500))
        s.signed()
        #expect(!s.isDue(nowNs: 99_999))
    }

    @Test func forcedIsDueAtOnce() {
        var s = CheckpointSchedule(dueAfterNs: 1 << 40, openedNs: 0)
        s.signed()
        s.force()
        #expect(s.isDue(nowNs: 1))
    }
}

/// The store's file as a writer makes it: a real SQLite file in a private directory.
@Suite final class StoreFileTests {
    let dir: TempDir
    init() throws { dir = try TempDir("ark-storefile") }
    deinit { dir.remove() }

    func mode(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
    }

    @Test func directoriesAre700TheFile600AndThePragmasSet() throws {
        let path = dir.path + "/a/b/state.db"
        try StoreFile.prepare(path)
        #expect(try mode(dir.path + "/a") == 0o700 && mode(dir.path + "/a/b") == 0o700 && mode(path) == 0o600)
        let db = try StoreFile.connect(path: path, cacheKiB: 1_000, checkpointer: nil)
        #expect(try db.text("PRAGMA journal_mode") == "wal")
        #expect(try db.text("PRAGMA page_size") == String(StoreFile.pageSize))
        #expect(try db.text("PRAGMA synchronous") == "1")  // NORMAL
        #expect(try db.text("SELECT COUNT(*) FROM grdb_migrations") == String(StoreSchema.migrations.count))
        // Opened again, no migration runs twice.
        _ = try StoreFile.connect(path: path, cacheKiB: 1_000, checkpointer: nil)
    }

    @Test func aFileInTheWayOfTheDirectoryNamesTheFix() throws {
        _ = FileManager.default.createFile(atPath: dir.path + "/blocker", contents: Data())
        #expect { try StoreFile.prepare(dir.path + "/blocker/state.db") } throws: { error in
            "\(error)".contains("cannot create the state directory \(dir.path)/blocker: a file of that name is in the way. Fix:")
        }
    }
}

/// The writer on a real store: idempotency by trace, orders only with their recorded pass.
@Suite final class OutcomeWriterTests {
    let dir: TempDir
    init() throws { dir = try TempDir("ark-writer") }
    deinit { dir.remove() }

    @Test func aTraceSentTwiceWithOtherContentKeepsTheFirstAndItsOrder() throws {
        let path = dir.path + "/w.db"
        let writer = try OutcomeWriter(path: path)
        let first = auditedPass("t1", verdict: .approved, t0Ns: 1_000_000_000_000, doneNs: 1_000_002_000_000, order: true)
        let r1 = try writer.record(passes: [first], orders: [try #require(auditedOrder(first))])
        #expect(r1.passesInserted == 1 && r1.ordersInserted == 1 && r1.leavesAdded == 2)
        // The same trace again, denied this time, and a second execution's order.
        var again = auditedPass("t1", verdict: .denied, t0Ns: 1_000_000_000_000, doneNs: 1_000_009_000_000, order: true, symbol: "MSFT")
        again.orderID = "other-order"
        var order = try #require(auditedOrder(first))
        order.orderID = "other-order"
        let r2 = try writer.record(passes: [again], orders: [order])
        #expect(r2 == OutcomeWriter.WriteSummary(passesAlreadyPresent: 1))
        let reader = try AuditReader(path: path)
        #expect(try reader.treeSize() == 2)
    }
}

/// METRICS_RETENTION_SECONDS on a real store: old rollup rows go, passes never do.
@Suite final class RollupRetentionTests {
    let dir: TempDir
    init() throws { dir = try TempDir("ark-retention") }
    deinit { dir.remove() }

    @Test func rowsBeforeTheCutGoAndThePassesStay() throws {
        let path = dir.path + "/r.db"
        let writer = try OutcomeWriter(path: path)
        for second in Int64(1_000)...1_009 {
            let t0 = second * 1_000_000_000
            try writer.record(passes: [auditedPass("p\(second)", t0Ns: t0, doneNs: t0 + 1_000_000)])
        }
        #expect(try writer.pruneRollups(before: 1_005) == 5)
        #expect(try writer.pruneRollups(before: 1_005) == 0)
        // A batch into a pruned second starts its row again from nothing.
        try writer.record(passes: [auditedPass("late", t0Ns: 1_002_000_000_000, doneNs: 1_002_000_500_000)])
        let db = try SQLiteConnection(path: path)
        #expect(try db.text("SELECT COUNT(*) FROM rollup_1s") == "6")
        #expect(try db.text("SELECT passes FROM rollup_1s WHERE second = 1002") == "1")
        #expect(try db.text("SELECT COUNT(*) FROM passes") == "11")
    }
}
