// The event every stage passes on: the signal, its hops, decision, execution or rejection.

/// One stage's handling of a trace: who, and when it took the entry in and put it out.
public struct Hop: Sendable, Equatable {
    public var stage: Stage
    public var instance: String
    public var inNs: Int64
    public var outNs: Int64

    public init(stage: Stage, instance: String, inNs: Int64, outNs: Int64) {
        self.stage = stage
        self.instance = instance
        self.inNs = inNs
        self.outNs = outNs
    }
}

public enum Severity: String, Sendable, Equatable, CaseIterable, Comparable {
    case low = "LOW"
    case medium = "MEDIUM"
    case high = "HIGH"
    case critical = "CRITICAL"

    var rank: Int {
        switch self {
        case .low: 0
        case .medium: 1
        case .high: 2
        case .critical: 3
        }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }

    /// The raw value as a literal, for matching bytes without making a string.
    var staticName: StaticString {
        switch self {
        case .low: "LOW"
        case .medium: "MEDIUM"
        case .high: "HIGH"
        case .critical: "CRITICAL"
        }
    }
}

/// A rule that did not hold, with the figures that broke it.
public struct Violation: Sendable, Equatable {
    public var rule: String
    public var severity: Severity
    public var message: String
    /// The field checked (or the book figure), its value and the rule's limit, where they apply.
    public var field: String?
    public var value: Double?
    public var limit: Double?

    public init(rule: String, severity: Severity, message: String, field: String? = nil, value: Double? = nil, limit: Double? = nil) {
        self.rule = rule
        self.severity = severity
        self.message = message
        self.field = field
        self.value = value
        self.limit = limit
    }
}

/// HRM's verdict on a proposal. Every decision names the rule set that made it.
public struct Decision: Sendable, Equatable {
    public var approved: Bool
    public var violations: [Violation]
    public var warnings: [Violation]
    public var rulesChecked: Int
    public var complianceScore: Double
    public var policyHash: String
    /// Time spent evaluating the rules, in nanoseconds.
    public var evalNs: Int64

    public init(approved: Bool, violations: [Violation], warnings: [Violation], rulesChecked: Int, complianceScore: Double, policyHash: String, evalNs: Int64) {
        self.approved = approved
        self.violations = violations
        self.warnings = warnings
        self.rulesChecked = rulesChecked
        self.complianceScore = complianceScore
        self.policyHash = policyHash
        self.evalNs = evalNs
    }
}

/// What Kenny did with a decision.
public struct Execution: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable {
        /// A paper order was filled.
        case filled
        /// No order: denied, or a hold.
        case none
        /// The trace already had an order (a redelivery); the original is reported.
        case duplicate
        /// Approved by HRM, refused at execution: filling it would break a portfolio limit of
        /// the book as it is now (`violations` say which and by how much).
        case limited
    }

    public var status: Status
    public var orderID: String?
    public var side: String?
    public var quantity: Double
    public var price: Double
    public var notional: Double
    /// Net position in the symbol after this execution.
    public var positionAfter: Double
    /// Profit or loss realised by this order or by stops/targets this price triggered.
    public var realizedPnl: Double
    /// Why a `limited` execution was refused: the portfolio rules the fill would have broken.
    public var violations: [Violation] = []
    /// The account book's sequence number after this execution, present when the execution
    /// changed the book (a fill, or an approved price that marked it): the audit's record of
    /// the book's history, 1, 2, 3 … per account, which `ark reconcile` and `ark book
    /// rebuild` fold in order.
    public var seq: Int64?

    public init(status: Status, orderID: String? = nil, side: String? = nil, quantity: Double = 0, price: Double = 0, notional: Double = 0, positionAfter: Double = 0, realizedPnl: Double = 0, violations: [Violation] = []) {
        self.violations = violations
        self.status = status
        self.orderID = orderID
        self.side = side
        self.quantity = quantity
        self.price = price
        self.notional = notional
        self.positionAfter = positionAfter
        self.realizedPnl = realizedPnl
    }
}

/// Why Kyle refused a signal, and what it was sent.
public struct Rejection: Sendable, Equatable {
    public var reasons: [String]
    /// The payload as received, base64, cut to `Rejection.maxRawBytes`.
    public var rawBase64: String
    /// The size of the payload as received.
    public var rawBytes: Int

    public static let maxRawBytes = 4096

    public init(reasons: [String], rawBase64: String, rawBytes: Int) {
        self.reasons = reasons
        self.rawBase64 = rawBase64
        self.rawBytes = rawBytes
    }
}

/// The message every stage passes on: the signal, the proposal fields, the hops so far and,
/// as the trace advances, the decision and the execution (DESIGN §2).
public struct Event: Sendable, Equatable {
    public var traceID: String
    public var id: String
    public var symbol: String
    public var price: Double
    public var volume: Double
    public var ts: Double
    public var source: String
    public var t0Ns: Int64
    public var action: String?
    public var positionSizePct: Double?
    public var leverage: Double?
    public var stopLoss: Double?
    public var riskRewardRatio: Double?
    /// What the producer says the trade is for; HRM's manipulation rule reads it.
    public var intent: String?
    /// Synthetic traffic only: the rule this signal was built to break.
    public var injectedViolation: String?
    /// The account whose book the trade is for (`default` when the producer named none).
    public var account: String = ShardLayout.defaultAccount
    /// The track Kyle routed the trace to; it stays there to the end (see CanaryRoute).
    public var track: Track = .baseline
    public var hops: [Hop]
    public var decision: Decision?
    public var execution: Execution?
    public var rejection: Rejection?

    public init(
        traceID: String, id: String, symbol: String, price: Double, volume: Double, ts: Double,
        source: String, t0Ns: Int64, action: String? = nil, positionSizePct: Double? = nil,
        leverage: Double? = nil, stopLoss: Double? = nil, riskRewardRatio: Double? = nil,
        intent: String? = nil, injectedViolation: String? = nil, hops: [Hop] = [],
        decision: Decision? = nil, execution: Execution? = nil, rejection: Rejection? = nil
    ) {
        self.traceID = traceID
        self.id = id
        self.symbol = symbol
        self.price = price
        self.volume = volume
        self.ts = ts
        self.source = source
        self.t0Ns = t0Ns
        self.action = action
        self.positionSizePct = positionSizePct
        self.leverage = leverage
        self.stopLoss = stopLoss
        self.riskRewardRatio = riskRewardRatio
        self.intent = intent
        self.injectedViolation = injectedViolation
        self.hops = hops
        self.decision = decision
        self.execution = execution
        self.rejection = rejection
    }
}
