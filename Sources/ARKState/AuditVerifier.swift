// `ark verify-audit`: every leaf, the tree and every signed head checked.

import ARKCore
import ARKStoreWriter
import Foundation
import GRDB

/// Checkpoints read from outside the store (the checkpoint file, Redis), to hold the store
/// to what was signed where a database edit cannot reach.
public struct CheckpointSource: Sendable {
    public var name: String
    public var checkpoints: [AuditCheckpoint]
    /// Lines of a file that are not checkpoints: the last may be torn by a crash; any other
    /// was garbled, a failure (it may have hidden a checkpoint of a history since rewritten).
    public var badLines: [Int]
    /// The number of the file's last line (0: not a file).
    public var lastLine: Int

    public init(name: String, checkpoints: [AuditCheckpoint], badLines: [Int] = [], lastLine: Int = 0) {
        self.name = name
        self.checkpoints = checkpoints
        self.badLines = badLines
        self.lastLine = lastLine
    }

    /// The checkpoint file at `path`; nil when there is none.
    public static func file(_ path: String) -> CheckpointSource? {
        AuditSigner.read(file: path).map { CheckpointSource(name: "the checkpoint file \(path)", checkpoints: $0.checkpoints, badLines: $0.badLines, lastLine: $0.lastLine) }
    }
}

/// The outcome of verifying the audit log.
public struct AuditReport: Sendable, Equatable {
    /// Leaves checked good before the first problem (all of them when there is none).
    public var checked: Int
    /// Signed checkpoints whose root the leaves reproduce.
    public var checkpointsVerified = 0
    /// Leaves of the newest valid checkpoint.
    public var signedSize = 0
    /// Facts that are not failures: the unsigned tail, signatures left unchecked, checkpoints
    /// discarded by a restore, a source that could not be read.
    public var notes: [String] = []
    /// The first record (or checkpoint) that does not hold, with what differs. `seq` is the
    /// pass's, or -1 for an order, a dead letter or a checkpoint.
    public var firstBroken: (seq: Int64, traceID: String, problem: String)?

    public var ok: Bool { firstBroken == nil }

    public static func == (a: AuditReport, b: AuditReport) -> Bool {
        a.checked == b.checked && a.firstBroken?.seq == b.firstBroken?.seq && a.firstBroken?.problem == b.firstBroken?.problem
    }
}

