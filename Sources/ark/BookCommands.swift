import ARKBus
import ARKCore
import ARKRisk
import ArgumentParser
import Foundation

struct BookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "book",
        abstract: "Kenny's paper books: show them (at the trusted prices), or reset one that cannot be read.",
        discussion: """
            Examples:
              ark book show                               every account's book
              ark book show --account acct-7 --json
              ark book reset --account default --reason "hand-edited book"   saved, removed, account HALTED (audited)
            """,
        subcommands: [BookShowCommand.self, BookResetCommand.self],
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

struct BookResetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Remove an account's book (saved to ARK_LOG_DIR first) and halt the account, audited; it starts again at ARK_PAPER_EQUITY once resumed.")

    @Option(help: "The account whose book to remove.")
    var account: String

    @Option(help: "Why: recorded in the audit log with the account's HALTED state. Required.")
    var reason: String

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let url = try redisURL(config)
        let shard = config.shardLayout.shard(forAccount: account)
        let field = PortfolioHash.field(for: account)
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown"
        guard !reason.trimmed().isEmpty else { throw fail("a reason is required: it is audited with the change", code: 64) }
        let c = try connect(url, shard)
        defer { c.close() }
        for _ in 0..<20 {
            let replies = try c.pipeline([["WATCH", .text(shard.portfolio), .text(shard.trading)], ["HGET", .text(shard.portfolio), .text(field)],
                                          ["HGET", .text(shard.trading), .text(TradingScope.account(account).field)]])
            guard case .bulk(let bytes) = replies[1] else {
                _ = try c.command(["UNWATCH"])
                throw fail("account \(account) has no book on shard \(shard): nothing to reset", code: 1)
            }
            try FileManager.default.createDirectory(atPath: config.logDir, withIntermediateDirectories: true)
            let saved = config.logDir + "/book-\(account)-\(wallClockNanoseconds() / 1_000_000_000).json"
            guard FileManager.default.createFile(atPath: saved, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
                _ = try c.command(["UNWATCH"])
                throw fail("cannot save the book to \(saved): nothing was removed. Fix: make ARK_LOG_DIR writable", code: 73)
            }
            var from = TradingMode.active
            if case .bulk(let state) = replies[2] { from = (try? TradingControl(json: state))?.mode ?? .halted }
            let halt = TradingControl(scope: .account(account), mode: .halted, from: from,
                                      reason: "book reset (the old book saved to \(saved)): \(reason)", by: "operator:" + user, atNs: wallClockNanoseconds())
            let exec = try c.pipeline([["MULTI"], ["HDEL", .text(shard.portfolio), .text(field)]] + TradingStateStore.commands(halt, shard: shard) + [["EXEC"]])
            if exec.last?.array != nil {
                print("account \(account): book removed (saved to \(saved)); HALTED by \(halt.by). It starts again at \(config.paperEquity) once resumed: ark trading resume --account \(account) --reason …")
                return
            }
        }
        throw fail("the book of account \(account) kept changing under WATCH: retry", code: 75)
    }
}
