// The records the store keeps: passes, orders, dead letters, trading states and heartbeats.

import ARKCore

/// How a pass ended.
public enum Verdict: String, Sendable, CaseIterable {
    /// HRM approved; Kenny filled (or held).
    case approved
    /// HRM denied.
    case denied
    /// Kyle refused the input; a correct rejection is a successful pass.
    case rejected
    /// The pass completed but broke trace continuity.
    case error
    /// An entry of this trace went to the dead letter stream.
    case deadlettered

    /// Whether the pass counts against availability.
    public var isFailure: Bool { self == .error || self == .deadlettered }
}

/// One trace's outcome, as Aletheia writes it: one row, which is also the audit record.
public struct PassRecord: Sendable, Equatable {
    public var traceID: String
    public var signalID: String
    public var symbol: String
    public var source: String
    public var verdict: Verdict
    public var reasons: [String]
    public var policyHash: String?
    public var complianceScore: Double?
    public var t0Ns: Int64
    public var doneNs: Int64
    public var hrmEvalUs: Double?
    public var continuityOK: Bool
    public var injectedViolation: String?
    public var orderID: String?
    /// The final event in canonical JSON (the `event` the audit record embeds).
    public var event: [UInt8]
    /// Each stage's processing time (hop in → out), for the per-stage latency rollups.
    public var stageTimes: [StageTime] = []
    /// The track the trace ran on (a canary trace's event says so too, inside the chain).
    public var track: Track = .baseline

    public var latencyMs: Double { Double(elapsedNanoseconds(from: t0Ns, to: doneNs)) / 1e6 }

    public init(traceID: String, signalID: String, symbol: String, source: String, verdict: Verdict, reasons: [String], policyHash: String?, complianceScore: Double?, t0Ns: Int64, doneNs: Int64, hrmEvalUs: Double?, continuityOK: Bool, injectedViolation: String?, orderID: String?, event: [UInt8]) {
        self.traceID = traceID
        self.signalID = signalID
        self.symbol = symbol
        self.source = source
        self.verdict = verdict
        self.reasons = reasons
        self.policyHash = policyHash
        self.complianceScore = complianceScore
        self.t0Ns = t0Ns
        self.doneNs = doneNs
        self.hrmEvalUs = hrmEvalUs
        self.continuityOK = continuityOK
        self.injectedViolation = injectedViolation
        self.orderID = orderID
        self.event = event
    }

    /// A pass whose columns are read from `event` as Aletheia reads them, so `verifyAudit`
    /// finds each one in the hashed record: for passes written without the pipeline (test
    /// fixtures, `ark bench slos`). The event is taken as its wire form decodes.
    public init(auditing event: Event, verdict: Verdict, reasons: [String], t0Ns: Int64, doneNs: Int64) {
        let bytes = EventCodec.encode(event)
        let e = (try? EventCodec.decode(bytes)) ?? event
        let decided = verdict == .deadlettered ? nil : e.decision
        let filled = verdict != .deadlettered && e.execution?.status == .filled
        self.init(traceID: e.traceID, signalID: e.id, symbol: e.symbol, source: e.source, verdict: verdict, reasons: reasons,
                  policyHash: decided?.policyHash, complianceScore: decided?.complianceScore, t0Ns: t0Ns, doneNs: doneNs,
                  hrmEvalUs: decided.map { Double($0.evalNs) / 1000 },
                  continuityOK: verdict != .deadlettered && !reasons.contains { $0.hasPrefix("continuity: ") },
                  injectedViolation: e.injectedViolation, orderID: filled ? e.execution?.orderID : nil, event: bytes)
    }

    /// The audited record, the pass's leaf in the audit tree: verdict, reasons, times and the whole event.
    public func auditRecord() -> [UInt8] {
        var w = JSONWriter(capacity: event.count + 256)
        w.beginObject()
        w.key("trace_id"); w.string(traceID)
        w.key("verdict"); w.string(verdict.rawValue)
        w.key("reasons")
        w.beginArray()
        for r in reasons { w.string(r) }
        w.endArray()
        w.key("t0_ns"); w.int(t0Ns)
        w.key("done_ns"); w.int(doneNs)
        w.key("event")
        if event.isEmpty { w.null() } else { w.raw(event) }
        w.endObject()
        return w.bytes
    }
}

