// HRM, the risk gate: judges each proposal against the Graveyard's rules, trading states and the
// books.

import ARKBus
import ARKCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Graveyard
import ARKRisk
import Logging
import Metrics

/// HRM: the risk gate. Judges every proposal against the Graveyard and fails closed: a rule
/// file that drifted from its pinned hash, an unreadable book, or a missing field is a denial.
public final class HRM: StageProcessor {
    public let stage = Stage.hrm
    public let track: Track
    public let shard: Shard
    let defaultEquity: Double
    /// ARK_INSTRUMENTS_FILE, read at start: the instruments that may trade.
    let instruments: InstrumentPolicy
    /// A rehearsed slow evaluation (`ARK_FAULT=hrm:evaluation=150ms`), in seconds.
    let evaluationStall: Double?
    private var rules: GraveyardWatch
    public var integrity: Graveyard.Integrity { rules.integrity }
    let evaluationTimer = Metrics.Timer(label: MetricName.hrmEvaluation)
    let driftGauge = Gauge(label: MetricName.ethicsDrift)
    let approvedCounter = Counter(label: MetricName.hrmDecisions, dimensions: [("decision", "approved")])
    /// Denials split by why: a rule the proposal itself breaks, or a portfolio limit reached.
    let deniedCounter = Counter(label: MetricName.hrmDecisions, dimensions: [("decision", "denied")])
    let limitDeniedCounter = Counter(label: MetricName.hrmLimitDenials)

    public init(config: ARKConfig, shard: Shard = .untagged) {
        self.shard = shard
        track = config.track
        defaultEquity = config.paperEquity
        instruments = InstrumentPolicy(file: config.instrumentsFile)
        evaluationStall = config.fault.flatMap { $0.stage == .hrm && $0.evaluationStallMs > 0 ? Double($0.evaluationStallMs) / 1000 : nil }
        rules = GraveyardWatch(directory: config.graveyardDir, checkSeconds: config.graveyardCheckSeconds)
        driftGauge.record(integrity.isIntact ? 0 : 1)
    }

    /// Re-hashes the rule file when the check interval has passed.
    func refreshIntegrity(logger: Logger) {
        let before = integrity.isIntact
        guard rules.refreshIfDue() else { return }
        driftGauge.record(integrity.isIntact ? 0 : 1)
        if before && !integrity.isIntact {
            logger.critical("Graveyard drift: denying every proposal", metadata: ["problem": .string(integrity.problem ?? "")])
        } else if !before && integrity.isIntact {
            logger.notice("Graveyard intact again: evaluating proposals")
        }
    }

    /// Drift is found within a check interval even when no signal is flowing.
    public func tick(context: BatchContext) throws {
        refreshIntegrity(logger: context.logger)
    }

