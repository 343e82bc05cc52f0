import ARKCore
import ARKState
import ARKTestSupport
import ARKWitness
import Foundation
import Testing

/// A decision proved to someone who trusts nothing of ARK but its public key: the API's
/// proof checked by the documented script (Python's standard library and `cryptography`), and
/// the same proof from `ark verify-audit --trace`.
extension EndToEnd { @Suite struct AuditProofTests {
    @Test func theAPIsProofVerifiesWithTheDocumentedScriptAndAnAlteredOneDoesNot() async throws {
        let keys = try TempDir("ark-proof")
        defer { keys.remove() }
        let keyPath = keys.path + "/audit_ed25519.pem"
        let write = try runCommand(Repo.arkBinary, ["audit-key", "generate", "--out", keyPath])
        #expect(write.code == 0 && write.output.contains("key id"), "\(write.output)")
        #expect(try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int == 0o600)
        let refused = try runCommand(Repo.arkBinary, ["audit-key", "generate", "--out", keyPath])
        #expect(refused.code != 0 && refused.output.contains("exists"))
        let api = try await APIFixture(["ARK_AUDIT_KEY": keyPath, "ARK_AUDIT_CHECKPOINTS": keys.path + "/checkpoints.jsonl", "ARK_AUDIT_CHECKPOINT_MS": "200"])
        defer { api.shutdown() }
        let token = await api.token("auditor")
        var batch = "["
        for i in 0..<20 { batch += (i > 0 ? "," : "") + api.signal("proof-\(i)", price: 100 + Double(i)) }
        batch += "]"
        #expect(try await api.call("POST", "/v1/signals", token: token, body: Array(batch.utf8)).status == 202)
        #expect(try await api.recordedTrace("proof-19", token: token) != nil)
        // Within a second a checkpoint covers it (checkpoint is null until then).
        var body = ""
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while monotonicNanoseconds() < deadline {
            let r = try await api.call("GET", "/v1/traces/proof-7/proof", token: token)
            #expect(r.status == 200, "\(r.text)")
            if let c = r.json?["checkpoint"], !(c is NSNull) { body = r.text; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let proof = try #require(jsonObject(body))
        #expect(proof["trace_id"] as? String == "proof-7" && (proof["audit_path"] as? [String])?.isEmpty == false)
        try body.write(toFile: keys.path + "/proof.json", atomically: true, encoding: .utf8)
        let script = Repo.root + "/scripts/verify_audit_proof.py"
        let ok = try runCommand("/usr/bin/env", ["python3", script, keys.path + "/proof.json", keyPath + ".pub"])
        #expect(ok.code == 0 && ok.output.contains("proof verified: proof-7 is leaf"), "\(ok.output)")

        // Each part altered: the record, a hash of the path, the signed root, the signature.
        func altered(_ change: (inout [String: Any]) -> Void) throws -> CommandResult {
            var p = proof
            change(&p)
            try JSONSerialization.data(withJSONObject: p).write(to: URL(fileURLWithPath: keys.path + "/bad.json"))
            return try runCommand("/usr/bin/env", ["python3", script, keys.path + "/bad.json", keyPath + ".pub"])
        }
        let flip: (String) -> String = { s in String(s.dropLast()) + (s.last == "0" ? "1" : "0") }
        let cases: [(String, (inout [String: Any]) -> Void, String)] = [
            ("record", { $0["record"] = ($0["record"] as! String).replacingOccurrences(of: "approved", with: "denied") }, "does not hash to leaf_hash"),
            ("record and leaf hash", { p in
                let r = (p["record"] as! String).replacingOccurrences(of: "approved", with: "denied")
                p["record"] = r
                p["leaf_hash"] = SHA256.hex(Merkle.leafHash(Array(r.utf8)))
            }, "does not lead to the signed root"),
            ("audit path", { p in var a = p["audit_path"] as! [String]; a[0] = flip(a[0]); p["audit_path"] = a }, "does not lead to the signed root"),
            ("signed root", { p in
                var c = p["checkpoint"] as! [String: Any]
                c["signed_text"] = (c["signed_text"] as! String).replacingOccurrences(of: "root \(c["root"] as! String)", with: "root \(flip(c["root"] as! String))")
                p["checkpoint"] = c
            }, "signed_text does not state"),
            ("signature", { p in var c = p["checkpoint"] as! [String: Any]; c["signature"] = flip(c["signature"] as! String); p["checkpoint"] = c }, "InvalidSignature"),
        ]
        for (what, change, expected) in cases {
            let r = try altered(change)
            #expect(r.code == 1 && r.output.contains(expected), "altered \(what): \(r.output)")
        }

        // The command line gives the same proof, checked.
        api.process?.terminate(grace: 10)
        let env = ["ARK_STATE_DB": api.statePath, "ARK_AUDIT_KEY": keyPath, "ARK_AUDIT_PUBLIC_KEY": keyPath + ".pub", "REDIS_URL": api.redis.urlString,
                   "ARK_AUDIT_CHECKPOINTS": keys.path + "/checkpoints.jsonl"]
        let cli = try runCommand(Repo.arkBinary, ["verify-audit", "--trace", "proof-7"], environment: env)
        #expect(cli.code == 0 && cli.output.contains("Proof verified"), "\(cli.output)")
        let cliJSON = try runCommand(Repo.arkBinary, ["verify-audit", "--trace", "proof-7", "--json"], environment: env)
        let fromCLI = try #require(jsonObject(cliJSON.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(fromCLI["record"] as? String == proof["record"] as? String && fromCLI["leaf_index"] as? Int == proof["leaf_index"] as? Int)
        let whole = try runCommand(Repo.arkBinary, ["verify-audit"], environment: env)
        #expect(whole.code == 0 && whole.output.contains("Audit log intact"), "\(whole.output)")
        #expect(try runCommand(Repo.arkBinary, ["verify-audit", "--trace", "no-such-trace"], environment: env).code == 1)
    }

    /// The audit routes a witness uses: the head, consistency proofs between two heads (checked
    /// here against the signed roots), and the refusals of the cosignature route.
    @Test func theHeadAndConsistencyProofsServeAWitnessAndForeignCosignaturesAreRefused() async throws {
        let keys = try TempDir("ark-consistency")
        defer { keys.remove() }
        let keyPath = keys.path + "/audit_ed25519.pem"
        #expect(try runCommand(Repo.arkBinary, ["audit-key", "generate", "--out", keyPath]).code == 0)
        let witness = try Ed25519.PrivateKey.generate()
        _ = FileManager.default.createFile(atPath: keys.path + "/witness.pem", contents: Data(witness.publicKey.pem))
        let api = try await APIFixture(["ARK_AUDIT_KEY": keyPath, "ARK_AUDIT_CHECKPOINTS": keys.path + "/checkpoints.jsonl", "ARK_AUDIT_CHECKPOINT_MS": "200",
                                        "ARK_WITNESS_KEYS": keys.path + "/witness.pem", "API_RATE_LIMIT_PER_MINUTE": "1000"])
        defer { api.shutdown() }
        let token = await api.token("witness")
        #expect(try await api.call("GET", "/v1/audit/checkpoint", token: token).status == 404)
        func head(after size: Int) async throws -> AuditCheckpoint {
            let deadline = monotonicNanoseconds() + 10_000_000_000
            while monotonicNanoseconds() < deadline {
                let r = try await api.call("GET", "/v1/audit/checkpoint", token: token)
                if r.status == 200, let o = r.json?["checkpoint"] as? [String: Any], let c = Witness.checkpoint(o), c.size > size { return c }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestSetupError("no head past \(size)")
        }
        func submit(_ prefix: String, _ n: Int) async throws {
            let batch = "[" + (0..<n).map { api.signal("\(prefix)-\($0)") }.joined(separator: ",") + "]"
            #expect(try await api.call("POST", "/v1/signals", token: token, body: Array(batch.utf8)).status == 202)
        }
        try await submit("c1", 30)
        let first = try await head(after: 29)
        try await submit("c2", 45)
        let second = try await head(after: first.size + 44)
        let key = try Ed25519.PublicKey(pem: try readFileBytes(keyPath + ".pub"))
        #expect(first.verify(with: key) && second.verify(with: key))
        let r = try await api.call("GET", "/v1/audit/consistency?from=\(first.size)&to=\(second.size)", token: token)
        #expect(r.status == 200, "\(r.text)")
        let proof = (r.json?["proof"] as? [String] ?? []).compactMap { bytes(fromHex: $0) }
        #expect(!proof.isEmpty && Merkle.verifyConsistency(first: first.size, second: second.size, firstRoot: first.root, secondRoot: second.root, proof: proof))
        #expect(!Merkle.verifyConsistency(first: first.size, second: second.size, firstRoot: Merkle.leafHash([1]), secondRoot: second.root, proof: proof))
        for (query, status, code) in [("from=\(second.size)&to=\(first.size)", 400, "invalid_range"), ("from=1&to=99999999", 404, "beyond_log"),
                                      ("from=-1&to=3", 400, "invalid_range"), ("to=3", 400, "invalid_range"), ("from=1.5&to=3", 400, "invalid_range")] {
            let bad = try await api.call("GET", "/v1/audit/consistency?" + query, token: token)
            #expect(bad.status == status && (bad.json?["error"] as? [String: Any])?["code"] as? String == code, "\(query): \(bad.text)")
        }
        // Cosignatures: a foreign witness, a bad signature, a head this log never signed.
        let stranger = try Ed25519.PrivateKey.generate()
        var forged = try AuditCosignature.sign(second, with: witness, timeNs: 1)
        forged.signature[0] ^= 1
        var neverSigned = second
        neverSigned.root = Merkle.leafHash([9])
        for (body, status) in [(try AuditCosignature.sign(second, with: stranger, timeNs: 1).json, 403), (forged.json, 422),
                               (try AuditCosignature.sign(neverSigned, with: witness, timeNs: 1).json, 409), (Array("{}".utf8), 400)] {
            let refused = try await api.call("POST", "/v1/audit/cosignatures", token: token, body: body)
            #expect(refused.status == status, "\(refused.text)")
        }
        #expect(try await api.call("GET", "/v1/traces/c1-3/proof?cosigned=true", token: token).status == 404)
        let accepted = try await api.call("POST", "/v1/audit/cosignatures", token: token, body: try AuditCosignature.sign(second, with: witness, timeNs: 2).json)
        #expect(accepted.status == 200, "\(accepted.text)")
        let cosigned = try await api.call("GET", "/v1/traces/c1-3/proof?cosigned=true", token: token)
        #expect(cosigned.status == 200 && cosigned.json?["tree_size"] as? Int == second.size && (cosigned.json?["cosignatures"] as? [Any])?.count == 1, "\(cosigned.text)")
    }
} }