extension StateStore {
    /// Verifies the audit log: every leaf from its row, every fact column against the
    /// record it must be read from, the leaves' order and continuity, the tree's stored
    /// nodes, and each checkpoint (the store's, and those of `outside`) by its signature
    /// (when `publicKey` is given) and by the root the leaves give at its size. Reports the
    /// first problem, naming the record.
    /// `prefixOnly`: the store is a backup, which the published log may go on beyond.
    public func verifyAudit(publicKey: Ed25519.PublicKey? = nil, outside: [CheckpointSource] = [], prefixOnly: Bool = false, progress: ((Int) -> Void)? = nil) throws -> AuditReport {
        var report = AuditReport(checked: 0)
        let stored = try AuditReader(path: path).checkpoints()
        var sources = [CheckpointSource(name: "the store's audit_checkpoints", checkpoints: stored)] + outside
        for s in sources {
            if let garbled = s.badLines.first(where: { $0 != s.lastLine }) {
                report.firstBroken = (-1, "", "line \(garbled) of \(s.name) is not a checkpoint, and it is not the last line (which a crash can tear): it was garbled or edited, and a signed head may have been hidden there")
                return report
            }
            if let torn = s.badLines.first {
                report.notes.append("\(s.name): the last line (\(torn)) is not a checkpoint: torn by a crash, or edited")
            }
        }
        // Signatures first: a checkpoint that does not verify is no evidence, and is named.
        // From the root key on, each rotation record it (or a successor) signed names the next.
        if let publicKey {
            var chain = AuditKeyChain(pinned: publicKey)
            if let (c, problem) = chain.admit(sources.flatMap(\.checkpoints)) {
                let s = sources.first { $0.checkpoints.contains(c) }!
                let i = s.checkpoints.firstIndex(of: c)!
                report.firstBroken = (-1, "", "checkpoint \(i + 1) of \(s.name) (\(c.kind.rawValue), size \(c.size), time_ns \(c.timeNs)) \(problem)")
                return report
            }
            let rotations = Set(sources.flatMap { $0.checkpoints.filter { $0.kind == .rotation } }.compactMap(\.successor?.keyID))
            if !rotations.isEmpty { report.notes.append("the log's key was rotated to \(rotations.sorted().joined(separator: ", ")) by record(s) the trusted key signed") }
        } else if sources.contains(where: { !$0.checkpoints.isEmpty }) {
            report.notes.append("checkpoint signatures were not checked: no public key (--public-key, ARK_AUDIT_PUBLIC_KEY or ARK_AUDIT_KEY)")
        }
        // The newest restore starts the log again: larger checkpoints signed before it were
        // discarded with the records it rolled back.
        let all = sources.flatMap { s in s.checkpoints.map { (s.name, $0) } }
        if let restore = all.filter({ $0.1.kind == .restore }).max(by: { $0.1.timeNs < $1.1.timeNs })?.1 {
            let discarded = all.filter { $0.1.timeNs < restore.timeNs && $0.1.size > restore.size }
            if !discarded.isEmpty {
                report.notes.append("\(discarded.count) checkpoint(s) up to size \(discarded.map(\.1.size).max()!) were discarded by the restore of \(restore.note.isEmpty ? "a backup" : restore.note) at time_ns \(restore.timeNs) (size \(restore.size))")
            }
            sources = sources.map { s in
                var s = s
                s.checkpoints.removeAll { $0.timeNs < restore.timeNs && $0.size > restore.size }
                return s
            }
        }
        // Two checkpoints of one size must sign one root: otherwise one was replaced.
        var bySize: [Int: [(String, AuditCheckpoint)]] = [:]
        for s in sources { for c in s.checkpoints { bySize[c.size, default: []].append((s.name, c)) } }
        for (size, cs) in bySize.sorted(by: { $0.key < $1.key }) where Set(cs.map(\.1.root)).count > 1 {
            report.firstBroken = (-1, "", "two checkpoints of size \(size) sign different roots (\(cs.map { "\($0.0): \(SHA256.hex($0.1.root).prefix(16))…" }.joined(separator: "; "))): one was replaced")
            return report
        }

        try pool.read { db in
            var walk = try AuditWalk(db, checkpoints: bySize, progress: progress)
            report.firstBroken = try walk.run()
            report.checked = walk.checked
            report.checkpointsVerified = walk.checkpointsVerified
            report.signedSize = walk.signedSize
            if report.firstBroken == nil {
                if let newest = bySize.keys.max(), newest > walk.size, prefixOnly {
                    report.notes.append("the published log goes on to \(newest) leaves beyond this copy's \(walk.size), as a backup's does")
                } else if let newest = bySize.keys.max(), newest > walk.size, let c = bySize[newest]?.first {
                    report.firstBroken = (-1, "", "the store's log has \(walk.size) leaves, but \(c.0) signed \(newest) at time_ns \(c.1.timeNs): the newest \(newest - walk.size) record(s) were deleted")
                } else if walk.size > walk.signedSize && !bySize.isEmpty {
                    report.notes.append("the newest \(walk.size - walk.signedSize) leaves are not yet under a signed checkpoint (Aletheia signs one a second)")
                } else if bySize.isEmpty && walk.size > 0 {
                    report.notes.append("no signed checkpoint: the log is only as safe as the store file (set ARK_AUDIT_KEY for Aletheia)")
                }
            }
        }
        return report
    }

    /// The proof of one pass (nil: no pass of that trace), to the newest checkpoint that
    /// covers it.
    public func auditProof(traceID: String) throws -> AuditProof? {
        try AuditReader(path: path).proof(traceID: traceID)
    }
}

