// Kenny's books in Redis compared with the audit's fold.

import ARKBus
import ARKCore
import Graveyard

/// Kenny's books in Redis against the audit's fold (`LedgerFold`): read them on every shard,
/// compare them (`ark reconcile`, the metrics server's periodic check), and write the fold's
/// back (`ark book rebuild`, and Kenny and Aletheia by themselves when a shard's Redis lost
/// its books).
///
/// Each shard keeps a marker (`Shard.ledger`) that its books are the audit's: written with
/// every restore, it goes when Redis loses its data (restarted without persistence, flushed),
/// and Kenny fills nothing on a shard without it.
public enum LedgerBooks {
    /// One account's reconciliation.
    public struct Account: Sendable, Equatable {
        public var account: String
        public var shard: Shard
        public var result: BookReconciliation
    }

    /// Every account's book on every shard of `layout`.
    public static func read(_ c: RedisConnection, layout: ShardLayout) throws(RedisError) -> [String: (shard: Shard, book: Result<PaperBook, PaperBook.UnreadableBook>)] {
        var out: [String: (shard: Shard, book: Result<PaperBook, PaperBook.UnreadableBook>)] = [:]
        for shard in layout.shards {
            for (account, book) in PortfolioHash.books(try c.hashEntries(shard.portfolio)) { out[account] = (shard, book) }
        }
        return out
    }

    /// Each account the books or the audit know, compared (`account`: only that one).
    public static func reconcile(fold: LedgerFold, books: [String: (shard: Shard, book: Result<PaperBook, PaperBook.UnreadableBook>)],
                                 layout: ShardLayout, account only: String? = nil) -> [Account] {
        var accounts = Set(books.keys).union(fold.books.keys).union(fold.waiting.keys).union(fold.problems.keys)
        if let only { accounts = accounts.intersection([only]).union([only]) }
        return accounts.sorted().map { account in
            let kept = books[account]
            var result = BookReconciliation.compare(book: kept?.book, audit: fold.books[account], waiting: fold.waiting[account]?.count ?? 0,
                                                    problems: fold.problems[account] ?? [])
            let home = layout.shard(forAccount: account)
            if let kept, kept.shard != home {
                let moved = "the book is on shard \(kept.shard), but the account belongs to shard \(home) (ARK_SHARDS changed?)"
                if case .differs(let d) = result { result = .differs(d + [moved]) } else { result = .differs([moved]) }
            }
            return Account(account: account, shard: home, result: result)
        }
    }

    public enum RestoreMode: Sendable {
        /// Only the books that are missing or behind the audit (fewer executions); a book
        /// ahead of it (in flight), unreadable or from before sequence numbers is left alone.
        case behind
        /// Every book becomes the audit's (an account the audit does not know starts afresh);
        /// refused while a book is ahead of the audit, unless `force`.
        case all(force: Bool)
    }

    public struct RestoreRefused: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Writes the fold's books of `shard`'s accounts (as `mode` says), the last trusted price
    /// of each instrument they traded where the shard has none, and the shard's marker, in one
    /// transaction under WATCH. Returns the accounts written.
    public static func restore(_ c: RedisConnection, shard: Shard, layout: ShardLayout, fold: LedgerFold, mode: RestoreMode,
                               by: String, nowNs: Int64) throws -> [String] {
        for _ in 0..<20 {
            let watched = try c.pipeline([
                ["WATCH", .text(shard.portfolio), .text(shard.marks), .text(shard.ledger)],
                ["HGETALL", .text(shard.portfolio)],
                ["HGETALL", .text(shard.marks)],
            ])
            for r in watched { if case .error(let e) = r { throw RedisError.server(e) } }
            let books = PortfolioHash.books(watched[1].hashEntries)
            let marks = Set(watched[2].hashEntries.map(\.field))
            let mine = fold.books.filter { layout.shard(forAccount: $0.key) == shard }
            var write: [String: PaperBook] = [:]
            switch mode {
            case .behind:
                for (account, audited) in mine {
                    switch books[account] {
                    case nil: write[account] = audited
                    case .success(let kept) where kept.seq < audited.seq: write[account] = audited
                    default: break
                    }
                }
            case .all(let force):
                if !force {
                    let ahead = books.compactMap { account, read -> String? in
                        guard case .success(let kept) = read, kept.seq > (fold.books[account]?.seq ?? 0) else { return nil }
                        return "\(account) (the book holds executions 1…\(kept.seq), the audit 1…\(fold.books[account]?.seq ?? 0))"
                    }
                    if !ahead.isEmpty {
                        _ = try? c.command(["UNWATCH"])
                        throw RestoreRefused(description: "shard \(shard): books ahead of the audit, their last executions still in flight to Aletheia: \(ahead.sorted().joined(separator: ", ")). Halt trading and let Aletheia catch up (ark trading halt), or use --force to drop them")
                    }
                }
                write = mine
                let day = PaperBook.utcDay(nowNs)
                for account in books.keys where mine[account] == nil { write[account] = PaperBook(equity: fold.startingEquity, day: day) }
            }
            var commands: [[RedisArg]] = [["MULTI"]]
            if !write.isEmpty {
                commands.append(["HSET", .text(shard.portfolio)] + write.sorted { $0.key < $1.key }.flatMap { [RedisArg.text(PortfolioHash.field(for: $0.key)), .bytes($0.value.encoded())] })
            }
            // The band must guard the marks of the positions held: their last trusted prices.
            let symbols = Set(write.values.flatMap { $0.positions.keys })
            let prices = symbols.subtracting(marks).sorted().compactMap { s in fold.trustedPrices[s].map { (s, $0) } }
            if !prices.isEmpty {
                commands.append(["HSET", .text(shard.marks)] + prices.flatMap { [RedisArg.text($0.0), .text(PriceBand.Reference(price: $0.1).stored)] })
            }
            commands.append(["HSET", .text(shard.ledger), "restored_ns", .int(Int(nowNs)), "by", .text(by), "executions", .int(fold.count)])
            commands.append(["EXEC"])
            if try StreamBus.checkTransaction(try c.pipeline(commands)) { return write.keys.sorted() }
        }
        throw RestoreRefused(description: "shard \(shard): the books kept changing under WATCH")
    }

    /// The field of `Shard.ledger` holding the audit's newest execution sequence number of an
    /// account (Aletheia publishes them; Kenny compares its books with them every batch).
    public static func headField(_ account: String) -> String { "head:" + account }

    /// Whether the shard's books are known to be the audit's (its marker exists).
    public static func isProven(_ c: RedisConnection, shard: Shard) throws(RedisError) -> Bool {
        try c.command(["EXISTS", .text(shard.ledger)]).integer == 1
    }
}
