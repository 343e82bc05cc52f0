import ARKCore
import ARKState
import ARKStoreWriter
import ARKTestSupport
import Foundation
import Testing

/// Each kind of edit, deletion, reordering, rollback and forgery an attacker who can write the
/// database might make, on a copy of a store the real pipeline wrote and signed: `ark
/// verify-audit` (with only the public key) fails on every one, naming the record.
extension EndToEnd { @Suite struct AuditTamperTests {
    @Test func everyEditTruncationReorderAndForgeryIsCaught() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        f.extraEnvironment["ARK_AUDIT_CHECKPOINT_MS"] = "200"
        _ = FileManager.default.createFile(atPath: f.dir.path + "/audit.pub", contents: Data(f.auditKey.publicKey.pem))
        try f.startAll()
        // A message Joey cannot read: dead-lettered, so the log holds a dead letter leaf too.
        _ = try f.redis.client().command(["XADD", .text(Stage.joey.inputStream), "*", "event", "not an event"])
        // Halfway, an online copy: a consistent store that lacks the newest records (what a
        // rollback to an old file would leave).
        async let run = f.synthetic(count: 120, rate: 60, violationEvery: 10)
        try await Task.sleep(for: .seconds(1))
        let older = f.dir.path + "/older.db"
        _ = try sqlite(f.statePath, ".backup '\(older)'")
        let report = try await run
        #expect(report.completed == 120, "\(report.summary)")
        try await Task.sleep(for: .seconds(1))  // a checkpoint covers the newest records
        f.stopAll()

        func verify(_ db: String, _ extra: [String] = []) throws -> CommandResult {
            try runCommand(Repo.arkBinary, ["verify-audit", "--public-key", f.dir.path + "/audit.pub"] + extra,
                           environment: f.environment.merging(["ARK_STATE_DB": db]) { $1 })
        }
        let intact = try verify(f.statePath)
        #expect(intact.code == 0 && intact.output.contains("Audit log intact") && !intact.output.contains("not yet under"), "\(intact.output)")
        #expect(try Int(sqlite(f.statePath, "SELECT count(*) FROM dead_letters")) == 1)
        #expect(try Int(sqlite(f.statePath, "SELECT count(*) FROM audit_checkpoints"))! >= 3)
        let fileLines = try String(contentsOfFile: f.checkpointFile, encoding: .utf8).split(separator: "\n")
        #expect(fileLines.count == (try Int(sqlite(f.statePath, "SELECT count(*) FROM audit_checkpoints"))!))
        #expect(try f.redis.client().command(["GET", .text(Streams.auditCheckpoint)]).string?.contains("\"signature\"") == true)

