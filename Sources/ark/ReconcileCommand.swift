// `ark reconcile`: the books compared with the audit's fold.

import ARKAgents
import ARKBus
import ARKCore
import ARKRisk
import ArgumentParser
import Foundation

struct ReconcileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Compare Kenny's books on every shard with the verified audit folded: exit 0 when every book equals it, 1 naming each difference.",
        discussion: """
            The audit is the source of truth: every execution that changed a book carries the
            account's sequence number, and their fold (positions, average prices, marks, realised
            P&L, equity) is what the books must be. A book ahead of the audit (executions still in
            flight to Aletheia) is compared again until --wait runs out.
            Examples:
              ark reconcile
              ark reconcile --account acct-7 --json
            """)

    @Option(help: "One account (default: every account the books or the audit know).")
    var account: String?

    @Flag(help: "JSON instead of text.")
    var json = false

    @Option(help: "Seconds to wait for executions in flight to reach the audit.")
    var wait: Double = 10

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let fold = try verifiedFold(config)
        let url = try redisURL(config)
        let c = RedisConnection(url: url, commandTimeout: .seconds(5))
        do { try c.connect() } catch { throw fail("cannot reach Redis at \(url): \(error). Fix: start Redis or set REDIS_URL", code: 69) }
        defer { c.close() }
        let deadline = Date().addingTimeInterval(wait)
        var current = fold
        var results: [LedgerBooks.Account]
        while true {
            let books = try LedgerBooks.read(c, layout: config.shardLayout)
            results = LedgerBooks.reconcile(fold: current, books: books, layout: config.shardLayout, account: account)
            guard results.contains(where: { if case .pending = $0.result { true } else { false } }), Date() < deadline else { break }
            Thread.sleep(forTimeInterval: 0.5)
            current = try LedgerRecovery.fold(storePath: config.stateDB, startingEquity: config.paperEquity)
        }
        var differences = 0
        var out: [[String: Any]] = []
        for r in results {
            var o: [String: Any] = ["account": r.account, "shard": r.shard.description, "executions": current.books[r.account]?.seq ?? 0]
            switch r.result {
            case .equal:
                o["status"] = "equal"
            case .pending(let why):
                differences += 1
                o["status"] = "differs"
                o["differences"] = ["after \(Int(wait)) s, \(why)"]
            case .differs(let d):
                differences += d.count
                o["status"] = "differs"
                o["differences"] = d
            }
            out.append(o)
        }
        if json {
            let doc: [String: Any] = ["accounts": out, "differences": differences, "audited_executions": current.count]
            print(String(decoding: try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        } else {
            for o in out {
                let on = config.shardLayout.isTagged ? " (shard \(o["shard"] ?? ""))" : ""
                if o["status"] as? String == "equal" {
                    print("account \(o["account"] ?? "")\(on): equal to the audit (\(o["executions"] ?? 0) executions)")
                } else {
                    print("account \(o["account"] ?? "")\(on): DIFFERS")
                    for d in o["differences"] as? [String] ?? [] { print("  - \(d)") }
                }
            }
            print(differences == 0
                  ? "0 differences: every book equals the audit (\(results.count) accounts, \(current.count) audited executions) ✓"
                  : "\(differences) difference(s): the audit is the source of truth; ark book rebuild makes the books equal to it")
        }
        if differences > 0 { throw ExitCode(1) }
    }
}
