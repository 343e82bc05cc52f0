import ARKCore
import ARKTestSupport
import Foundation
import Testing

/// The edits that `ark verify-audit` used to call intact, each made on a copy of a store the
/// real pipeline wrote: every one is caught, naming the record and the column.
extension EndToEnd { @Suite struct AuditTamperTests {
    @Test func everyEditedFactOfAPassOrAnOrderIsCaught() async throws {
        let f = try PipelineFixture()
        defer { f.shutdown() }
        try f.startAll()
        let report = try await f.synthetic(count: 120, rate: 60, violationEvery: 10)
        #expect(report.completed == 120, "\(report.summary)")
        f.stopAll()  // a quiet store, checkpointed by Aletheia's close
        func sqlite(_ db: String, _ sql: String) throws -> String {
            let r = try runCommand("/usr/bin/sqlite3", [db, sql])
            guard r.code == 0 else { throw TestSetupError("sqlite3 \(sql): \(r.output)") }
            return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func verify(_ db: String) throws -> CommandResult {
            try runCommand(Repo.arkBinary, ["verify-audit"], environment: f.environment.merging(["ARK_STATE_DB": db]) { $1 })
        }
        #expect(try verify(f.statePath).code == 0)
        let denied = try sqlite(f.statePath, "SELECT trace_id FROM passes WHERE verdict = 'denied' ORDER BY seq LIMIT 1")
        let filled = try sqlite(f.statePath, "SELECT trace_id FROM orders ORDER BY rowid LIMIT 1")
        let edits: [(String, String, String)] = [
            ("a denied pass's reasons emptied", "UPDATE passes SET reasons = '[]' WHERE trace_id = '\(denied)'", "the reasons column differs"),
            ("its policy hash changed", "UPDATE passes SET policy_hash = 'f00d' WHERE trace_id = '\(denied)'", "the policy_hash column differs"),
            ("its compliance score changed", "UPDATE passes SET compliance_score = 1.0 WHERE trace_id = '\(denied)'", "the compliance_score column differs"),
            ("a pass's latency divided by 10", "UPDATE passes SET latency_ms = latency_ms / 10 WHERE trace_id = '\(filled)'", "the latency_ms column differs"),
            ("its verdict flipped", "UPDATE passes SET verdict = 'approved' WHERE trace_id = '\(denied)'", "the verdict column differs"),
            ("an order's quantity multiplied by 100", "UPDATE orders SET quantity = quantity * 100 WHERE trace_id = '\(filled)'", "the order's quantity column differs"),
            ("an order deleted", "DELETE FROM orders WHERE trace_id = '\(filled)'", "is missing from the orders table"),
            ("a pass in the middle deleted", "DELETE FROM passes WHERE seq = 50", "does not match the previous record's hash"),
        ]
        for (what, sql, expected) in edits {
            let copy = f.dir.path + "/tampered.db"
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copy + suffix) }
            try FileManager.default.copyItem(atPath: f.statePath, toPath: copy)
            _ = try sqlite(copy, sql)
            let r = try verify(copy)
            #expect(r.code == 1 && r.output.contains("BROKEN") && r.output.contains(expected), "\(what): \(r.output)")
            // It names the record: the edited trace, or for a deletion the record after the gap.
            let named = what.contains("middle") ? "record #51" : "trace \(sql.contains(denied) ? denied : filled)"
            #expect(r.output.contains(named), "\(what) does not name \(named): \(r.output)")
        }
    }
} }
