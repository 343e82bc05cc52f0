import ARKBus
import ARKCore
import ARKState
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

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try common.config()
        let store = try openStoreReadOnly(config)
        let key = try auditPublicKey(config, explicit: publicKey)
        if let trace {
            try prove(trace, store: store, key: key)
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
        let report = try store.verifyAudit(publicKey: key, outside: outside, prefixOnly: backup) { n in print("  checked \(n) leaves…") }
        for n in notes + report.notes { print("  note: \(n)") }
        if let broken = report.firstBroken {
            let place = broken.seq >= 0 ? "record #\(broken.seq) (trace \(broken.traceID))" : broken.traceID.isEmpty ? "the log" : "trace \(broken.traceID)"
            print("Audit log BROKEN at \(place) after \(report.checked) good leaves: \(broken.problem)")
            throw ExitCode(1)
        }
        print("Audit log intact: \(report.checked) leaves verified, \(report.checkpointsVerified) signed checkpoint(s) reproduced, newest signed size \(report.signedSize) ✓")
    }

    func prove(_ trace: String, store: StateStore, key: Ed25519.PublicKey?) throws {
        let proof: AuditProof
        do {
            guard let p = try store.auditProof(traceID: trace) else { throw fail("no pass of trace \(trace) in \(store.path)") }
            proof = p
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail("cannot prove \(trace): \(error)")
        }
        let problem = proof.problem(with: key)
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
        if !json { print("Proof verified: the record is leaf \(proof.leafIndex) of the tree whose head of \(proof.treeSize) leaves key \(proof.checkpoint!.keyID) signed ✓") }
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

/// The root public key to verify with (`AuditTrust.root`), its note said when it was not
/// pinned; nil when none is configured.
func auditPublicKey(_ config: ARKConfig, explicit: String?) throws -> Ed25519.PublicKey? {
    let trust: AuditTrust?
    do { trust = try AuditTrust.root(config, explicit: explicit) } catch { throw fail(error.description, code: 78) }
    if let note = trust?.note { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
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
            """,
        subcommands: [Generate.self, Public.self])

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