/// One walk over the leaves in order: passes by seq, orders and dead letters by insertion,
/// merged by leaf index.
private struct AuditWalk {
    let db: Database
    let checkpoints: [Int: [(String, AuditCheckpoint)]]
    let progress: ((Int) -> Void)?
    var tree = Merkle.Frontier()
    var size: Int { tree.size }
    var checked = 0
    var checkpointsVerified = 0
    var signedSize = 0
    /// The first leaf after the last verified checkpoint: where a rehashed edit can hide.
    var sinceCheckpoint: String?
    var storedNodes: [[Int]: [UInt8]] = [:]
    /// Filled executions of the audited passes, by trace, until their order is met; and the
    /// same in the order Aletheia writes their orders (trace, order id).
    var filledByTrace: [String: [String: Any]] = [:]
    var expectedOrders: [(String, String)] = []

    init(_ db: Database, checkpoints: [Int: [(String, AuditCheckpoint)]], progress: ((Int) -> Void)?) throws {
        self.db = db
        self.checkpoints = checkpoints
        self.progress = progress
        for row in try Row.fetchAll(db, sql: "SELECT height, idx, hash FROM audit_nodes") {
            storedNodes[[row["height"], row["idx"]]] = [UInt8](row["hash"] as Data)
        }
    }

    typealias Broken = (seq: Int64, traceID: String, problem: String)

    mutating func run() throws -> Broken? {
        let passes = try Row.fetchCursor(db, sql: """
            SELECT seq, trace_id, signal_id, symbol, source, verdict, reasons, policy_hash, compliance_score, t0_ns, done_ns,
                   latency_ms, hrm_eval_us, continuity_ok, injected_violation, order_id, track, record, prev_hash, hash, leaf
            FROM passes ORDER BY seq
            """)
        let orders = try Row.fetchCursor(db, sql: "SELECT order_id, trace_id, symbol, side, quantity, price, notional, realized_pnl, ts_ns, leaf, leaf_hash FROM orders ORDER BY rowid")
        let dead = try Row.fetchCursor(db, sql: """
            SELECT deadletter_id, stream, entry_id, consumer_group, consumer, reason, payload, deliveries, trace_id, ts_ns, leaf, leaf_hash
            FROM dead_letters ORDER BY id
            """)
        let states = try Row.fetchCursor(db, sql: "SELECT control_id, shard, scope, mode, from_mode, reason, by, at_ns, leaf, leaf_hash FROM trading_states ORDER BY id")
        var pass = try passes.next(), order = try orders.next(), letter = try dead.next(), state = try states.next()
        var prevHash = AuditTreeStore.genesisHash
        func leaf(_ row: Row?) -> Int? { row.flatMap { $0["leaf"] as Int? } }
        while pass != nil || order != nil || letter != nil || state != nil {
            let next = size
            for (row, what) in [(pass, "pass"), (order, "order"), (letter, "dead letter"), (state, "trading state")] {
                if let row, leaf(row) == nil {
                    return (what == "pass" ? row["seq"] : -1, row["trace_id"] ?? "", "the \(what) \(name(row, what)) has no leaf in the audit log: it was inserted outside ARK")
                }
            }
            if let p = pass, leaf(p) == next {
                if let problem = try checkPass(p, prevHash: prevHash) { return (p["seq"], p["trace_id"], problem) }
                prevHash = p["hash"]
                pass = try passes.next()
            } else if let o = order, leaf(o) == next {
                if let problem = checkOrder(o) { return (-1, o["trace_id"], problem) }
                order = try orders.next()
            } else if let d = letter, leaf(d) == next {
                if let problem = checkDeadLetter(d) { return (-1, d["trace_id"] ?? "", problem) }
                letter = try dead.next()
            } else if let t = state, leaf(t) == next {
                if let problem = checkTradingState(t) { return (-1, "", problem) }
                state = try states.next()
            } else {
                // The leaf is not the next row of any table: deleted, or rows reordered. When
                // the passes' links show none missing here, and an audited fill's order is not
                // the next order row, that order is the missing leaf.
                let passesLinked = pass.map { ($0["prev_hash"] as String) == prevHash } ?? true
                if passesLinked, let (traceID, orderID) = expectedOrders.first, order.map({ ($0["trace_id"] as String) != traceID }) ?? true {
                    return (-1, traceID, "leaf \(next) of the audit log is missing: order \(orderID) of an audited filled execution is missing from the orders table")
                }
                let heads = [(pass, "pass"), (order, "order"), (letter, "dead letter"), (state, "trading state")].compactMap { r, w in r.map { ($0, w) } }
                let following = heads.map { "\($0.1) \(name($0.0, $0.1)) is leaf \(leaf($0.0)!)" }.joined(separator: "; ")
                let (seq, traceID): (Int64, String) = pass.map { ($0["seq"], $0["trace_id"]) } ?? (-1, heads.first?.0["trace_id"] ?? "")
                return (seq, traceID, "leaf \(next) of the audit log is missing: a record was deleted, or the rows were reordered (next: \(following))")
            }
            if let problem = grow() { return (-1, "", problem) }
            checked += 1
            if checked % 100_000 == 0 { progress?(checked) }
        }
        if let (traceID, x) = filledByTrace.min(by: { $0.key < $1.key }) {
            return (-1, traceID, "order \(x["order_id"] as? String ?? "?") of an audited filled execution is missing from the orders table")
        }
        if let row = try Row.fetchOne(db, sql: "SELECT size, frontier FROM audit_tree WHERE id = 1") {
            let storedSize: Int = row["size"]
            let frontier = [UInt8](row["frontier"] as Data)
            if storedSize > size {
                return (-1, "", "audit_tree says \(storedSize) leaves, but the rows give \(size): the newest \(storedSize - size) records were deleted (or audit_tree was edited)")
            }
            if storedSize != size || frontier != tree.nodes.flatMap({ $0 }) {
                return (-1, "", "audit_tree says \(storedSize) leaves with a right edge that the \(size) leaves do not give: it was edited (Aletheia would extend a wrong tree)")
            }
        }
        return nil
    }

