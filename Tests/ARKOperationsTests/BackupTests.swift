import ARKCore
import ARKState
import ARKStoreWriter
import ARKTestSupport
import Foundation
import Testing

@testable import ARKOperations

func pass(_ id: String) -> PassRecord {
    let t0: Int64 = 1_700_000_000_000_000_000
    return auditedPass(id, t0Ns: t0, doneNs: t0 + 2_000_000)
}

/// Backups and restores of real SQLite files.
@Suite final class BackupTests {
    let dir: TempDir
    init() throws { dir = try TempDir("ark-backup") }
    deinit { dir.remove() }

    var backups: String { dir.path + "/backups" }

    @Test func backupsUnderContinuousWritesAreConsistentAndOnlyTheNewestAreKept() async throws {
        let path = dir.path + "/live.db"
        let store = try StateStore(path: path)
        // A writer appending batches of chained passes the whole time, as Aletheia does.
        let writer = Task.detached {
            var n = 0
            while !Task.isCancelled {
                try store.record(passes: (0..<50).map { pass("w\(n)-\($0)") })
                n += 1
                usleep(2000)
            }
            return n
        }
        var made: [Backups.Made] = []
        let t0 = Date()
        for i in 0..<5 {
            // Each backup is taken after the writer has committed more than the last one held,
            // however slowly a loaded machine schedules it (CI once took the first backup
            // before the writer's first batch).
            let before = made.last?.passes ?? 0
            let deadline = Date().addingTimeInterval(30)
            while try store.passCount() <= before && Date() < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            made.append(try Backups.backup(store, into: backups, keep: 3, at: t0.addingTimeInterval(Double(i))))
        }
        writer.cancel()
        let batches = try await writer.value
        #expect(batches >= 5)
        // Each backup is a consistent snapshot: whole batches, an intact chain, growing.
        for m in made { #expect(m.passes % 50 == 0 && m.passes > 0, "\(m.passes)") }
        #expect(zip(made, made.dropFirst()).allSatisfy { $0.passes < $1.passes }, "\(made.map(\.passes))")
        #expect(BackupFiles.list(backups) == made.suffix(3).map(\.path))
        // Self-contained files: nothing else left in the directory (no -wal, -shm, .partial).
        #expect(try FileManager.default.contentsOfDirectory(atPath: backups).sorted() == made.suffix(3).map { ($0.path as NSString).lastPathComponent })
        #expect(made[3].removed == [made[0].path] && made[4].removed == [made[1].path])
        let mode = try FileManager.default.attributesOfItem(atPath: made[4].path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(made[4].path.hasSuffix(Backups.fileName(at: t0.addingTimeInterval(4))))
        #expect(Backups.fileName(at: Date(timeIntervalSince1970: 1_795_437_000)) == "ark_state_backup_20261123T123000Z.db")
    }

    @Test func restoreRefusesDamagedFilesAndLeavesTheStoreAsItWas() throws {
        let path = dir.path + "/live.db"
        let store = try StateStore(path: path)
        try store.record(passes: (0..<30).map { pass("a\($0)") })
        let good = try Backups.backup(store, into: backups)

        let garbage = dir.path + "/garbage.db"
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: garbage))
        #expect(throws: BackupError.self) { try Backups.restore(garbage, to: path) }

        let truncated = dir.path + "/truncated.db"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good.path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        do {
            _ = try Backups.restore(truncated, to: path)
            Issue.record("a truncated backup was restored")
        } catch {
            #expect("\(error)".contains("integrity") || "\(error)".contains("not a readable"), "\(error)")
        }
        #expect(throws: BackupError.self) { try Backups.restore(dir.path + "/missing.db", to: path) }
        #expect(try StateStore(path: path).passCount() == 30)
    }

    @Test func restoreBringsBackTheBackupAndKeepsTheReplacedStore() throws {
        let path = dir.path + "/live.db"
        let good: Backups.Made
        do {
            let store = try StateStore(path: path)
            try store.record(passes: (0..<30).map { pass("a\($0)") })
            good = try Backups.backup(store, into: backups)
            try store.record(passes: (0..<20).map { pass("b\($0)") })
            #expect(try store.passCount() == 50)
            // Refused while a writer has the store open, and nothing changes.
            #expect { try Backups.restore(good.path, to: path) } throws: { "\($0)".contains("ARK is writing") }
            #expect(try store.passCount() == 50)
        }

        let restored = try Backups.restore(good.path, to: path)
        #expect(restored.passes == 30)
        let now = try StateStore(path: path)
        #expect(try now.passCount() == 30 && now.verifyAudit().ok && now.journalMode() == "wal")
        let previous = try #require(restored.previous)
        #expect(try StateStore(path: previous, readOnly: true).passCount() == 50)
    }

    /// A signed log through a backup and a restore: the backup verifies with the key; the
    /// restore signs the restored head, so the checkpoints it discarded read as discarded
    /// (not as deleted records), and Aletheia's start-up check accepts the restored store.
    @Test func aRestoreKeepsTheSignedLogVerifiable() throws {
        let path = dir.path + "/signed.db"
        let file = dir.path + "/checkpoints.jsonl"
        let key = try Ed25519.PrivateKey.generate()
        let signer = AuditSigner(key: key, checkpointFile: file, intervalNs: 0)
        let good: Backups.Made
        do {
            let writer = try OutcomeWriter(path: path, signer: signer)
            try writer.record(passes: (0..<30).map { pass("a\($0)") })
            good = try Backups.backup(try StateStore(path: path), into: backups)
            try writer.record(passes: (0..<20).map { pass("b\($0)") })
        }
        func verify(_ db: String, prefixOnly: Bool = false) throws -> AuditReport {
            let read = try #require(AuditSigner.read(file: file))
            return try StateStore(path: db, readOnly: true).verifyAudit(publicKey: key.publicKey, outside: [CheckpointSource(name: "file", checkpoints: read.checkpoints)], prefixOnly: prefixOnly)
        }
        #expect(try verify(path).ok)
        // The backup is a prefix of the published log: whole as a backup, short as the store.
        #expect(try verify(good.path, prefixOnly: true).ok)
        #expect(try verify(good.path).firstBroken?.problem.contains("the newest 20 record(s) were deleted") == true)

        let restored = try Backups.restore(good.path, to: path, signer: signer)
        let c = try #require(restored.checkpoint)
        #expect(c.kind == .restore && c.size == 30 && c.note.contains("ark_state_backup_"))
        let report = try verify(path)
        #expect(report.ok && report.notes.contains { $0.contains("discarded by the restore") }, "\(report)")
        // Aletheia's start-up check: the newest published head is the restore's, and holds.
        let writer = try OutcomeWriter(path: path, signer: signer)
        try writer.checkHead(against: c, source: "file")
        try writer.record(passes: [pass("c0")])
        #expect(try verify(path).ok)
        // Without the restore checkpoint, the same store reads as truncated.
        #expect(throws: StateStoreError.self) { try writer.checkHead(against: AuditSigner.read(file: file)!.checkpoints.filter { $0.kind == .checkpoint && $0.size == 50 }[0], source: "file") }
    }
}
