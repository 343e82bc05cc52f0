import ARKCore
import Foundation
import GRDB

/// A pass as stored, for `ark trace` and the tests.
public struct StoredPass: Sendable, Equatable {
    public var seq: Int64
    public var traceID: String
    public var verdict: Verdict
    public var reasons: [String]
    public var latencyMs: Double
    /// When Aletheia finished it (wall clock).
    public var doneNs: Int64
    public var continuityOK: Bool
    public var orderID: String?
    public var record: String
    public var hash: String
}

/// The outcome of re-walking the audit hash chain.
public struct AuditReport: Sendable, Equatable {
    public var checked: Int
    /// The first record whose link does not hold, with what was expected.
    public var firstBroken: (seq: Int64, traceID: String, problem: String)?

    public var ok: Bool { firstBroken == nil }

    public static func == (a: AuditReport, b: AuditReport) -> Bool {
        a.checked == b.checked && a.firstBroken?.seq == b.firstBroken?.seq && a.firstBroken?.problem == b.firstBroken?.problem
    }
}

extension StateStore {
    public func pass(traceID: String) throws -> StoredPass? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM passes WHERE trace_id = ?", arguments: [traceID]).map(Self.storedPass)
        }
    }

    static func storedPass(_ row: Row) -> StoredPass {
        let reasonsText: String = row["reasons"]
        let reasons = (try? JSONSerialization.jsonObject(with: Data(reasonsText.utf8))) as? [String] ?? []
        return StoredPass(
            seq: row["seq"], traceID: row["trace_id"], verdict: Verdict(rawValue: row["verdict"]) ?? .error,
            reasons: reasons, latencyMs: row["latency_ms"], doneNs: row["done_ns"], continuityOK: (row["continuity_ok"] as Int) == 1,
            orderID: row["order_id"], record: row["record"], hash: row["hash"])
    }

    /// Passes by verdict.
    public func verdictCounts() throws -> [Verdict: Int] {
        try pool.read { db in
            var out: [Verdict: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT verdict, COUNT(*) AS n FROM passes GROUP BY verdict") {
                if let v = Verdict(rawValue: row["verdict"]) { out[v] = row["n"] }
            }
            return out
        }
    }

    public func passCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM passes") ?? 0 }
    }

    public func orderCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM orders") ?? 0 }
    }

    public func deadLetterCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dead_letters") ?? 0 }
    }

    public func deadLetters() throws -> [DeadLetterRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM dead_letters ORDER BY id").map { row in
                DeadLetterRecord(deadLetterID: row["deadletter_id"], stream: row["stream"], entryID: row["entry_id"],
                                 group: row["consumer_group"], consumer: row["consumer"], reason: row["reason"],
                                 payload: [UInt8](row["payload"] as Data), deliveries: row["deliveries"],
                                 traceID: row["trace_id"], tsNs: row["ts_ns"])
            }
        }
    }

    /// Reasons of rejected passes, by trace id.
    public func rejections() throws -> [String: [String]] {
        try pool.read { db in
            var out: [String: [String]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM passes WHERE verdict = 'rejected'") {
                let p = Self.storedPass(row)
                out[p.traceID] = p.reasons
            }
            return out
        }
    }

    public func heartbeats() throws -> [HeartbeatRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM heartbeats ORDER BY stage, instance").map { row in
                HeartbeatRecord(instance: row["instance"], stage: row["stage"], host: row["host"], pid: row["pid"],
                                processed: row["processed"], failed: row["failed"], pending: row["pending"],
                                p50Ms: row["p50_ms"], p95Ms: row["p95_ms"], tsNs: row["ts_ns"])
            }
        }
    }

    /// Re-walks the hash chain from the first record and reports the first broken link: a
    /// record edited, removed or inserted after the fact; a column of a pass (verdict,
    /// reasons, policy hash, score, times, latency, symbol, order id…) that is not what its
    /// hashed record says; an order that is not an audited pass's filled execution field for
    /// field, or a filled execution without its order. (`seq` is -1 for an order.)
    public func verifyAudit(progress: ((Int) -> Void)? = nil) throws -> AuditReport {
        try pool.read { db in
            var prev = OutcomeWriter.genesisHash
            var checked = 0
            let rows = try Row.fetchCursor(db, sql: """
                SELECT seq, trace_id, signal_id, symbol, source, verdict, reasons, policy_hash, compliance_score, t0_ns, done_ns,
                       latency_ms, hrm_eval_us, continuity_ok, injected_violation, order_id, record, prev_hash, hash
                FROM passes ORDER BY seq
                """)
            var filledByTrace: [String: [String: Any]] = [:]
            while let row = try rows.next() {
                let seq: Int64 = row["seq"]
                let traceID: String = row["trace_id"]
                let storedPrev: String = row["prev_hash"]
                let storedHash: String = row["hash"]
                let record: String = row["record"]
                if storedPrev != prev {
                    return AuditReport(checked: checked, firstBroken: (seq, traceID, "prev_hash \(storedPrev) does not match the previous record's hash \(prev)"))
                }
                let expected = OutcomeWriter.chainHash(prev: prev, record: Array(record.utf8))
                if expected != storedHash {
                    return AuditReport(checked: checked, firstBroken: (seq, traceID, "record does not hash to its stored hash (expected \(expected), stored \(storedHash))"))
                }
                guard let object = try? JSONSerialization.jsonObject(with: Data(record.utf8)) as? [String: Any] else {
                    return AuditReport(checked: checked, firstBroken: (seq, traceID, "the audited record is not a JSON object"))
                }
                if let column = AuditedColumns.firstDifference(row, record: object) {
                    return AuditReport(checked: checked, firstBroken: (seq, traceID, "the \(column) column differs from the audited record"))
                }
                if let execution = (object["event"] as? [String: Any])?["execution"] as? [String: Any], execution["status"] as? String == "filled",
                   (row["verdict"] as String) != "deadlettered" {
                    var x = execution
                    x["symbol"] = (object["event"] as? [String: Any])?["symbol"]
                    filledByTrace[traceID] = x
                }
                prev = storedHash
                checked += 1
                if checked % 100_000 == 0 { progress?(checked) }
            }
            // Every order is the execution of an audited pass, field for field, and every
            // filled execution has its order.
            let orders = try Row.fetchCursor(db, sql: "SELECT order_id, trace_id, symbol, side, quantity, price, notional, realized_pnl FROM orders ORDER BY rowid")
            while let o = try orders.next() {
                let traceID: String = o["trace_id"]
                guard let x = filledByTrace.removeValue(forKey: traceID) else {
                    return AuditReport(checked: checked, firstBroken: (-1, traceID, "order \(o["order_id"] as String) has no filled execution in the audited records"))
                }
                for column in ["order_id", "side", "symbol"] where (o[column] as String) != (x[column] as? String ?? "") {
                    return AuditReport(checked: checked, firstBroken: (-1, traceID, "the order's \(column) column differs from the audited execution"))
                }
                for column in ["quantity", "price", "notional", "realized_pnl"] where !AuditedColumns.same(o[column], (x[column] as? NSNumber)?.doubleValue) {
                    return AuditReport(checked: checked, firstBroken: (-1, traceID, "the order's \(column) column differs from the audited execution"))
                }
            }
            if let (traceID, x) = filledByTrace.min(by: { $0.key < $1.key }) {
                return AuditReport(checked: checked, firstBroken: (-1, traceID, "order \(x["order_id"] as? String ?? "?") of an audited filled execution is missing from the orders table"))
            }
            return AuditReport(checked: checked, firstBroken: nil)
        }
    }
}

