// Passes as stored, for `ark trace`, the API and the tests.

import ARKCore
import ARKStoreWriter
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

extension StoredPass {
    /// What the producer sent, as a trace shows it: its fields but the trace id and the
    /// intake time (shown on their own) and the account.
    static let signalFields = EventKey.producerKeys.filter { ![.traceID, .t0Ns, .account].contains($0) }.map(\.text)

    /// The whole pass as the API's `GET /v1/traces/{id}` and the console show it: verdict and
    /// reasons, the signal as Kyle passed it on, every hop, HRM's decision (violations,
    /// policy_hash), Kenny's execution, latency, audit hash.
    public var traceObject: [String: Any] {
        let record = JSONDocument.object(record) ?? [:]
        let event = record["event"] as? [String: Any] ?? [:]
        var signal: [String: Any] = [:]
        for k in Self.signalFields { if let v = event[k] { signal[k] = v } }
        return [
            "trace_id": traceID, "seq": seq, "verdict": verdict.rawValue, "reasons": reasons,
            "latency_ms": (latencyMs * 1000).rounded() / 1000, "continuity_ok": continuityOK,
            "t0_ns": record["t0_ns"] ?? NSNull(), "recorded_ns": doneNs, "order_id": orderID ?? NSNull(),
            "audit_hash": hash, "signal": signal, "hops": event["hops"] ?? [],
            "decision": event["decision"] ?? NSNull(), "execution": event["execution"] ?? NSNull(), "rejection": event["rejection"] ?? NSNull(),
        ]
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
        // Empty since the lean record: the record's (`PassColumns.reasons`).
        let reasons = reasonsText.isEmpty
            ? (JSONDocument.parse(row["record"] as String) as? [String: Any])?["reasons"] as? [String] ?? []
            : JSONDocument.parse(reasonsText) as? [String] ?? []
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
            try Row.fetchAll(db, sql: "SELECT * FROM dead_letters ORDER BY id").map(Self.deadLetter)
        }
    }

    static func deadLetter(_ row: Row) -> DeadLetterRecord {
        DeadLetterRecord(deadLetterID: row["deadletter_id"], stream: row["stream"], entryID: row["entry_id"],
                         group: row["consumer_group"], consumer: row["consumer"], reason: row["reason"],
                         payload: [UInt8](row["payload"] as Data), deliveries: row["deliveries"],
                         traceID: row["trace_id"], tsNs: row["ts_ns"])
    }

    /// The newest `limit` dead letters, newest first, and how many are recorded in all.
    public func recentDeadLetters(limit: Int) throws -> (letters: [DeadLetterRecord], total: Int) {
        try pool.read { db in
            let letters = try Row.fetchAll(db, sql: "SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", arguments: [limit]).map(Self.deadLetter)
            return (letters, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dead_letters") ?? 0)
        }
    }

    /// The newest `limit` audited trading state changes, newest first.
    public func tradingStateChanges(limit: Int) throws -> [TradingStateRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM trading_states ORDER BY id DESC LIMIT ?", arguments: [limit]).map { row in
                TradingStateRecord(controlID: row["control_id"], shard: row["shard"], scope: row["scope"], mode: row["mode"], from: row["from_mode"],
                                   reason: row["reason"], by: row["by"], atNs: row["at_ns"])
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
