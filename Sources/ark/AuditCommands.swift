// `ark verify-audit` and `ark audit-key`.

import ARKBus
import ARKCore
import ARKOperations
import ARKState
import ARKStoreWriter
import ArgumentParser
import Foundation

struct VerifyAuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-audit",
        abstract: "Verify the audit log: every record and order against its leaf, the Merkle tree, and every signed checkpoint (store, checkpoint file, Redis). Exit 1 on the first problem, naming it.",
        discussion: """
            Needs only the public key (ARK_AUDIT_PUBLIC_KEY, or <ARK_AUDIT_KEY>.pub, or --public-key).
            With --trace it proves one decision: its record, its leaf hash and the Merkle audit
            path to the newest signed checkpoint that covers it (RFC 9162), checked here; --json
            prints the proof as GET /v1/traces/{id}/proof gives it.
            Examples:
              ark verify-audit --local
              ark verify-audit --public-key /etc/ark/audit_ed25519.pem.pub
              ark verify-audit --local --trace syn-4f2a-17
              ark verify-audit --witness /etc/ark/witnesses/w1.pem --cosigned cosigned.jsonl
              ark verify-audit --local --consistency 360 720
              ARK_STATE_DB=/var/backups/ark/ark_state_backup_20261123T100000Z.db ark verify-audit --backup
            """)

    @Option(help: "The Ed25519 public key (PEM) the checkpoints must verify with.")
    var publicKey: String?

    @Option(help: "The checkpoint file (default: ARK_AUDIT_CHECKPOINTS, or audit_checkpoints.jsonl in ARK_LOG_DIR).")
    var checkpoints: String?

    @Option(help: "Prove the decision of this trace instead of verifying the whole log.")
    var trace: String?

    @Flag(help: "With --trace: print the proof as JSON.")
    var json = false

    @Flag(help: "The store is a backup: the published log may go on beyond it (its own leaves and every checkpoint up to its size must still hold).")
    var backup = false

    @Option(parsing: .upToNextOption, help: "Print and check the consistency proof (RFC 9162 §2.1.4) from the tree of FROM leaves to the tree of TO leaves: --consistency FROM TO.")
    var consistency: [Int] = []

    @Option(help: "A witness's public key (PEM), repeatable: its newest cosigned head must verify and the store's log must extend it; with --trace, the proof is to that head.")
    var witness: [String] = []

    @Option(help: "With --witness: the witness's cosigned heads (its cosigned.jsonl) instead of the copy in Redis.")
    var cosigned: String?

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try common.config()
        let store = try openStoreReadOnly(config)
        let key = try auditPublicKey(config, explicit: publicKey)
        if !consistency.isEmpty {
            try proveConsistency(store: store)
            return
        }
        let witnessKeys: [Ed25519.PublicKey]
        do { witnessKeys = try WitnessKeys.load(witness) } catch { throw fail(error.description, code: 78) }
        let cosignatures = try witnessHeads(witnessKeys, config)
        if let trace {
            try prove(trace, store: store, key: key, witnesses: witnessKeys, cosignatures: cosignatures)
            return
        }
        var outside: [CheckpointSource] = []
        var notes: [String] = []
        let file = checkpoints ?? config.auditCheckpointsPath
        if let read = CheckpointSource.file(file) {
            outside.append(read)
        } else {
            notes.append("no checkpoint file at \(file)")
        }
        switch redisCheckpoint(config) {
        case .success(let c?): outside.append(CheckpointSource(name: "Redis \(Streams.auditCheckpoint)", checkpoints: [c]))
        case .success(nil): notes.append("Redis holds no \(Streams.auditCheckpoint)")
        case .failure(let why): notes.append("Redis not consulted: \(why)")
        }
        // Each witness's newest cosigned head is a checkpoint the ARK host cannot rewrite: the
        // store's log must reproduce its root (a rollback below it, or a fork, is BROKEN).
        for c in cosignatures {
            outside.append(CheckpointSource(name: "witness \(c.witnessKeyID)'s cosigned head", checkpoints: [c.checkpoint]))
        }
        let report = try store.verifyAudit(publicKey: key, outside: outside, prefixOnly: backup) { n in print("  checked \(n) leaves…") }
        for n in notes + report.notes { print("  note: \(n)") }
        if let broken = report.firstBroken {
            let place = broken.seq >= 0 ? "record #\(broken.seq) (trace \(broken.traceID))" : broken.traceID.isEmpty ? "the log" : "trace \(broken.traceID)"
            print("Audit log BROKEN at \(place) after \(report.checked) good leaves: \(broken.problem)")
            throw ExitCode(1)
        }
        print("Audit log intact: \(report.checked) leaves verified, \(report.checkpointsVerified) signed checkpoint(s) reproduced, newest signed size \(report.signedSize) ✓")
    }

    /// The newest head each witness cosigned, its cosignature checked (from --cosigned, or
    /// Redis); a witness with none is a failure, never a pass.
    func witnessHeads(_ keys: [Ed25519.PublicKey], _ config: ARKConfig) throws -> [AuditCosignature] {
        guard !keys.isEmpty else { return [] }
        let all: [AuditCosignature]
        if let cosigned {
            guard let bytes = try? readFileBytes(cosigned) else { throw fail("cannot read \(cosigned)", code: 66) }
            all = bytes.split(separator: UInt8(ascii: "\n")).compactMap { AuditCosignature(json: Array($0)) }
        } else {
            do { all = try AuditCheckpointKey.briefly(config.redisURL) { try AuditCosignatureKey.read(on: $0) } } catch {
                throw fail("the witnesses' cosignatures cannot be read from Redis (\(error)). Fix: give the witness's cosigned.jsonl with --cosigned", code: 69)
            }
        }
        return try keys.map { key in
            let mine = all.filter { $0.witnessKeyID == key.keyID }
            guard let newest = mine.max(by: { $0.checkpoint.size < $1.checkpoint.size }) else {
                throw fail("Audit log NOT witnessed: no head cosigned by witness \(key.keyID) \(cosigned.map { "in \($0)" } ?? "in Redis \(Streams.auditCosignatures)") (it was deleted, or the witness never ran). Fix: take its cosigned.jsonl from the witness host: --cosigned FILE", code: 1)
            }
            guard newest.verify(with: key) else { throw fail("Audit log BROKEN: the newest head cosigned by witness \(key.keyID) does not verify: it was forged", code: 1) }
            return newest
        }
    }

    func proveConsistency(store: StateStore) throws {
        guard consistency.count == 2, consistency[0] >= 0, consistency[0] <= consistency[1] else {
            throw fail("--consistency takes two tree sizes, FROM ≤ TO: --consistency 360 720", code: 64)
        }
        let (from, to) = (consistency[0], consistency[1])
        guard let proved = try AuditReader(path: store.path).consistency(from: from, to: to) else {
            throw fail("the log of \(store.path) has fewer than \(to) leaves", code: 1)
        }
        print("consistency \(from) → \(to): \(proved.proof.count) hash(es)")
        print("  root \(from)  \(SHA256.hex(proved.fromRoot))")
        print("  root \(to)  \(SHA256.hex(proved.toRoot))")
        for (i, h) in proved.proof.enumerated() { print("  proof[\(i)] \(SHA256.hex(h))") }
        guard Merkle.verifyConsistency(first: from, second: to, firstRoot: proved.fromRoot, secondRoot: proved.toRoot, proof: proved.proof) else {
            throw fail("consistency proof NOT verified: the store's nodes are inconsistent; run ark verify-audit", code: 1)
        }
        print("Consistency verified: the tree of \(to) leaves extends the tree of \(from) ✓ (check the roots against signed heads you hold)")
    }

    func prove(_ trace: String, store: StateStore, key: Ed25519.PublicKey?, witnesses: [Ed25519.PublicKey] = [], cosignatures: [AuditCosignature] = []) throws {
        var proof: AuditProof
        do {
            // To the smallest head every witness cosigned: all their cosignatures then cover it.
            let head = cosignatures.min(by: { $0.checkpoint.size < $1.checkpoint.size })?.checkpoint
            guard let p = try AuditReader(path: store.path).proof(traceID: trace, to: head) else { throw fail("no pass of trace \(trace) in \(store.path)") }
            proof = p
            proof.cosignatures = cosignatures.filter { $0.checkpoint == head }
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail("cannot prove \(trace): \(error)")
        }
        // The witnesses that cosigned this head; one whose newest head is larger is checked
        // with a proof to its own head.
        let here = witnesses.filter { w in proof.cosignatures.contains { $0.witnessKeyID == w.keyID } }
        var problem = proof.problem(with: key, witnesses: here)
        for c in cosignatures where c.checkpoint != proof.checkpoint && problem == nil {
            do {
                guard var other = try AuditReader(path: store.path).proof(traceID: trace, to: c.checkpoint) else { continue }
                other.cosignatures = [c]
                problem = other.problem(with: key, witnesses: witnesses.filter { $0.keyID == c.witnessKeyID }).map { "to witness \(c.witnessKeyID)'s head: \($0)" }
            } catch {
                problem = "to witness \(c.witnessKeyID)'s head: \(error)"
            }
        }
        if json {
            print(String(decoding: proof.json, as: UTF8.self))
        } else {
            print("trace \(trace): leaf \(proof.leafIndex) of \(proof.treeSize)")
            print("  leaf hash  \(SHA256.hex(proof.leafHash))  = SHA-256(0x00 || record), record \(proof.record.count) bytes")
            for (i, p) in proof.path.enumerated() { print("  path[\(i)]    \(SHA256.hex(p))") }
            if let c = proof.checkpoint {
                print("  checkpoint size \(c.size), root \(SHA256.hex(c.root)), time_ns \(c.timeNs), key \(c.keyID)")
            }
        }
        if let problem {
            FileHandle.standardError.write(Data("proof NOT verified: \(problem)\n".utf8))
            throw ExitCode(1)
        }
        if !json {
            print("Proof verified: the record is leaf \(proof.leafIndex) of the tree whose head of \(proof.treeSize) leaves key \(proof.checkpoint!.keyID) signed"
                  + (witnesses.isEmpty ? "" : " and witness(es) \(witnesses.map(\.keyID).joined(separator: ", ")) cosigned") + " ✓")
        }
    }

    /// The newest checkpoint in Redis, nil when there is none.
    func redisCheckpoint(_ config: ARKConfig) -> Result<AuditCheckpoint?, RedisCheckpointProblem> {
        do {
            return .success(try AuditCheckpointKey.briefly(config.redisURL) { try AuditCheckpointKey.read(on: $0) })
        } catch {
            return .failure(RedisCheckpointProblem(description: "\(config.redisURL) did not answer (\(error))"))
        }
    }

    struct RedisCheckpointProblem: Error, CustomStringConvertible { var description: String }
}

