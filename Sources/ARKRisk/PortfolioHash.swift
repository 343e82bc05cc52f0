// Where the accounts' books live in Redis and how they are read and written.

import ARKCore
import Graveyard

/// Where the accounts' books live: one Redis hash a shard (`Shard.portfolio`), one field an
/// account. The default account's book keeps the field it always had (`book`); another
/// account's is `book:<account>`. One key, so Kenny's `WATCH` covers every account of its
/// shard, and HRM reads the default account's book in the round trip that delivers its batch.
public enum PortfolioHash {
    public static let defaultField = "book"
    static let accountPrefix = "book:"

    public static func field(for account: String) -> String {
        account == ShardLayout.defaultAccount ? defaultField : accountPrefix + account
    }

    /// The account a field holds the book of; nil for a field that is not a book (figures an
    /// older release published beside the book are ignored).
    public static func account(ofField field: String) -> String? {
        if field == defaultField { return ShardLayout.defaultAccount }
        guard field.hasPrefix(accountPrefix), field.utf8.count > accountPrefix.utf8.count else { return nil }
        return String(field.dropFirst(accountPrefix.count))
    }

    /// Every account's book in an `HGETALL` of the hash, or why it cannot be read.
    public static func books(_ entries: [(field: String, value: [UInt8])]) -> [String: Result<PaperBook, PaperBook.UnreadableBook>] {
        var out: [String: Result<PaperBook, PaperBook.UnreadableBook>] = [:]
        for (field, value) in entries {
            guard let account = account(ofField: field) else { continue }
            do {
                out[account] = .success(try PaperBook(json: value))
            } catch {
                out[account] = .failure(error)
            }
        }
        return out
    }
}

extension PortfolioHash {
    /// The limits the books of one shard's hash break now (`RuleSet.breaches`), each named by
    /// its account when it is not the default; a book that cannot be read is one too.
    public static func breaches(_ entries: [(field: String, value: [UInt8])], rules: RuleSet) -> [String] {
        var out: [String] = []
        for (account, read) in books(entries).sorted(by: { $0.key < $1.key }) {
            let prefix = account == ShardLayout.defaultAccount ? "" : "account \(account): "
            switch read {
            case .success(let book): out += rules.breaches(of: book.snapshot).map { prefix + $0 }
            case .failure(let problem): out.append(prefix + "the book is unreadable: \(problem.description)")
            }
        }
        return out
    }
}

/// The rules whose denial of a compliant signal is a limit reached, not a false denial: the
/// portfolio limits (HRM's and Kenny's at the fill) and the throttles. The synthetic loop and
/// the bench count them apart.
public enum RiskLimits {
    public static let throttleRules: Set<String> = ["max_orders_per_second", "max_symbol_orders_per_second", "duplicate_order"]

    public static func limitRules(_ integrity: Graveyard.Integrity) -> Set<String> {
        integrity.portfolioRuleIDs.union(throttleRules)
    }
}