/// SQL for the columns of `passes` a reader must not take as stored.
public enum PassColumns {
    /// A pass's reasons as a JSON array: its audited record's. Passes recorded before the
    /// lean record also kept them in the `reasons` column; since, it is empty.
    public static let reasons = "CASE WHEN reasons = '' THEN json_extract(record, '$.reasons') ELSE reasons END"
}

/// How long one stage held a trace, from its hop.
public struct StageTime: Sendable, Equatable {
    public var stage: Stage
    public var micros: Double

    public init(stage: Stage, micros: Double) {
        self.stage = stage
        self.micros = micros
    }
}

/// Where the rollups draw their lines: a pass later than `passTimeoutMs` failed; the
/// latency SLOs count passes over their thresholds, so burn rates are plain sums.
public struct RollupThresholds: Sendable, Equatable {
    public var passTimeoutMs: Double
    public var latencySLOMs: Double
    public var hrmSLOMs: Double

    /// HRM's evaluation SLO (DESIGN §5): p95 ≤ 120 ms.
    public static let hrmEvaluationSLOMs = 120.0

    public init(passTimeoutMs: Double = 5_000, latencySLOMs: Double = 400, hrmSLOMs: Double = RollupThresholds.hrmEvaluationSLOMs) {
        self.passTimeoutMs = passTimeoutMs
        self.latencySLOMs = latencySLOMs
        self.hrmSLOMs = hrmSLOMs
    }

    public init(config: ARKConfig) {
        self.init(passTimeoutMs: config.passTimeoutMs, latencySLOMs: config.sloP95LatencyMs)
    }
}

/// One latency histogram per stage, stored as one blob: for each stage in `Stage.allCases`
/// order, a little-endian UInt32 length and that stage's encoded `LogHistogram`. Stage
/// histograms are `coarse` (3%): at 128 buckets per power of two a busy second's blob was
/// 20 KB, rewritten by every batch; they diagnose, the SLOs use the fine pass histograms.
public struct StageHistograms: Sendable, Equatable {
    public static let resolution = LogHistogram.Resolution.coarse
    public private(set) var histograms: [LogHistogram]

    public init() {
        histograms = Array(repeating: LogHistogram(Self.resolution), count: Stage.allCases.count)
    }

    public subscript(stage: Stage) -> LogHistogram { histograms[Self.index(stage)] }

    static func index(_ stage: Stage) -> Int { Stage.allCases.firstIndex(of: stage)! }

    public mutating func record(_ stage: Stage, micros: Double) { histograms[Self.index(stage)].record(micros: micros) }

    public mutating func merge(_ other: StageHistograms) {
        for i in histograms.indices { histograms[i].merge(other.histograms[i]) }
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        for h in histograms {
            let lengthAt = out.count
            out.append(contentsOf: [0, 0, 0, 0])
            if h.total > 0 { h.encode(into: &out) }
            let n = UInt32(out.count - lengthAt - 4)
            for i in 0..<4 { out[lengthAt + i] = UInt8(truncatingIfNeeded: n >> (8 * UInt32(i))) }
        }
        return out
    }

    /// Reads `encoded()`; `stored` is the resolution the blob was written at (schema v2
    /// wrote fine ones), and the result is always at `resolution`.
    public init(encoded bytes: [UInt8], stored: LogHistogram.Resolution = Self.resolution) {
        self.init()
        var i = 0
        for s in histograms.indices {
            guard i + 4 <= bytes.count else { return }
            let n = Int(bytes[i]) | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 24
            i += 4
            guard i + n <= bytes.count else { return }
            if n > 0 {
                let h = LogHistogram(encoded: bytes[i..<(i + n)], stored)
                histograms[s] = stored == Self.resolution ? h : h.resampled(to: Self.resolution)
            }
            i += n
        }
    }
}

/// A paper order Kenny filled.
public struct OrderRecord: Sendable, Equatable {
    public var orderID: String
    public var traceID: String
    public var symbol: String
    public var side: String
    public var quantity: Double
    public var price: Double
    public var notional: Double
    public var realizedPnl: Double
    public var tsNs: Int64