    func name(_ row: Row, _ what: String) -> String {
        switch what {
        case "pass": return "#\(row["seq"] as Int64) (trace \(row["trace_id"] as String))"
        case "order": return "\(row["order_id"] as String) (trace \(row["trace_id"] as String))"
        case "trading state": return "\(row["control_id"] as String) (\(row["scope"] as String) \(row["mode"] as String))"
        default: return "\(row["deadletter_id"] as String)" + ((row["trace_id"] as String?).map { " (trace \($0))" } ?? "")
        }
    }

    /// The leaf just checked, and its name, for `grow`.
    private var pendingLeaf: Merkle.Digest = []
    private var pendingName = ""

    /// Appends the leaf just checked, checks each stored node it completes and each
    /// checkpoint of the new size.
    mutating func grow() -> String? {
        var badNode: String?
        tree.append(pendingLeaf) { h, i, d in
            if h >= AuditLeaf.storedHeight, let stored = storedNodes[[h, i]], stored != d, badNode == nil {
                badNode = "audit_nodes height \(h) index \(i) differs from the hash of leaves \(i << h)..<\((i + 1) << h): it was edited (proofs through it would fail)"
            }
        }
        if sinceCheckpoint == nil { sinceCheckpoint = pendingName }
        if let cs = checkpoints[tree.size] {
            let root = tree.root
            for (source, c) in cs where c.root != root {
                return "checkpoint of size \(c.size) in \(source) (time_ns \(c.timeNs)) signs root \(SHA256.hex(c.root)), but the leaves give \(SHA256.hex(root)): "
                    + "a record among leaves \(signedSize)..<\(c.size) (from \(sinceCheckpoint ?? "?")) was changed and its hash recomputed, or the checkpoint was replaced"
            }
            checkpointsVerified += cs.count
            signedSize = tree.size
            sinceCheckpoint = nil
        }
        return badNode
    }