/// The root public key to verify with (`AuditTrust.root`), its note said on standard error
/// when it was not pinned (unless `quiet`: a command whose output is the books); nil when
/// none is configured.
func auditPublicKey(_ config: ARKConfig, explicit: String?, quiet: Bool = false) throws -> Ed25519.PublicKey? {
    let trust: AuditTrust?
    do { trust = try AuditTrust.root(config, explicit: explicit) } catch { throw fail(error.description, code: 78) }
    if !quiet, let note = trust?.note { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
    return trust?.key
}

/// Writes a new Ed25519 key to `path` (mode 600) and its public half to `path.pub` (644).
func writeAuditKey(to path: String) throws {
    let key = try Ed25519.PrivateKey.generate()
    guard FileManager.default.createFile(atPath: path, contents: Data(key.pem), attributes: [.posixPermissions: 0o600]) else {
        throw fail("cannot write \(path)")
    }
    guard FileManager.default.createFile(atPath: path + ".pub", contents: Data(key.publicKey.pem), attributes: [.posixPermissions: 0o644]) else {
        throw fail("cannot write \(path).pub")
    }
}

struct AuditKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-key",
        abstract: "Make or show the Ed25519 key Aletheia signs the audit's checkpoints with (ARK_AUDIT_KEY).",
        discussion: """
            The private key stays with Aletheia (mode 600, outside the state store and its
            backups); verifiers need only the public key.
            Examples:
              ark audit-key generate --out /etc/ark/audit_ed25519.pem
              ark audit-key public --local
              ark audit-key rotate --new /etc/ark/audit_ed25519.2027.pem
            """,
        subcommands: [Generate.self, Public.self, Rotate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a new key (mode 600) and its public half (<out>.pub).")

        @Option(help: "Where to write the private key; refused if it exists.")
        var out: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: out) else {
                throw fail("\(out) exists: a new key would orphan the checkpoints the old one signed. Fix: choose another path, or move the old key away deliberately")
            }
            try writeAuditKey(to: out)
            let key = try AuditSigner.loadKey(path: out)
            print("wrote \(out) (mode 600) and \(out).pub; key id \(key.publicKey.keyID). Set ARK_AUDIT_KEY=\(out) for Aletheia")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retire ARK_AUDIT_KEY: it signs a rotation record naming the new key (made at --new unless it exists). ARK must be stopped; start it again with ARK_AUDIT_KEY set to the new key.",
            discussion: "ARK_AUDIT_PUBLIC_KEY and the witnesses keep the first key pinned: the record, signed by it, hands trust on.")

        @Option(help: "The new private key (PEM, mode 600); made here when it does not exist.")
        var new: String

        @OptionGroup var common: CommonOptions

        func run() throws {
            let config = try common.config()
            guard !config.auditKey.isEmpty else { throw fail("ARK_AUDIT_KEY is not set: it is the key being retired, which signs the record", code: 78) }
            let old: Ed25519.PrivateKey
            do { old = try AuditSigner.loadKey(path: config.auditKey) } catch { throw fail("\(error)", code: 78) }
            if !FileManager.default.fileExists(atPath: new) { try writeAuditKey(to: new) }
            let successor: Ed25519.PrivateKey
            do { successor = try AuditSigner.loadKey(path: new) } catch { throw fail("\(error)", code: 78) }
            let record: AuditCheckpoint
            do {
                record = try AuditKeyRotation.rotate(statePath: config.stateDB, from: old, to: successor.publicKey, checkpointFile: config.auditCheckpointsPath)
            } catch {
                throw fail("\(error)", code: 1)
            }
            // Best effort: Aletheia copies the newest head to Redis again when it starts.
            try? AuditCheckpointKey.briefly(config.redisURL) { try AuditCheckpointKey.publish(record, on: $0) }
            print("key \(old.publicKey.keyID) signed the rotation record at size \(record.size) naming key \(successor.publicKey.keyID).")
            print("Now set ARK_AUDIT_KEY=\(new) and start ARK; keep ARK_AUDIT_PUBLIC_KEY (and the witnesses' log key) pinned to the first key.")
        }
    }

    struct Public: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the public key (PEM) of ARK_AUDIT_KEY and its key id.")

        @OptionGroup var common: CommonOptions

        func run() throws {
            let config = try common.config()
            guard !config.auditKey.isEmpty else { throw fail("ARK_AUDIT_KEY is not set. Fix: set it, or use --local", code: 78) }
            let key: Ed25519.PrivateKey
            do { key = try AuditSigner.loadKey(path: config.auditKey) } catch { throw fail("\(error)", code: 78) }
            print(String(decoding: key.publicKey.pem, as: UTF8.self), terminator: "")
            print("key id \(key.publicKey.keyID)")
        }
    }
}