        let denied = try sqlite(f.statePath, "SELECT trace_id FROM passes WHERE verdict = 'denied' ORDER BY seq LIMIT 1")
        let filled = try sqlite(f.statePath, "SELECT trace_id FROM orders ORDER BY rowid LIMIT 1")
        let maxSeq = try Int(sqlite(f.statePath, "SELECT max(seq) FROM passes"))!
        let rehashed = try rehashedEdit(of: denied, in: f.statePath)
        let edits: [(what: String, sql: String, expected: String, named: String)] = [
            ("a denied pass's reasons emptied", "UPDATE passes SET reasons = '[]' WHERE trace_id = '\(denied)'", "the reasons column differs", "trace \(denied)"),
            ("its policy hash changed", "UPDATE passes SET policy_hash = 'f00d' WHERE trace_id = '\(denied)'", "the policy_hash column differs", "trace \(denied)"),
            ("its compliance score changed", "UPDATE passes SET compliance_score = 1.0 WHERE trace_id = '\(denied)'", "the compliance_score column differs", "trace \(denied)"),
            ("its verdict flipped", "UPDATE passes SET verdict = 'approved' WHERE trace_id = '\(denied)'", "the verdict column differs", "trace \(denied)"),
            ("a pass's latency divided by 10", "UPDATE passes SET latency_ms = latency_ms / 10 WHERE trace_id = '\(filled)'", "the latency_ms column differs", "trace \(filled)"),
            ("its symbol changed", "UPDATE passes SET symbol = 'GME' WHERE trace_id = '\(filled)'", "the symbol column differs", "trace \(filled)"),
            ("its record edited", "UPDATE passes SET record = replace(record, '\"denied\"', '\"approved\"') WHERE trace_id = '\(denied)'", "the record was edited", "trace \(denied)"),
            ("an order's quantity multiplied by 100", "UPDATE orders SET quantity = quantity * 100 WHERE trace_id = '\(filled)'", "the order's quantity column differs", "trace \(filled)"),
            ("an order's time moved", "UPDATE orders SET ts_ns = ts_ns + 1 WHERE trace_id = '\(filled)'", "the order was edited", "trace \(filled)"),
            ("an order deleted", "DELETE FROM orders WHERE trace_id = '\(filled)'", "is missing from the orders table", "trace \(filled)"),
            ("a pass in the middle deleted", "DELETE FROM passes WHERE seq = 50", "is missing", "record #51"),
            ("the newest 10 passes deleted", "DELETE FROM passes WHERE seq > \(maxSeq - 10)", "deleted", "BROKEN"),
            ("two passes swapped", "UPDATE passes SET seq = -1 WHERE seq = 20; UPDATE passes SET seq = 20 WHERE seq = 21; UPDATE passes SET seq = 21 WHERE seq = -1",
             "reordered", "record #20"),
            ("a dead letter's reason edited", "UPDATE dead_letters SET reason = 'nothing to see'", "dead letter", "do not hash to its leaf hash"),
            ("a pass inserted", "INSERT INTO passes (trace_id, signal_id, symbol, source, verdict, reasons, t0_ns, done_ns, latency_ms, continuity_ok, record, prev_hash, hash) SELECT 'forged', signal_id, symbol, source, verdict, reasons, t0_ns, done_ns, latency_ms, continuity_ok, record, prev_hash, hash FROM passes WHERE seq = 30",
             "inserted outside ARK", "trace forged"),
            ("the newest checkpoint in the store replaced", "UPDATE audit_checkpoints SET root = '\(String(repeating: "ab", count: 32))' WHERE id = (SELECT max(id) FROM audit_checkpoints)",
             "does not verify: it was replaced or forged", "BROKEN"),
            ("a pass edited and every hash recomputed", rehashed, "was changed and its hash recomputed", "BROKEN"),
            ("the stored tree edited", "UPDATE audit_tree SET frontier = zeroblob(length(frontier))", "audit_tree", "BROKEN"),
        ]
        for e in edits {
            let copy = try freshCopy(of: f.statePath, in: f.dir.path)
            _ = try sqlite(copy, e.sql)
            let r = try verify(copy)
            #expect(r.code == 1 && r.output.contains("BROKEN") && r.output.contains(e.expected), "\(e.what): \(r.output)")
            #expect(r.output.contains(e.named), "\(e.what) does not name \(e.named): \(r.output)")
        }

        // Rolled back to the copy made halfway: consistent in itself, but the checkpoint file
        // and Redis hold heads it lacks.
        let rolledBack = try verify(older)
        #expect(rolledBack.code == 1 && rolledBack.output.contains("record(s) were deleted"), "\(rolledBack.output)")
        // And the same with the store's own checkpoints only: the file and Redis are what
        // catch it (the file alone too).
        let fileOnly = try runCommand(Repo.arkBinary, ["verify-audit", "--public-key", f.dir.path + "/audit.pub"],
                                      environment: f.environment.merging(["ARK_STATE_DB": older, "REDIS_URL": "redis://127.0.0.1:1/0"]) { $1 })
        #expect(fileOnly.code == 1 && fileOnly.output.contains("the checkpoint file") && fileOnly.output.contains("were deleted"), "\(fileOnly.output)")

        // A checkpoint line in the file replaced: caught by its signature.
        let forgedFile = f.dir.path + "/forged.jsonl"
        var lines = fileLines.map(String.init)
        lines[lines.count - 1] = lines[lines.count - 1].replacingOccurrences(of: "\"size\":", with: "\"size\":1")
        try (lines.joined(separator: "\n") + "\n").write(toFile: forgedFile, atomically: true, encoding: .utf8)
        let forged = try verify(f.statePath, ["--checkpoints", forgedFile])
        #expect(forged.code == 1 && forged.output.contains("does not verify"), "\(forged.output)")

