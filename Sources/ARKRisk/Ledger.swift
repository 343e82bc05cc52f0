// The books as the audit has them: executions folded into positions.

import ARKCore
import Graveyard

/// The books as the audit has them: every audited execution that changed a book (it carries
/// the book's sequence number, `Execution.seq`) replayed in sequence order per account, from
/// the starting equity, with the same arithmetic Kenny used (`PaperBook.execute`). The audit
/// is the source of truth; Kenny's books in Redis are a cache of this fold, which `ark
/// reconcile` compares and `ark book rebuild` restores. Pure: fed events, tested without a
/// store.
public struct LedgerFold: Sendable {
    public let startingEquity: Double
    /// Each account's book after its executions 1…seq.
    public private(set) var books: [String: PaperBook] = [:]
    /// Executions that came ahead of a gap in their account's sequence (the audit lags, or
    /// lost one), by account and sequence number.
    public private(set) var waiting: [String: [Int64: Event]] = [:]
    /// Where the audit cannot be replayed as it says (two executions with one sequence
    /// number, a fill that does not fill again): each makes its account differ.
    public private(set) var problems: [String: [String]] = [:]
    /// The last trusted price of each instrument, in the order the audit recorded them.
    public private(set) var trustedPrices: [String: Double] = [:]
    /// Executions folded.
    public private(set) var count = 0

    public init(startingEquity: Double) {
        self.startingEquity = startingEquity
    }

    /// Adds one audited event; events without a sequenced execution (denials, holds of an
    /// unmarked book, refusals before the price was judged, duplicates) change no book.
    public mutating func add(_ e: Event) {
        guard let x = e.execution, x.status != .duplicate, let seq = x.seq else { return }
        let account = e.account
        let applied = books[account]?.seq ?? 0
        if seq <= applied || waiting[account]?[seq] != nil {
            problems[account, default: []].append("two audited executions carry sequence number \(seq) (the later: trace \(e.traceID)): a book that had lost its history was written over")
            return
        }
        waiting[account, default: [:]][seq] = e
        drain(account)
    }

    private mutating func drain(_ account: String) {
        while let next = waiting[account]?[(books[account]?.seq ?? 0) + 1] {
            waiting[account]?[next.execution!.seq!] = nil
            apply(next)
        }
        if waiting[account]?.isEmpty == true { waiting[account] = nil }
    }

    private mutating func apply(_ e: Event) {
        let x = e.execution!
        let account = e.account
        let day = PaperBook.utcDay(e.hops.first { $0.stage == .kenny }?.inNs ?? e.t0Ns)
        var book = books[account] ?? PaperBook(equity: startingEquity, day: day)
        book.roll(to: day)
        // No band: the audited price was trusted when it was applied. A limited execution
        // stopped after the mark; the limit it met is the audit's, not asked again.
        var reference: PriceBand.Reference?
        let audited = x.status == .filled ? [] : [Violation(rule: "audited", severity: .high, message: "limited as the audit records")]
        let again = book.execute(e, orderID: x.orderID ?? "", band: nil, reference: &reference) { _ in audited }
        count += 1
        if again.seq != x.seq || (x.status == .filled) != (again.status == .filled) || !Self.same(again.quantity, x.quantity) {
            problems[account, default: []].append("trace \(e.traceID) (sequence \(x.seq!)) does not replay as audited: \(x.status.rawValue) \(x.quantity) then, \(again.status.rawValue) \(again.quantity) now")
            // Take the book as far as it goes: its sequence still advances, so later ones are folded.
            book.seq = x.seq!
        }
        books[account] = book
        trustedPrices[e.symbol] = e.price
    }

    /// Doubles equal to within a part in 10^9 (the fold repeats Kenny's arithmetic exactly;
    /// this only forgives a last-bit difference).
    static func same(_ a: Double, _ b: Double) -> Bool {
        a == b || abs(a - b) <= 1e-9 * max(1, abs(a), abs(b))
    }
}

/// One account's book in Redis against the audit's fold.
public enum BookReconciliation: Sendable, Equatable {
    case equal
    /// The book is ahead of the audit: executions Kenny made that Aletheia has not recorded
    /// yet (in flight). Compared again later; persisting, it is a difference.
    case pending(String)
    case differs([String])

    /// Compares a book Kenny keeps (nil: none in Redis) with the fold's (nil: the audit has
    /// no execution of the account); `waiting` counts the fold's executions of the account
    /// beyond a gap in its sequence, `problems` are the fold's own for the account.
    public static func compare(book: Result<PaperBook, PaperBook.UnreadableBook>?, audit: PaperBook?, waiting: Int, problems: [String]) -> BookReconciliation {
        var out = problems
        let auditSeq = audit?.seq ?? 0
        let kept: PaperBook
        switch book {
        case nil:
            guard auditSeq > 0 else { return out.isEmpty ? .equal : .differs(out) }
            return .differs(out + ["no book in Redis, but the audit holds \(auditSeq) executions of the account (Redis lost it: ark book rebuild)"])
        case .failure(let problem):
            return .differs(out + ["the book in Redis is unreadable (\(problem.description)): ark book rebuild"])
        case .success(let b):
            kept = b
        }
        if kept.seq == 0 && !kept.positions.isEmpty && auditSeq == 0 {
            return .differs(out + ["the book holds \(kept.positions.count) positions and no sequence number: written before ARK sequenced its executions, the audit cannot explain it (ark book rebuild starts it from the audit)"])
        }
        if kept.seq > auditSeq {
            guard out.isEmpty else { return .differs(out) }
            return .pending("the book holds executions 1…\(kept.seq), the audit 1…\(auditSeq)\(waiting > 0 ? " and \(waiting) beyond a gap" : ""): in flight to Aletheia")
        }
        if kept.seq < auditSeq {
            return .differs(out + ["the book holds executions 1…\(kept.seq), the audit 1…\(auditSeq): the book is behind the audit (a Redis failover or restart lost \(auditSeq - kept.seq)): ark book rebuild"])
        }
        if waiting > 0 {
            out.append("the audit holds \(waiting) executions beyond a gap after \(auditSeq), which the book does not: the book is behind the audit: ark book rebuild")
        }
        let a = audit ?? PaperBook(equity: kept.balance, day: kept.day)
        func figure(_ name: String, _ have: Double, _ want: Double) {
            if !LedgerFold.same(have, want) { out.append("\(name): the book says \(have), the audit \(want)") }
        }
        if audit != nil { figure("balance (realised equity)", kept.balance, a.balance) }
        figure("equity at market", kept.equity, audit == nil ? kept.balance : a.equity)
        for symbol in Set(kept.positions.keys).union(a.positions.keys).sorted() {
            guard let p = kept.positions[symbol] else { out.append("\(symbol): the audit holds \(a.positions[symbol]!.quantity), the book no position"); continue }
            guard let q = a.positions[symbol] else { out.append("\(symbol): the book holds \(p.quantity), the audit no position"); continue }
            figure("\(symbol) quantity", p.quantity, q.quantity)
            figure("\(symbol) average price", p.averagePrice, q.averagePrice)
            figure("\(symbol) mark", p.mark, q.mark)
            figure("\(symbol) stop loss", p.stopLoss, q.stopLoss)
            figure("\(symbol) take-profit", p.takeProfit, q.takeProfit)
        }
        return out.isEmpty ? .equal : .differs(out)
    }
}
