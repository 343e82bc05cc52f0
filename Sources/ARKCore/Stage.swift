// The five stages, the pipeline's topology and the whole system's Redis keys.

/// The five pipeline stages, in trace order. The raw value is the name operators see
/// (logs, `ark agent <name>`, hops, consumer groups).
public enum Stage: String, Sendable, CaseIterable, Comparable {
    case kyle = "Kyle"
    case joey = "Joey"
    case hrm = "HRM"
    case kenny = "Kenny"
    case aletheia = "Aletheia"

    /// Position in the pipeline; a trace's hops must appear in this order.
    public var order: Int {
        switch self {
        case .kyle: 0
        case .joey: 1
        case .hrm: 2
        case .kenny: 3
        case .aletheia: 4
        }
    }

    /// The stream this stage consumes on the baseline track.
    public var inputStream: String { inputStream(on: .baseline) }

    /// Consumer group name: the stage name (DESIGN §2).
    public var group: String { rawValue }

    /// Accepts "kyle", "Kyle", "KYLE", "hrm" and so on.
    public init?(name: String) {
        guard let stage = Stage.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
            return nil
        }
        self = stage
    }

    public static func < (lhs: Stage, rhs: Stage) -> Bool { lhs.order < rhs.order }

    // MARK: topology (docs/architecture.md §2): the one place that says where events go

    /// Where this stage sends an event: the next stage in order, except that Kyle sends a
    /// rejected signal straight to Aletheia; nil for Aletheia, which only records.
    public func next(rejected: Bool = false) -> Stage? {
        switch self {
        case .kyle: rejected ? .aletheia : .joey
        case .joey: .hrm
        case .hrm: .kenny
        case .kenny: .aletheia
        case .aletheia: nil
        }
    }

    /// Every stage this one writes to: while one's backlog is over its bound, this stage takes
    /// no input (back-pressure).
    public var downstream: [Stage] {
        Array(Set([next(rejected: false), next(rejected: true)].compactMap { $0 })).sorted()
    }

    /// The hops an event carries when it reaches Aletheia, in order: every stage before it,
    /// or Kyle's alone for a rejected signal.
    public static func expectedHops(rejected: Bool) -> [Stage] {
        var hops: [Stage] = []
        var stage: Stage? = .kyle
        while let s = stage, s != .aletheia {
            hops.append(s)
            stage = s.next(rejected: rejected)
        }
        return hops
    }

    /// The raw value as a literal, for matching bytes without making a string.
    public var staticName: StaticString {
        switch self {
        case .kyle: "Kyle"
        case .joey: "Joey"
        case .hrm: "HRM"
        case .kenny: "Kenny"
        case .aletheia: "Aletheia"
        }
    }
}

/// The whole system's keys, and the default (untagged) shard's names of the per-shard ones
/// (`Shard` gives every shard's).
public enum Streams {
    /// Entries that could not be processed: the reason and the original payload.
    public static let deadLetter = Shard.untagged.deadLetter
    /// Kenny's paper book, read by HRM for the portfolio rules.
    public static let portfolio = Shard.untagged.portfolio
    /// Kenny's orders by trace id: the idempotency record.
    public static let orders = Shard.untagged.orders
    /// Heartbeats of every instance, a hash field per instance.
    public static let heartbeats = "ark:heartbeats"
    /// Instances the watchdog took out of rotation, a hash field per instance (JSON: stage,
    /// reason, since). Agents read it every heartbeat: a listed instance stops taking entries
    /// and the healthy ones of its stage take over its pending ones.
    public static let quarantine = "ark:quarantine"
    /// Prefix of each process's Prometheus exposition (`ark:metrics:<host>-<pid>`, expiring),
    /// which the metrics server merges into one `/metrics`.
    public static let metricsPrefix = "ark:metrics:"
    /// The canary split the baseline Kyle applies (see CanaryRoute), and the route version
    /// each routing Kyle instance has applied, a hash field per instance.
    public static let canaryRoute = "ark:canary:route"
    public static let canaryRouteSeen = "ark:canary:route:seen"
    /// The newest signed audit checkpoint (JSON), a copy outside the state store that
    /// `ark verify-audit` holds the store to.
    public static let auditCheckpoint = "ark:audit:checkpoint"
    /// The newest head each witness cosigned (a hash, by witness key id): what `/healthz`
    /// and Aletheia's hold (ARK_WITNESS_HOLD) read; written by the API for `ark witness`.
    public static let auditCosignatures = "ark:audit:cosignatures"
}