        // Another key's view: every checkpoint names the key that signed it.
        let stranger = try Ed25519.PrivateKey.generate()
        _ = FileManager.default.createFile(atPath: f.dir.path + "/stranger.pub", contents: Data(stranger.publicKey.pem))
        let wrongKey = try runCommand(Repo.arkBinary, ["verify-audit", "--public-key", f.dir.path + "/stranger.pub"], environment: f.environment)
        #expect(wrongKey.code == 1 && wrongKey.output.contains("was signed by key \(f.auditKey.publicKey.keyID)"), "\(wrongKey.output)")

        // Aletheia refuses to sign over a store that lost what it signed.
        try FileManager.default.removeItem(atPath: f.statePath)
        try FileManager.default.copyItem(atPath: older, toPath: f.statePath)
        try f.start(.aletheia)
        let aletheia = try #require(f.agents[.aletheia])
        #expect(aletheia.child.wait(timeout: 20), "Aletheia started on a rolled-back store")
        #expect(aletheia.child.exitCode == 78 && aletheia.output.contains("were deleted"), "\(aletheia.output.suffix(2000))")
    }

    /// The issue's second attack, by someone holding the ARK host: a denied pass rewritten as
    /// approved, the tree rebuilt, every checkpoint (store, file, Redis) re-signed with a new
    /// key whose .pub replaces the one beside the private key. Only a pinned key catches it:
    /// production refuses to verify without one, and Aletheia refuses to sign with the
    /// attacker's key; a garbled line in the middle of the checkpoint file is a failure too.
    @Test func aLogReSignedWithAnotherKeyIsCaughtByThePinnedKey() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        f.extraEnvironment["ARK_AUDIT_CHECKPOINT_MS"] = "200"
        let pinned = f.dir.path + "/pinned.pub"
        _ = FileManager.default.createFile(atPath: pinned, contents: Data(f.auditKey.publicKey.pem))
        _ = FileManager.default.createFile(atPath: f.auditKeyPath + ".pub", contents: Data(f.auditKey.publicKey.pem))
        try f.startAll()
        let report = try await f.synthetic(count: 60, rate: 60, violationEvery: 5)
        #expect(report.completed == 60, "\(report.summary)")
        try await Task.sleep(for: .seconds(1))
        f.stopAll()
        func verify(_ env: [String: String]) throws -> CommandResult {
            try runCommand(Repo.arkBinary, ["verify-audit"], environment: f.environment.merging(env) { $1 })
        }
        #expect(try verify(["ARK_AUDIT_PUBLIC_KEY": pinned]).code == 0)

        // A garbled line that is not the last: a failure, not a note.
        let lines = try String(contentsOfFile: f.checkpointFile, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count >= 3)
        var garbled = lines
        garbled[lines.count - 2] = String(garbled[lines.count - 2].dropLast(9)) + "#garbled#"
        let garbledFile = f.dir.path + "/garbled.jsonl"
        try (garbled.joined(separator: "\n") + "\n").write(toFile: garbledFile, atomically: true, encoding: .utf8)
        let middle = try verify(["ARK_AUDIT_PUBLIC_KEY": pinned, "ARK_AUDIT_CHECKPOINTS": garbledFile])
        #expect(middle.code == 1 && middle.output.contains("line \(lines.count - 1) of the checkpoint file") && middle.output.contains("not the last line"), "\(middle.output)")
        // A torn last line (a crash mid-write) is a note, and Aletheia cuts it before appending.
        try (lines.joined(separator: "\n") + "\n" + String(lines[0].prefix(40))).write(toFile: garbledFile, atomically: true, encoding: .utf8)
        let torn = try verify(["ARK_AUDIT_PUBLIC_KEY": pinned, "ARK_AUDIT_CHECKPOINTS": garbledFile])
        #expect(torn.code == 0 && torn.output.contains("torn by a crash"), "\(torn.output)")

