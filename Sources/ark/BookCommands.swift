// `ark book show` and `ark book rebuild`.

import ARKAgents
import ARKBus
import ARKCore
import ARKRisk
import ARKState
import ArgumentParser
import Foundation

struct BookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "book",
        abstract: "Kenny's paper books: show them (at the trusted prices), or rebuild them from the audit.",
        discussion: """
            Examples:
              ark book show                               every account's book
              ark book show --account acct-7 --json
              ark book rebuild                            every book from the verified audit (ark reconcile compares them)
            """,
        subcommands: [BookShowCommand.self, BookRebuildCommand.self],
        defaultSubcommand: BookShowCommand.self)
}

/// Redis at REDIS_URL, or the exit that says how to fix it.
func redisURL(_ config: ARKConfig) throws -> RedisURL {
    do {
        return try RedisURL(parsing: config.redisURL)
    } catch {
        throw fail("REDIS_URL: \(error). Fix: use redis://[:password@]host:port/db or unix:///path/redis.sock", code: 78)
    }
}

/// A connection to the node serving `shard`.
func connect(_ url: RedisURL, _ shard: Shard) throws -> RedisConnection {
    let c = RedisConnection(url: url, commandTimeout: .seconds(5), slotKey: shard.tagged ? shard.slotKey : nil)
    do {
        try c.connect()
    } catch {
        throw fail("cannot reach Redis at \(url) for shard \(shard): \(error). Fix: start Redis or set REDIS_URL", code: 69)
    }
    return c
}

struct BookShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Every account's book, valued at the trusted prices, or why it cannot be read.")

    @Option(help: "One account (default: every account).")
    var account: String?

    @Flag(help: "JSON instead of text.")
    var json = false

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let url = try redisURL(config)
        let layout = config.shardLayout
        let shards = account.map { [layout.shard(forAccount: $0)] } ?? layout.shards
        var out: [[String: Any]] = []
        var unreadable = 0
        for shard in shards {
            let c = try connect(url, shard)
            defer { c.close() }
            let books = PortfolioHash.books(try c.hashEntries(shard.portfolio))
            for (name, read) in books.sorted(by: { $0.key < $1.key }) where account == nil || account == name {
                var o: [String: Any] = ["account": name, "shard": shard.description]
                switch read {
                case .failure(let problem):
                    unreadable += 1
                    o["unreadable"] = problem.description
                case .success(let b):
                    o["equity"] = b.equity
                    o["balance"] = b.balance
                    o["daily_pnl"] = b.dailyPnl
                    o["day"] = b.day
                    o["positions"] = b.positions.sorted(by: { $0.key < $1.key }).map { s, p in
                        ["symbol": s, "quantity": p.quantity, "average_price": p.averagePrice, "mark": p.mark, "exposure": p.exposure,
                         "share_of_equity": b.equity > 0 ? abs(p.exposure) / b.equity : 0, "stop_loss": p.stopLoss, "take_profit": p.takeProfit] as [String: Any]
                    }
                }
                out.append(o)
            }
        }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: ["books": out], options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        } else if out.isEmpty {
            print(account.map { "account \($0) has no book yet: it starts at \(config.paperEquity) (ARK_PAPER_EQUITY) with its first trade" }
                  ?? "no book yet: every account starts at \(config.paperEquity) (ARK_PAPER_EQUITY) with its first trade")
        }
        if !json {
            for o in out {
                let on = layout.isTagged ? " (shard \(o["shard"] ?? ""))" : ""
                if let problem = o["unreadable"] {
                    print("account \(o["account"] ?? "")\(on): UNREADABLE: \(problem)")
                    continue
                }
                print(String(format: "account %@%@: equity %.2f at market (balance %.2f), day %@ P&L %.2f",
                             o["account"] as? String ?? "", on, o["equity"] as? Double ?? 0, o["balance"] as? Double ?? 0, o["day"] as? String ?? "", o["daily_pnl"] as? Double ?? 0))
                for p in o["positions"] as? [[String: Any]] ?? [] {
                    print(String(format: "  %-16@ %14.4f @ %.4f, marked %.4f: %.2f (%.2f%% of equity)", p["symbol"] as? String ?? "", p["quantity"] as? Double ?? 0,
                                 p["average_price"] as? Double ?? 0, p["mark"] as? Double ?? 0, p["exposure"] as? Double ?? 0, (p["share_of_equity"] as? Double ?? 0) * 100))
                }
            }
        }
        if unreadable > 0 { throw ExitCode(1) }
    }
}

struct BookRebuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Rebuild every account's book from the verified audit (the source of truth): for a Redis that lost the books, a book left behind by a failover, or one that cannot be read.")

    @Flag(help: "Rebuild even books ahead of the audit (executions still in flight to Aletheia are dropped from them).")
    var force = false

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let fold = try verifiedFold(config)
        let url = try redisURL(config)
        var written: [String] = []
        for shard in config.shardLayout.shards {
            let c = try connect(url, shard)
            defer { c.close() }
            do {
                written += try LedgerBooks.restore(c, shard: shard, layout: config.shardLayout, fold: fold, mode: .all(force: force),
                                                   by: "operator:" + operatorName(), nowNs: wallClockNanoseconds())
            } catch let refused as LedgerBooks.RestoreRefused {
                throw fail(refused.description, code: 1)
            }
        }
        print("rebuilt \(written.count) book(s) from \(fold.count) audited executions: \(written.joined(separator: ", "))")
        print("an account halted by a breaker stays halted: ark trading status, then ark trading resume --account … --reason …")
    }
}

func operatorName() -> String {
    ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown"
}

/// The audit verified (leaves, signed checkpoints), then its sequenced executions folded:
/// the books as the audit has them.
func verifiedFold(_ config: ARKConfig) throws -> LedgerFold {
    let store = try openStoreReadOnly(config)
    let key = try auditPublicKey(config, explicit: nil, quiet: true)
    var outside: [CheckpointSource] = []
    if let read = CheckpointSource.file(config.auditCheckpointsPath) {
        outside.append(read)
    }
    let report = try store.verifyAudit(publicKey: key, outside: outside)
    if let broken = report.firstBroken {
        throw fail("the audit log is BROKEN at \(broken.traceID.isEmpty ? "the log" : "trace \(broken.traceID)") after \(report.checked) good leaves (\(broken.problem)): it cannot be the source of the books. ark verify-audit says more", code: 1)
    }
    do {
        return try LedgerRecovery.fold(storePath: config.stateDB, startingEquity: config.paperEquity)
    } catch {
        throw fail("cannot fold the audit of \(config.stateDB): \(error)", code: 1)
    }
}