    mutating func checkPass(_ row: Row, prevHash: String) throws -> String? {
        let storedPrev: String = row["prev_hash"]
        if storedPrev != prevHash {
            return "prev_hash \(storedPrev) does not match the previous record's hash \(prevHash) (a record before it was removed, or the rows were reordered)"
        }
        let record: String = row["record"]
        let leafHash = Merkle.leafHash(Array(record.utf8))
        if SHA256.hex(leafHash) != (row["hash"] as String) {
            return "the record does not hash to its stored hash (expected \(SHA256.hex(leafHash)), stored \(row["hash"] as String)): the record was edited"
        }
        guard let object = JSONDocument.object(record) else {
            return "the audited record is not a JSON object"
        }
        if let column = AuditedColumns.firstDifference(row, record: object) {
            return "the \(column) column differs from the audited record"
        }
        if let event = object["event"] as? [String: Any], let execution = event["execution"] as? [String: Any],
           execution["status"] as? String == "filled", (row["verdict"] as String) != "deadlettered" {
            var x = execution
            x["symbol"] = event["symbol"]
            filledByTrace[row["trace_id"]] = x
            expectedOrders.append((row["trace_id"], x["order_id"] as? String ?? "?"))
        }
        pendingLeaf = leafHash
        pendingName = name(row, "pass")
        return nil
    }

    /// An order is a leaf of its own and the execution of an audited pass, field for field.
    mutating func checkOrder(_ o: Row) -> String? {
        let traceID: String = o["trace_id"]
        guard let x = filledByTrace.removeValue(forKey: traceID) else {
            return "order \(o["order_id"] as String) has no filled execution in the audited records"
        }
        expectedOrders.removeAll { $0.0 == traceID }
        for column in ["order_id", "side", "symbol"] where (o[column] as String) != (x[column] as? String ?? "") {
            return "the order's \(column) column differs from the audited execution"
        }
        for column in ["quantity", "price", "notional", "realized_pnl"] where !AuditedColumns.same(o[column], (x[column] as? NSNumber)?.doubleValue) {
            return "the order's \(column) column differs from the audited execution"
        }
        let record = OrderRecord(orderID: o["order_id"], traceID: traceID, symbol: o["symbol"], side: o["side"], quantity: o["quantity"],
                                 price: o["price"], notional: o["notional"], realizedPnl: o["realized_pnl"], tsNs: o["ts_ns"])
        let h = Merkle.leafHash(AuditLeaf.data(of: record))
        if SHA256.hex(h) != (o["leaf_hash"] as String? ?? "") {
            return "order \(record.orderID)'s columns do not hash to its leaf hash: the order was edited (ts_ns?)"
        }
        pendingLeaf = h
        pendingName = name(o, "order")
        return nil
    }

    mutating func checkTradingState(_ t: Row) -> String? {
        let record = TradingStateRecord(controlID: t["control_id"], shard: t["shard"], scope: t["scope"], mode: t["mode"], from: t["from_mode"],
                                        reason: t["reason"], by: t["by"], atNs: t["at_ns"])
        let h = Merkle.leafHash(AuditLeaf.data(of: record))
        if SHA256.hex(h) != (t["leaf_hash"] as String? ?? "") {
            return "trading state change \(name(t, "trading state"))'s columns do not hash to its leaf hash: it was edited"
        }
        pendingLeaf = h
        pendingName = name(t, "trading state")
        return nil
    }

    mutating func checkDeadLetter(_ d: Row) -> String? {
        let record = DeadLetterRecord(deadLetterID: d["deadletter_id"], stream: d["stream"], entryID: d["entry_id"], group: d["consumer_group"],
                                      consumer: d["consumer"], reason: d["reason"], payload: [UInt8](d["payload"] as Data), deliveries: d["deliveries"],
                                      traceID: d["trace_id"], tsNs: d["ts_ns"])
        let h = Merkle.leafHash(AuditLeaf.data(of: record))
        if SHA256.hex(h) != (d["leaf_hash"] as String? ?? "") {
            return "dead letter \(name(d, "dead letter"))'s columns do not hash to its leaf hash: it was edited"
        }
        pendingLeaf = h
        pendingName = name(d, "dead letter")
        return nil
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
        // An empty column is the lean record's: the reasons are the record's alone.
        let reasonsColumn: String = row["reasons"]
        if !reasonsColumn.isEmpty, (JSONDocument.parse(reasonsColumn) as? [String]) != (record["reasons"] as? [String] ?? []) { return "reasons" }
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
        if (row["track"] as String) != (string(event["track"]) ?? "baseline") { return "track" }
        return nil
    }
}