        // The attack.
        let denied = try sqlite(f.statePath, "SELECT trace_id FROM passes WHERE verdict = 'denied' ORDER BY seq LIMIT 1")
        _ = try sqlite(f.statePath, try rehashedEdit(of: denied, in: f.statePath))
        let attacker = try Ed25519.PrivateKey.generate()
        try reSign(f.statePath, checkpointFile: f.checkpointFile, with: attacker)
        _ = try f.redis.client().command(["SET", .text(Streams.auditCheckpoint), .bytes(try #require(AuditSigner.read(file: f.checkpointFile)?.checkpoints.last).json)])
        try FileManager.default.removeItem(atPath: f.auditKeyPath)
        _ = FileManager.default.createFile(atPath: f.auditKeyPath, contents: Data(attacker.pem), attributes: [.posixPermissions: 0o600])
        _ = FileManager.default.createFile(atPath: f.auditKeyPath + ".pub", contents: Data(attacker.publicKey.pem))

        // Unpinned, outside production: the .pub beside the key says intact, and the note says why that proves little.
        let unpinned = try verify([:])
        #expect(unpinned.code == 0 && unpinned.output.contains("not pinned"), "\(unpinned.output)")
        // In production the .pub is not trusted on its own.
        let production = try verify(["ARK_ENV": "production"])
        #expect(production.code == 78 && production.output.contains("ARK_AUDIT_PUBLIC_KEY is not set"), "\(production.output)")
        // Pinned: every re-signed checkpoint names the attacker's key.
        let caught = try verify(["ARK_AUDIT_PUBLIC_KEY": pinned])
        #expect(caught.code == 1 && caught.output.contains("BROKEN") && caught.output.contains(attacker.publicKey.keyID) && caught.output.contains("neither the pinned key"), "\(caught.output)")
        // Aletheia will not sign with a key the pin does not lead to.
        f.extraEnvironment["ARK_AUDIT_PUBLIC_KEY"] = pinned
        try f.start(.aletheia)
        let aletheia = try #require(f.agents[.aletheia])
        #expect(aletheia.child.wait(timeout: 20), "Aletheia started with the attacker's key")
        #expect(aletheia.child.exitCode == 78 && aletheia.output.contains("neither the pinned key"), "\(aletheia.output.suffix(2000))")
    }

    /// A planned rotation: the old key signs a record naming the new one while ARK is stopped;
    /// the pinned first key then verifies the whole log, and the retired key may sign nothing
    /// more (Aletheia refuses it, and a checkpoint it signed later is a failure).
    @Test func aRotationRecordHandsTrustFromThePinnedKeyToItsSuccessor() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        let pinned = f.dir.path + "/pinned.pub"
        _ = FileManager.default.createFile(atPath: pinned, contents: Data(f.auditKey.publicKey.pem))
        f.extraEnvironment = ["ARK_AUDIT_CHECKPOINT_MS": "200", "ARK_AUDIT_PUBLIC_KEY": pinned]
        try f.startAll()
        #expect(try await f.synthetic(count: 40, rate: 80).completed == 40)
        // Refused while ARK writes the store.
        let newKey = f.dir.path + "/audit_ed25519.next.pem"
        let busy = try runCommand(Repo.arkBinary, ["audit-key", "rotate", "--new", newKey], environment: f.environment)
        #expect(busy.code == 1 && busy.output.contains("stop ARK first"), "\(busy.output)")
        f.stopAll()
        let rotated = try runCommand(Repo.arkBinary, ["audit-key", "rotate", "--new", newKey], environment: f.environment)
        #expect(rotated.code == 0 && rotated.output.contains("signed the rotation record"), "\(rotated.output)")
        // The retired key may not sign again.
        try f.start(.aletheia)
        let refused = try #require(f.agents[.aletheia])
        #expect(refused.child.wait(timeout: 20) && refused.child.exitCode == 78 && refused.output.contains("rotated away"), "\(refused.output.suffix(1500))")
        f.stopAll()
        f.extraEnvironment["ARK_AUDIT_KEY"] = newKey
        try f.startAll()
        #expect(try await f.synthetic(count: 40, rate: 80).completed == 40)
        try await Task.sleep(for: .seconds(1))
        f.stopAll()
        let verified = try runCommand(Repo.arkBinary, ["verify-audit"], environment: f.environment)
        #expect(verified.code == 0 && verified.output.contains("intact") && verified.output.contains("was rotated to"), "\(verified.output)")
        // A checkpoint the retired key signs after its record: a failure.
        let size = Int(try sqlite(f.statePath, "SELECT size FROM audit_tree"))!
        var late = AuditCheckpoint(kind: .checkpoint, size: size, root: try AuditReader(path: f.statePath).root(size: size), timeNs: wallClockNanoseconds(),
                                   keyID: f.auditKey.publicKey.keyID, note: "")
        late.signature = try f.auditKey.sign(late.signedText)
        try AuditSigner.append(late, to: f.checkpointFile)
        let caught = try runCommand(Repo.arkBinary, ["verify-audit"], environment: f.environment)
        #expect(caught.code == 1 && caught.output.contains("after its rotation record"), "\(caught.output)")
    }

    /// The attacker's rebuild: every leaf hashed again from the rows, the tree's stored nodes
    /// and right edge rewritten, every checkpoint re-signed with `key` in the store and the file.
    func reSign(_ db: String, checkpointFile: String, with key: Ed25519.PrivateKey) throws {
        let size = Int(try sqlite(db, "SELECT size FROM audit_tree WHERE id = 1"))!
        let hashes = try AuditReader(path: db).leafHashes(0, size)
        var tree = Merkle.Frontier()
        var sql = "BEGIN; DELETE FROM audit_nodes;"
        for h in hashes {
            tree.append(h) { height, index, d in
                if height >= AuditLeaf.storedHeight { sql += "INSERT INTO audit_nodes (height, idx, hash) VALUES (\(height), \(index), X'\(SHA256.hex(d))');" }
            }
        }
        sql += "UPDATE audit_tree SET frontier = X'\(SHA256.hex(tree.nodes.flatMap { $0 }))' WHERE id = 1;"
        var file = ""
        for c in try AuditReader(path: db).checkpoints() {
            var r = AuditCheckpoint(kind: c.kind, size: c.size, root: Merkle.root(hashes.prefix(c.size)), timeNs: c.timeNs, keyID: key.publicKey.keyID, note: c.note)
            r.signature = try key.sign(r.signedText)
            sql += "UPDATE audit_checkpoints SET root = '\(SHA256.hex(r.root))', key_id = '\(r.keyID)', signature = '\(SHA256.hex(r.signature))' WHERE time_ns = \(c.timeNs) AND size = \(c.size);"
            file += String(decoding: r.json, as: UTF8.self) + "\n"
        }
        _ = try sqlite(db, sql + "COMMIT;")
        try file.write(toFile: checkpointFile, atomically: true, encoding: .utf8)
    }

    func sqlite(_ db: String, _ sql: String) throws -> String {
        let r = try runCommand("/usr/bin/sqlite3", [db, sql])
        guard r.code == 0 else { throw TestSetupError("sqlite3 \(sql): \(r.output)") }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func freshCopy(of path: String, in dir: String) throws -> String {
        let copy = dir + "/tampered.db"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copy + suffix) }
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        return copy
    }

    /// The SQL of an attacker who knows the format: a denied pass made approved in its record
    /// and its columns, its leaf hash recomputed and the next pass's link with it, so that
    /// every row agrees with every other; only the signed roots disagree.
    func rehashedEdit(of traceID: String, in db: String) throws -> String {
        let record = try sqlite(db, "SELECT record FROM passes WHERE trace_id = '\(traceID)'")
        let edited = record.replacingOccurrences(of: "\"verdict\":\"denied\"", with: "\"verdict\":\"approved\"")
        let hash = SHA256.hex(Merkle.leafHash(Array(edited.utf8)))
        let seq = try sqlite(db, "SELECT seq FROM passes WHERE trace_id = '\(traceID)'")
        let quoted = edited.replacingOccurrences(of: "'", with: "''")
        return """
            UPDATE passes SET record = '\(quoted)', verdict = 'approved', hash = '\(hash)' WHERE seq = \(seq);
            UPDATE passes SET prev_hash = '\(hash)' WHERE seq = (SELECT min(seq) FROM passes WHERE seq > \(seq));
            """
    }
} }
