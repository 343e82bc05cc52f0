import ARKBus
import ARKCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Graveyard
import Logging
import Metrics

/// HRM: the risk gate. Judges every proposal against the Graveyard and fails closed: a rule
/// file that drifted from its pinned hash, an unreadable book, or a missing field is a denial.
public final class HRM: StageProcessor {
    public let stage = Stage.hrm
    public let track: Track
    public let shard: Shard
    let defaultEquity: Double
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
        // The book Redis read right after this batch arrived; entries recovered or taken over
        // come without it, and read it now.
        let bookReply = try context.readAlong?.first ?? context.bus.connection.command(readBookCommand)
        let book = Self.book(from: bookReply, defaultEquity: defaultEquity)
        var approvals = BatchApprovals()
        var approved = 0, denied = 0, limited = 0
        defer {
            approvedCounter.increment(by: approved)
            deniedCounter.increment(by: denied)
            if limited > 0 { limitDeniedCounter.increment(by: limited) }
        }
        let portfolioRules = integrity.portfolioRuleIDs
        return try forwardEach(batch, context: context, to: .kenny) { e in
            defer {
                if let d = e.decision {
                    if d.approved { approved += 1 } else { denied += 1 }
                    if !d.approved && d.violations.allSatisfy({ portfolioRules.contains($0.rule) }) { limited += 1 }
                    evaluationTimer.recordNanoseconds(d.evalNs)
                }
            }
            decide(&e, rules: integrity, book: book, approvals: &approvals)
            return e.decision.map { [(.decision, EventCodec.json($0))] } ?? []
        }
    }

    /// Sets `e.decision`: the rules' verdict on the proposal, or a denial naming why the rules
    /// or the book cannot be trusted.
    func decide(_ e: inout Event, rules integrity: Graveyard.Integrity, book: Result<PortfolioSnapshot, BookProblem>, approvals: inout BatchApprovals) {
        switch (integrity, book) {
        case (.intact(let rules), .success(let snapshot)):
            if let evaluationStall {
                let started = monotonicNanoseconds()
                sleepThread(seconds: evaluationStall)
                var d = rules.evaluate(Proposal(e), book: snapshot, batch: &approvals)
                d.evalNs = monotonicNanoseconds() - started
                e.decision = d
            } else {
                e.decision = rules.evaluate(Proposal(e), book: snapshot, batch: &approvals)
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

    public var readAlong: [[RedisArg]] { [readBookCommand] }

    private var readBookCommand: [RedisArg] { ["HGETALL", .text(shard.portfolio)] }

    /// Kenny's published book from its HGETALL reply. A malformed book is returned as a
    /// problem, which makes the batch fail closed.
    static func book(from reply: RedisValue, defaultEquity: Double) -> Result<PortfolioSnapshot, BookProblem> {
        if case .error(let e) = reply { return .failure(BookProblem(description: e)) }
        guard let items = reply.array else { return .failure(BookProblem(description: "not a hash")) }
        let fields = stride(from: 0, to: items.count - 1, by: 2).map { (items[$0].string ?? "", items[$0 + 1].string ?? "") }
        var problem = ""
        guard let snapshot = PortfolioSnapshot(published: fields, defaultEquity: defaultEquity, problem: &problem) else {
            return .failure(BookProblem(description: problem))
        }
        return .success(snapshot)
    }
}