    public func handle(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult {
        refreshIntegrity(logger: context.logger)
        // The default account's book and the trading states, as Redis read them right after
        // this batch arrived; entries recovered or taken over come without them, and read
        // them now. Other accounts' books are read in one more round trip, when there are any.
        let along = try context.readAlong ?? context.bus.connection.pipeline(readAlong)
        let trading = TradingStates(entries: along[1].hashEntries)
        var books: [String: Result<PortfolioSnapshot, BookProblem>] = [ShardLayout.defaultAccount: Self.book(from: along[0], defaultEquity: defaultEquity)]
        // Only a message of a named account has the key (the encoder leaves out `default`).
        let others = Array(Set(batch.lazy.compactMap { entry in
            entry.payload.flatMap { Self.namesAccount($0) ? ShardLayout.account(ofSignal: $0) : nil }
        }).subtracting([ShardLayout.defaultAccount])).sorted()
        if !others.isEmpty {
            let reply = try context.bus.connection.command(["HMGET", .text(shard.portfolio)] + others.map { .text(PortfolioHash.field(for: $0)) })
            if case .error(let e) = reply { throw RedisError.server(e) }
            for (account, value) in zip(others, reply.array ?? []) { books[account] = Self.book(from: value, defaultEquity: defaultEquity) }
        }
        var approvals: [String: BatchApprovals] = [:]
        var approved = 0, denied = 0, limited = 0
        defer {
            approvedCounter.increment(by: approved)
            deniedCounter.increment(by: denied)
            if limited > 0 { limitDeniedCounter.increment(by: limited) }
        }
        let portfolioRules = integrity.portfolioRuleIDs
        return try forwardEach(batch, context: context) { e in
            defer {
                if let d = e.decision {
                    if d.approved { approved += 1 } else { denied += 1 }
                    if !d.approved && d.violations.allSatisfy({ portfolioRules.contains($0.rule) }) { limited += 1 }
                    evaluationTimer.recordNanoseconds(d.evalNs)
                }
            }
            let book = books[e.account] ?? .success(PortfolioSnapshot(equity: defaultEquity))
            decide(&e, rules: integrity, book: book, trading: trading, approvals: &approvals[e.account, default: BatchApprovals()])
            return e.decision.map { [(.decision, EventCodec.json($0))] } ?? []
        }
    }

    /// Sets `e.decision`: the rules' verdict on the proposal, or a denial naming why the rules,
    /// the book or the trading state forbid it.
    func decide(_ e: inout Event, rules integrity: Graveyard.Integrity, book: Result<PortfolioSnapshot, BookProblem>,
                trading: TradingStates = TradingStates(), approvals: inout BatchApprovals) {
        switch (integrity, book) {
        case (.intact(let rules), .success(let snapshot)):
            let started = monotonicNanoseconds()
            if let evaluationStall { sleepThread(seconds: evaluationStall) }
            let held = snapshot.exposure[e.symbol] ?? 0
            let trades = e.action == "buy" || e.action == "sell"
            let adds = (e.action == "buy" && held >= 0) || (e.action == "sell" && held <= 0)
            // What the trading state and the instrument list refuse, before the rules.
            var stopped: [Violation] = []
            if let v = trading.violation(account: e.account, trades: trades, adds: adds) { stopped.append(v) }
            if trades, let v = instruments.violation(symbol: e.symbol) { stopped.append(v) }
            if trades && adds, let v = instruments.minNotionalViolation(symbol: e.symbol, notional: (e.positionSizePct ?? 0) * snapshot.equity) { stopped.append(v) }
            if !stopped.isEmpty {
                // Judged in full all the same, so the record lists every rule it broke, but
                // nothing is counted against this batch's limits.
                var scratch = BatchApprovals()
                var d = rules.evaluate(Proposal(e), book: snapshot, batch: &scratch)
                d.violations.insert(contentsOf: stopped, at: 0)
                d.approved = false
                d.evalNs = monotonicNanoseconds() - started
                e.decision = d
            } else {
                var d = rules.evaluate(Proposal(e), book: snapshot, batch: &approvals)
                if evaluationStall != nil { d.evalNs = monotonicNanoseconds() - started }
                e.decision = d
            }
        case (.intact(let rules), .failure(let problem)):
            e.decision = Graveyard.failClosed("portfolio unreadable: \(problem.description)", policyHash: rules.hash)
        case (.drifted(let actual, _), _):
            e.decision = Graveyard.failClosed(integrity.problem ?? "drift", policyHash: actual)
        case (.unreadable, _):
            e.decision = Graveyard.failClosed(integrity.problem ?? "unreadable", policyHash: "unavailable")
        }
    }

    public struct BookProblem: Error, CustomStringConvertible {
        public var description: String
    }

    static let accountKey = Array(#""account""#.utf8)

    /// Whether a message's bytes hold an `"account"` key at all (a byte search, before any
    /// parse: the default account's messages never do).
    static func namesAccount(_ payload: [UInt8]) -> Bool {
        let key = accountKey
        guard payload.count >= key.count else { return false }
        var i = 0
        let last = payload.count - key.count
        while i <= last {
            if payload[i] == 0x22 && payload[i + 1] == 0x61 {
                var k = 2
                while k < key.count && payload[i + k] == key[k] { k += 1 }
                if k == key.count { return true }
            }
            i += 1
        }
        return false
    }

    /// The default account's book and the trading states, read along with each batch.
    public var readAlong: [[RedisArg]] { [["HGET", .text(shard.portfolio), .text(PortfolioHash.defaultField)], ["HGETALL", .text(shard.trading)]] }

    /// An account's book (Kenny's, `PaperBook` JSON) as the portfolio rules read it; none yet:
    /// the starting equity. A book that cannot be read is a problem, and the account's
    /// proposals are denied (fail closed).
    static func book(from reply: RedisValue, defaultEquity: Double) -> Result<PortfolioSnapshot, BookProblem> {
        switch reply {
        case .error(let e): return .failure(BookProblem(description: e))
        case .bulk(let bytes):
            do {
                return .success(try PaperBook(json: bytes).snapshot)
            } catch {
                return .failure(BookProblem(description: error.description))
            }
        default: return .success(PortfolioSnapshot(equity: defaultEquity))
        }
    }
}
