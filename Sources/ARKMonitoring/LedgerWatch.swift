// The periodic reconciliation of the books with the audit inside the metrics server.

import ARKBus
import ARKCore
import ARKRisk
import ARKState
import ARKStoreWriter

/// The periodic `ark reconcile` inside the metrics server: folds the audit's new leaves into
/// its running fold (NautilusTrader reconciles on an interval the same way) and compares the
/// books with it every `intervalNs`. A book ahead of the audit is in flight; still ahead after
/// `pendingLimitNs` it is a difference.
struct LedgerWatch {
    /// What the last check found.
    struct Verdict: Sendable {
        var atNs: Int64
        var accounts: Int
        var executions: Int
        /// Each account that differs, with its differences.
        var differences: [(account: String, shard: Shard, what: [String])]
        /// Accounts whose newest executions are still in flight to Aletheia.
        var inFlight: Int
        /// Shards whose books are not proven (their Redis lost them: being restored).
        var unproven: [Shard]

        var reconciled: Bool { differences.isEmpty && unproven.isEmpty }
    }

    let startingEquity: Double
    var intervalNs: Int64 = 10_000_000_000
    var pendingLimitNs: Int64 = 60_000_000_000
    private var fold: LedgerFold
    private var nextLeaf = 0
    private var pendingSince: [String: Int64] = [:]
    private(set) var verdict: Verdict?
    private(set) var problem: String?

    init(startingEquity: Double) {
        self.startingEquity = startingEquity
        fold = LedgerFold(startingEquity: startingEquity)
    }

    func isDue(nowNs: Int64) -> Bool {
        guard let v = verdict else { return true }
        return nowNs - v.atNs >= intervalNs
    }

    /// Folds the leaves written since the last check and compares the books.
    mutating func check(storePath: String, connection: RedisConnection, layout: ShardLayout, nowNs: Int64) {
        do {
            let reader = try AuditReader(path: storePath)
            // A store rolled back (a restore) has fewer leaves than were folded: start over.
            // The size is read before the scan: a leaf written during it is folded next time,
            // never skipped.
            let size = try reader.treeSize()
            if size < nextLeaf {
                fold = LedgerFold(startingEquity: startingEquity)
                nextLeaf = 0
            }
            nextLeaf = max(try reader.sequencedEvents(fromLeaf: nextLeaf) { _, e in fold.add(e) }, size)
            let books = try LedgerBooks.read(connection, layout: layout)
            var unproven: [Shard] = []
            for shard in layout.shards where try !LedgerBooks.isProven(connection, shard: shard) { unproven.append(shard) }
            var differences: [(account: String, shard: Shard, what: [String])] = []
            var inFlight = 0
            var pending: [String: Int64] = [:]
            for a in LedgerBooks.reconcile(fold: fold, books: books, layout: layout) {
                switch a.result {
                case .equal: break
                case .pending(let why):
                    let since = pendingSince[a.account] ?? nowNs
                    pending[a.account] = since
                    if nowNs - since > pendingLimitNs {
                        differences.append((a.account, a.shard, ["for \((nowNs - since) / 1_000_000_000) s, \(why)"]))
                    } else {
                        inFlight += 1
                    }
                case .differs(let d): differences.append((a.account, a.shard, d))
                }
            }
            pendingSince = pending
            verdict = Verdict(atNs: nowNs, accounts: Set(books.keys).union(fold.books.keys).count, executions: fold.count,
                              differences: differences, inFlight: inFlight, unproven: unproven)
            problem = nil
        } catch {
            problem = "\(error)"
            verdict = nil
        }
    }

    /// The `/healthz` check: unhealthy while a book differs from the audit (a risk check then
    /// runs on a book the audit does not explain) or a shard's books are being restored.
    var healthCheck: HealthCheck? {
        if let problem { return HealthCheck(name: "ledger", status: .degraded, detail: "the books could not be reconciled with the audit: \(problem)") }
        guard let v = verdict else { return nil }
        if !v.unproven.isEmpty {
            return HealthCheck(name: "ledger", status: .unhealthy,
                               detail: "the books of shard \(v.unproven.map(\.description).joined(separator: ", ")) are lost (Redis restarted empty?): Aletheia restores them from the audit; nothing fills meanwhile")
        }
        if !v.differences.isEmpty {
            let named = v.differences.prefix(3).map { "account \($0.account): \($0.what.prefix(2).joined(separator: "; "))" }.joined(separator: "; ")
            return HealthCheck(name: "ledger", status: .unhealthy,
                               detail: "\(v.differences.count) book(s) differ from the audit: \(named). Fix: ark reconcile, then ark book rebuild (RUNBOOK: ARKBookNotReconciled)")
        }
        let flight = v.inFlight > 0 ? "; \(v.inFlight) with executions in flight to Aletheia" : ""
        return HealthCheck(name: "ledger", status: .healthy, detail: "every book equals the audit (\(v.accounts) accounts, \(v.executions) audited executions)\(flight)")
    }
}
