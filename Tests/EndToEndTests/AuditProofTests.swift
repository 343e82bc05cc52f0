import ARKCore
import ARKState
import ARKTestSupport
import Foundation
import Testing

/// A decision proved to someone who trusts nothing of ARK but its public key: the API's
/// proof checked by the README's script (Python's standard library and `cryptography`), and
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
        let env = ["ARK_STATE_DB": api.statePath, "ARK_AUDIT_KEY": keyPath, "REDIS_URL": api.redis.urlString]
        let cli = try runCommand(Repo.arkBinary, ["verify-audit", "--trace", "proof-7"], environment: env)
        #expect(cli.code == 0 && cli.output.contains("Proof verified"), "\(cli.output)")
        let cliJSON = try runCommand(Repo.arkBinary, ["verify-audit", "--trace", "proof-7", "--json"], environment: env)
        let fromCLI = try #require(jsonObject(cliJSON.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(fromCLI["record"] as? String == proof["record"] as? String && fromCLI["leaf_index"] as? Int == proof["leaf_index"] as? Int)
        let whole = try runCommand(Repo.arkBinary, ["verify-audit"], environment: env)
        #expect(whole.code == 0 && whole.output.contains("Audit log intact"), "\(whole.output)")
        #expect(try runCommand(Repo.arkBinary, ["verify-audit", "--trace", "no-such-trace"], environment: env).code == 1)
    }
} }