/// The columns of a pass row that state a fact about its decision, each compared with the
/// hashed record it must be read from, so an edit of any of them breaks the audit.
enum AuditedColumns {
    /// Two figures are the same to the last bits Foundation's JSON reader may round
    /// differently (it is not always correctly rounded); any edit a person would make differs
    /// by far more.
    static func same(_ a: Double?, _ b: Double?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return abs(a - b) <= 1e-12 * max(1, abs(a))
    }

    /// The first column whose value is not the record's, or nil.
    static func firstDifference(_ row: Row, record: [String: Any]) -> String? {
        let event = record["event"] as? [String: Any] ?? [:]
        let verdict = record["verdict"] as? String ?? ""
        // A dead-lettered pass records the event as it was given up on: its decision and
        // execution, if any, are not facts of the pass.
        let decision = verdict == "deadlettered" ? nil : event["decision"] as? [String: Any]
        let execution = event["execution"] as? [String: Any]
        func string(_ v: Any?) -> String? { v as? String }
        func number(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }
        func integer(_ v: Any?) -> Int64? { (v as? NSNumber)?.int64Value }
        if (row["trace_id"] as String) != string(record["trace_id"]) { return "trace_id" }
        if (row["verdict"] as String) != verdict { return "verdict" }
        let reasons = (try? JSONSerialization.jsonObject(with: Data((row["reasons"] as String).utf8))) as? [String]
        if reasons != (record["reasons"] as? [String] ?? []) { return "reasons" }
        if (row["t0_ns"] as Int64) != integer(record["t0_ns"]) { return "t0_ns" }
        if (row["done_ns"] as Int64) != integer(record["done_ns"]) { return "done_ns" }
        if let t0 = integer(record["t0_ns"]), let done = integer(record["done_ns"]),
           !same(row["latency_ms"], Double(elapsedNanoseconds(from: t0, to: done)) / 1e6) { return "latency_ms" }
        if (row["signal_id"] as String) != (string(event["id"]) ?? "") { return "signal_id" }
        if (row["symbol"] as String) != (string(event["symbol"]) ?? "") { return "symbol" }
        if (row["source"] as String) != (string(event["source"]) ?? "") { return "source" }
        if (row["policy_hash"] as String?) != string(decision?["policy_hash"]) { return "policy_hash" }
        if !same(row["compliance_score"], number(decision?["compliance_score"])) { return "compliance_score" }
        if !same(row["hrm_eval_us"], integer(decision?["eval_ns"]).map({ Double($0) / 1000 })) { return "hrm_eval_us" }
        if (row["injected_violation"] as String?) != string(event["injected_violation"]) { return "injected_violation" }
        let filled = verdict != "deadlettered" && string(execution?["status"]) == "filled"
        if (row["order_id"] as String?) != (filled ? string(execution?["order_id"]) : nil) { return "order_id" }
        let continuous = verdict != "deadlettered" && !(record["reasons"] as? [String] ?? []).contains { $0.hasPrefix("continuity: ") }
        if (row["continuity_ok"] as Bool) != continuous { return "continuity_ok" }
        return nil
    }
}

extension StateStore {
    /// The stored passes among `traceIDs`, by trace id.
    public func passes(traceIDs: [String]) throws -> [String: StoredPass] {
        var out: [String: StoredPass] = [:]
        var start = 0
        while start < traceIDs.count {
            let chunk = Array(traceIDs[start..<min(start + 500, traceIDs.count)])
            start += chunk.count
            let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            try pool.read { db in
                for row in try Row.fetchAll(db, sql: "SELECT * FROM passes WHERE trace_id IN (\(placeholders))", arguments: StatementArguments(chunk)) {
                    let p = Self.storedPass(row)
                    out[p.traceID] = p
                }
            }
        }
        return out
    }
}

extension StoredPass {
    /// Rule ids named in a denied pass's reasons (`rule [SEVERITY]: message`).
    public var violatedRules: [String] { Self.ruleIDs(in: reasons) }

    /// The rule ids of reasons that read `rule [SEVERITY]: message`.
    public static func ruleIDs(in reasons: [String]) -> [String] {
        reasons.compactMap { r in
            guard let bracket = r.range(of: " [") else { return nil }
            return String(r[..<bracket.lowerBound])
        }
    }
}
