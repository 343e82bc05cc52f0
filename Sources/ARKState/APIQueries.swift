// The store's reads the API serves: decisions paged by cursor and time, and traces.

import ARKCore
import ARKStoreWriter
import Foundation
import GRDB

/// One outcome as `GET /v1/decisions` pages through them.
public struct DecisionSummary: Sendable, Equatable {
    public var seq: Int64
    public var traceID: String
    public var signalID: String
    public var symbol: String
    public var source: String
    public var verdict: Verdict
    public var reasons: [String]
    public var policyHash: String?
    public var complianceScore: Double?
    public var latencyMs: Double
    public var doneNs: Int64
    public var orderID: String?
}

/// Where a page of decisions starts: after a sequence number (the cursor a page returns),
/// or at a time.
public enum DecisionCursor: Sendable, Equatable {
    case afterSeq(Int64)
    case fromTimeNs(Int64)
}

/// Reads for the API server. Async, so a request waits on GRDB's reader pool instead of
/// holding one of the server's event loops while SQLite works.
extension StateStore {
    public func readPass(traceID: String) async throws -> StoredPass? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM passes WHERE trace_id = ?", arguments: [traceID]).map(Self.storedPass)
        }
    }

    /// The audit proof of a trace's pass (nil: no such pass), read on the pool's queue.
    public func readAuditProof(traceID: String, to head: AuditCheckpoint? = nil) async throws -> AuditProof? {
        let path = self.path
        return try await pool.read { _ in try AuditReader(path: path).proof(traceID: traceID, to: head) }
    }

    /// The log's newest signed head and its rotation records.
    public func readAuditHead() async throws -> (newest: AuditCheckpoint?, rotations: [AuditCheckpoint]) {
        let path = self.path
        return try await pool.read { _ in try AuditReader(path: path).head() }
    }

    /// Whether the store holds `c`, signature and all: a witness cosigned a head signed here.
    public func hasCheckpoint(_ c: AuditCheckpoint) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM audit_checkpoints WHERE size = ? AND root = ? AND signature = ?)",
                              arguments: [c.size, SHA256.hex(c.root), SHA256.hex(c.signature)]) ?? false
        }
    }

    /// The consistency proof from `from` leaves to `to` (nil: `to` is beyond the tree).
    public func readConsistency(from: Int, to: Int) async throws -> (proof: [Merkle.Digest], fromRoot: Merkle.Digest, toRoot: Merkle.Digest)? {
        let path = self.path
        return try await pool.read { _ in try AuditReader(path: path).consistency(from: from, to: to) }
    }

    /// Up to `limit` outcomes in recording order, and whether more follow.
    public func readDecisions(from cursor: DecisionCursor, limit: Int) async throws -> (decisions: [DecisionSummary], hasMore: Bool) {
        try await pool.read { db in
            let columns = "seq, trace_id, signal_id, symbol, source, verdict, \(PassColumns.reasons) AS reasons, policy_hash, compliance_score, latency_ms, done_ns, order_id"
            let rows: [Row]
            switch cursor {
            case .afterSeq(let seq):
                rows = try Row.fetchAll(db, sql: "SELECT \(columns) FROM passes WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [seq, limit + 1])
            case .fromTimeNs(let ns):
                // done_ns is indexed; the first pass recorded at or after the time starts the page.
                let first = try Int64.fetchOne(db, sql: "SELECT seq FROM passes WHERE done_ns >= ? ORDER BY done_ns, seq LIMIT 1", arguments: [ns])
                guard let first else { return ([], false) }
                rows = try Row.fetchAll(db, sql: "SELECT \(columns) FROM passes WHERE seq >= ? ORDER BY seq LIMIT ?", arguments: [first, limit + 1])
            }
            let page = rows.prefix(limit).map { row in
                let reasonsText: String = row["reasons"]
                return DecisionSummary(
                    seq: row["seq"], traceID: row["trace_id"], signalID: row["signal_id"], symbol: row["symbol"], source: row["source"],
                    verdict: Verdict(rawValue: row["verdict"]) ?? .error,
                    reasons: JSONDocument.parse(reasonsText) as? [String] ?? [],
                    policyHash: row["policy_hash"], complianceScore: row["compliance_score"], latencyMs: row["latency_ms"],
                    doneNs: row["done_ns"], orderID: row["order_id"])
            }
            return (Array(page), rows.count > limit)
        }
    }
}