    /// The order of a filled execution, as Aletheia records it.
    public init?(filled e: Event, tsNs: Int64) {
        guard let x = e.execution, x.status == .filled, let id = x.orderID else { return nil }
        self.init(orderID: id, traceID: e.traceID, symbol: e.symbol, side: x.side ?? "", quantity: x.quantity, price: x.price, notional: x.notional,
                  realizedPnl: x.realizedPnl, tsNs: tsNs)
    }

    public init(orderID: String, traceID: String, symbol: String, side: String, quantity: Double, price: Double, notional: Double, realizedPnl: Double, tsNs: Int64) {
        self.orderID = orderID
        self.traceID = traceID
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.price = price
        self.notional = notional
        self.realizedPnl = realizedPnl
        self.tsNs = tsNs
    }
}

/// An entry of `ark:deadletter`, as recorded.
public struct DeadLetterRecord: Sendable, Equatable {
    /// Id of the entry in `ark:deadletter` (unique: recording it twice is a no-op).
    public var deadLetterID: String
    public var stream: String
    public var entryID: String
    public var group: String
    public var consumer: String
    public var reason: String
    public var payload: [UInt8]
    public var deliveries: Int
    public var traceID: String?
    public var tsNs: Int64

    public init(deadLetterID: String, stream: String, entryID: String, group: String, consumer: String, reason: String, payload: [UInt8], deliveries: Int, traceID: String?, tsNs: Int64) {
        self.deadLetterID = deadLetterID
        self.stream = stream
        self.entryID = entryID
        self.group = group
        self.consumer = consumer
        self.reason = reason
        self.payload = payload
        self.deliveries = deliveries
        self.traceID = traceID
        self.tsNs = tsNs
    }
}

/// A change of trading state (ACTIVE, REDUCING, HALTED) as set in a shard's trading hash and
/// sent to Aletheia beside it: who, when, why, from what state. A leaf of the audit log.
public struct TradingStateRecord: Sendable, Equatable {
    /// The stream and id of the entry that brought it (unique: recording it twice is a no-op).
    public var controlID: String
    public var shard: String
    /// `global` or `account:<name>`.
    public var scope: String
    public var mode: String
    public var from: String
    public var reason: String
    public var by: String
    public var atNs: Int64

    public init(controlID: String, shard: String, scope: String, mode: String, from: String, reason: String, by: String, atNs: Int64) {
        self.controlID = controlID
        self.shard = shard
        self.scope = scope
        self.mode = mode
        self.from = from
        self.reason = reason
        self.by = by
        self.atNs = atNs
    }
}

/// The watchdog's standing of one instance, kept in the state store so a restarted watchdog
/// carries on where it stopped.
public struct WatchdogInstanceRecord: Sendable, Equatable {
    public var instance: String
    public var stage: String
    /// healthy, quarantined or probation.
    public var status: String
    public var offences: Int
    /// When the status last changed.
    public var sinceNs: Int64
    /// Quarantined: the earliest automatic release.
    public var releaseAtNs: Int64
    /// On probation: its end.
    public var probationUntilNs: Int64
    public var reason: String

    public init(instance: String, stage: String, status: String, offences: Int, sinceNs: Int64, releaseAtNs: Int64, probationUntilNs: Int64, reason: String) {
        self.instance = instance
        self.stage = stage
        self.status = status
        self.offences = offences
        self.sinceNs = sinceNs
        self.releaseAtNs = releaseAtNs
        self.probationUntilNs = probationUntilNs
        self.reason = reason
    }
}

/// Something the watchdog did (or was asked to do): who, what, why, with the figures.
public struct WatchdogEventRecord: Sendable, Equatable {
    public var instance: String
    public var stage: String
    /// quarantine, release, withheld or forget.
    public var action: String
    public var reason: String
    /// The figures behind it, JSON.
    public var figures: String
    /// watchdog, or operator for a release by command.
    public var by: String
    public var tsNs: Int64

    public init(instance: String, stage: String, action: String, reason: String, figures: String, by: String, tsNs: Int64) {
        self.instance = instance
        self.stage = stage
        self.action = action
        self.reason = reason
        self.figures = figures
        self.by = by
        self.tsNs = tsNs
    }
}
