// Aletheia, the audit stage: checks each trace's continuity and records every outcome in the
// store.

import ARKBus
import ARKCore
import ARKRisk
import ARKStoreWriter
import Metrics
import Synchronization

/// Checks that a trace passed every stage it should have, in order, with times that only
/// move forward. Pure. Returns the problems; none means the trace is continuous.
public func continuityProblems(_ e: Event) -> [String] {
    var problems: [String] = []
    let expected = Stage.expectedHops(rejected: e.rejection != nil)
    let actual = e.hops.map(\.stage)
    if actual != expected {
        let missing = expected.filter { !actual.contains($0) }
        if !missing.isEmpty { problems.append("missing hops: \(missing.map(\.rawValue).joined(separator: ", "))") }
        if missing.isEmpty || actual.count != expected.count - missing.count {
            problems.append("hops are \(actual.map(\.rawValue).joined(separator: "→")), expected \(expected.map(\.rawValue).joined(separator: "→"))")
        }
    }
    var previousOut: Int64 = e.hops.first?.inNs ?? 0
    for h in e.hops {
        if h.outNs < h.inNs { problems.append("\(h.stage.rawValue) put the entry out before it took it in") }
        if h.inNs < previousOut { problems.append("\(h.stage.rawValue) took the entry in before the previous stage put it out") }
        previousOut = h.outNs
    }
    if e.rejection == nil {
        if e.decision == nil { problems.append("no decision from HRM") }
        if e.execution == nil { problems.append("no execution report from Kenny") }
    }
    return problems
}

/// Aletheia: the audit. The only writer of outcomes: for each batch it checks every trace's
/// continuity and writes the passes, orders and dead letters (the leaves of the audit tree,
/// whose head it signs once a second) and per-second rollups in one SQLite transaction, then
/// acknowledges. It also records the dead letter
/// stream, so every entry any stage gave up on is in the state store with its reason.
public final class Aletheia: StageProcessor {
    public let stage = Stage.aletheia
    public let track: Track
    public let shard: Shard
    /// The dead letter stream is shared by both tracks and recorded by the baseline only.
    public var inputStreams: [String] {
        track == .baseline ? [shard.stream(.aletheia), shard.deadLetter] : [shard.stream(.aletheia, on: .canary)]
    }
    /// One store for every shard this process serves, each shard's agent writing in turn.
    let shared: SharedOutcomeWriter
    let thresholds: RollupThresholds
    let passLatency = Metrics.Timer(label: MetricName.passLatency)
    let verdictCounters = Dictionary(uniqueKeysWithValues: Verdict.allCases.map { ($0, Counter(label: MetricName.passes, dimensions: [("verdict", $0.rawValue)])) })

    /// The audit's newest execution sequence number of each account of this shard: what
    /// Kenny's books must have reached. Loaded from the store at the first tick, kept with
    /// every batch, and published every tick (`Shard.ledger`, `head:<account>`), so after a
    /// failover that lost a window of book writes Kenny finds its book behind the audit and
    /// has it restored before it fills again.
    private var heads: [String: Int64]?
    private var headsPublished: [String: Int64] = [:]
    private var headsPublishedNs: Int64 = 0

    /// ARK_WITNESS_HOLD's witnesses and lag, and the last look (nil: no hold).
    struct WitnessHold {
        var keys: [Ed25519.PublicKey]
        var maxLagNs: Int64
        var lookedNs: Int64 = 0
        var reason: String?
    }
    private var witnessHold: WitnessHold?
    private var holdReader: AuditReader?
    /// METRICS_RETENTION_SECONDS, at least the longest SLO window; and the last prune.
    let rollupRetentionSeconds: Int64
    private var prunedNs: Int64 = 0

    /// For restoring the books from the audit (`LedgerRecovery`).
    let storePath: String
    let startingEquity: Double
    let layout: ShardLayout

    public init(store: SharedOutcomeWriter, config: ARKConfig, shard: Shard = .untagged) throws {
        if config.witnessHold && !config.witnessKeys.isEmpty {
            witnessHold = WitnessHold(keys: try WitnessKeys.load(config.witnessKeys), maxLagNs: Int64(config.witnessMaxLagSeconds) * 1_000_000_000)
        }
        self.shared = store
        self.shard = shard
        self.track = config.track
        self.thresholds = RollupThresholds(config: config)
        storePath = config.stateDB
        startingEquity = config.paperEquity
        layout = config.shardLayout
        rollupRetentionSeconds = Int64(config.rollupRetentionSeconds)
    }

    public func handle(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult {
        var passes: [PassRecord] = []
        passes.reserveCapacity(batch.count)
        var orders: [OrderRecord] = []
        var deadRecords: [DeadLetterRecord] = []
        var tradingStates: [TradingStateRecord] = []
        var toDeadLetter: [DeadLetter] = []
        var sequenced: [(account: String, seq: Int64)] = []
        var failed = 0
        for entry in batch {
            if entry.stream == shard.deadLetter {
                let (record, pass) = Self.deadLetterRecords(entry, nowNs: context.readNs)
                deadRecords.append(record)
                if let pass { passes.append(pass) }
                failed += 1
                continue
            }
            if entry.payload == nil, let control = entry.otherFields[TradingStateStore.controlField] {
                // A trading state change, set beside this entry in the same transaction.
                do throws(TradingControl.Unreadable) {
                    let c = try TradingControl(json: Array(control.utf8))
                    tradingStates.append(TradingStateRecord(
                        controlID: entry.stream + "/" + entry.id, shard: shard.description, scope: c.scope.field, mode: c.mode.rawValue,
                        from: c.from.rawValue, reason: c.reason, by: c.by, atNs: c.atNs))
                } catch {
                    toDeadLetter.append(DeadLetter(entry: entry, reason: "cannot read the trading state change: \(error.description)"))
                }
                continue
            }
            var e: Event
            let layout: EventLayout
            switch decodeStageMessage(entry, keeping: .all) {
            case .failure(let d):
                toDeadLetter.append(d)  // recorded when it comes back from ark:deadletter
                continue
            case .success(let decoded):
                (e, layout) = decoded
            }
            let problems = continuityProblems(e)
            let doneNs = wallClockNanoseconds()
            let hop = Hop(stage: .aletheia, instance: context.instance, inNs: context.readNs, outNs: doneNs)
            // The record is the bytes Kenny wrote plus this hop: no second encoding.
            let record = layout.splice(entry.payload ?? [], setting: [], appending: hop)
            e.hops.append(hop)
            let verdict: Verdict
            var reasons: [String]
            if !problems.isEmpty {
                verdict = .error
                reasons = problems.map { "continuity: " + $0 }
                failed += 1
            } else if let r = e.rejection {
                verdict = .rejected
                reasons = r.reasons
            } else if e.decision?.approved == true, let x = e.execution, x.status == .limited {
                // Approved by HRM against the book it read, refused by Kenny against the book
                // as it was at the fill: a portfolio limit reached, with the book's figures.
                verdict = .denied
                reasons = x.violations.map { "\($0.rule) [\($0.severity.rawValue)]: \($0.message) (at execution, Kenny)" }
            } else if e.decision?.approved == true {
                verdict = .approved
                reasons = e.decision?.warnings.map { "warning \($0.rule): \($0.message)" } ?? []
            } else {
                verdict = .denied
                reasons = e.decision?.violations.map { "\($0.rule) [\($0.severity.rawValue)]: \($0.message)" } ?? []
            }
            var orderID: String?
            if let order = OrderRecord(filled: e, tsNs: e.hops.first { $0.stage == Stage.kenny }?.outNs ?? doneNs) {
                orderID = order.orderID
                orders.append(order)
            }
            var pass = PassRecord(
                traceID: e.traceID, signalID: e.id, symbol: e.symbol, source: e.source, verdict: verdict, reasons: reasons,
                policyHash: e.decision?.policyHash, complianceScore: e.decision?.complianceScore, t0Ns: e.t0Ns, doneNs: doneNs,
                hrmEvalUs: e.decision.map { Double($0.evalNs) / 1000 }, continuityOK: problems.isEmpty,
                injectedViolation: e.injectedViolation, orderID: orderID,
                event: record)
            pass.stageTimes = e.hops.map { StageTime(stage: $0.stage, micros: Double(elapsedNanoseconds(from: $0.inNs, to: $0.outNs)) / 1000) }
            pass.track = e.track
            passes.append(pass)
            if let seq = e.execution?.seq, e.execution?.status != .duplicate, problems.isEmpty { sequenced.append((e.account, seq)) }
        }
        do {
            _ = try shared.withWriter { try $0.record(passes: passes, orders: orders, deadLetters: deadRecords, tradingStates: tradingStates, thresholds: thresholds) }
        } catch {
            throw StoreUnavailable(error) ?? error
        }
        var byVerdict: [Verdict: Int] = [:]
        for p in passes {
            byVerdict[p.verdict, default: 0] += 1
            if p.verdict != .deadlettered { passLatency.recordNanoseconds(elapsedNanoseconds(from: p.t0Ns, to: p.doneNs)) }
        }
        for (v, n) in byVerdict { verdictCounters[v]?.increment(by: n) }
        if heads != nil {
            for (account, seq) in sequenced where seq > heads![account] ?? 0 { heads![account] = seq }
        }
        try context.bus.commit(outputs: [], deadLetters: toDeadLetter, acks: batch)
        return BatchResult(processed: batch.count - failed - toDeadLetter.count - tradingStates.count, failed: failed + toDeadLetter.count)
    }

    /// The record of a dead letter entry and, when its trace can be identified, a pass that
    /// counts it as failed.
    static func deadLetterRecords(_ entry: StreamEntry, nowNs: Int64) -> (DeadLetterRecord, PassRecord?) {
        let f = entry.otherFields
        let payload = entry.payload ?? []
        let origin = f["stream"] ?? "?"
        let originID = f["entry_id"] ?? "?"
        // Which event of an envelope it was, if it was one.
        let originIndex = f[StreamBus.eventIndexField].flatMap { Int($0) }
        var traceID: String?
        var t0 = nowNs
        // What the pass's audited record holds: every column of the pass is read from it.
        var audited: Event?
        // A dead letter that killed or stalled Aletheia again and again is kept as it came,
        // without decoding (StageAgent sets recordRaw), so the crash loop ends here.
        let decoded = entry.recordRaw ? nil : try? EventCodec.decode(payload)
        audited = decoded
        if let e = decoded {
            traceID = e.traceID
            t0 = e.t0Ns
        } else if entry.recordRaw {
            if isKyleInput(origin) {
                traceID = SignalValidator.derivedTraceID(entryID: originID, index: originIndex)
            }
        } else if isKyleInput(origin) {
            // Kyle's input never reached validation; Kyle would have named it after the entry.
            if case .accepted(let e) = SignalValidator().validate(payload, fallbackTraceID: SignalValidator.derivedTraceID(entryID: originID, index: originIndex), nowNs: nowNs) {
                audited = e
                traceID = e.traceID
            } else {
                traceID = SignalValidator.derivedTraceID(entryID: originID, index: originIndex)
            }
            // The entry id's milliseconds, when the field holds a real entry id.
            if let ms = StreamEntry(stream: origin, id: originID, payload: nil).idMilliseconds,
               case let (ns, overflow) = ms.multipliedReportingOverflow(by: 1_000_000), !overflow, plausibleNanoseconds.contains(ns) {
                t0 = ns
            }
        }
        var reason = f["reason"] ?? "no reason recorded"
        if entry.recordRaw { reason += " (recorded without decoding: handling it killed or stalled Aletheia \(entry.deliveries - 1) times)" }
        let record = DeadLetterRecord(
            // An event of an envelope is named as `StreamEntry.key` names it: `<entry id>/<index>`.
            deadLetterID: entry.id, stream: origin, entryID: originID + (originIndex.map { "/\($0)" } ?? ""), group: f["group"] ?? "", consumer: f["consumer"] ?? "",
            reason: reason, payload: payload, deliveries: Int(f["deliveries"] ?? "").map { max(0, $0) } ?? 0, traceID: traceID, tsNs: Int64(f["ts_ns"] ?? "").flatMap { plausibleNanoseconds.contains($0) ? $0 : nil } ?? nowNs)
        guard let traceID else { return (record, nil) }
        var pass = PassRecord(
            traceID: traceID, signalID: audited?.id ?? "", symbol: audited?.symbol ?? "", source: audited?.source ?? "", verdict: .deadlettered,
            reasons: ["dead-lettered from \(origin) (\(f["group"] ?? "?")): \(reason)"], policyHash: nil, complianceScore: nil,
            t0Ns: min(t0, nowNs), doneNs: nowNs, hrmEvalUs: nil, continuityOK: false, injectedViolation: audited?.injectedViolation, orderID: nil, event: audited.map(EventCodec.encode) ?? [])
        pass.track = Track(stream: origin)
        return (record, pass)
    }

    /// Publishes the audit's heads of this shard's accounts every tick, and restores the books
    /// behind them (for a Kenny without the store on its host): those whose head moved, and
    /// all of them every 5 s.
    func publishHeads(_ context: BatchContext) throws {
        if heads == nil {
            var loaded: [String: Int64] = [:]
            try AuditReader(path: storePath).sequencedEvents { _, e in
                if layout.shard(forAccount: e.account) == shard, let seq = e.execution?.seq, seq > loaded[e.account] ?? 0 { loaded[e.account] = seq }
            }
            heads = loaded
        }
        let now = wallClockNanoseconds()
        guard let heads, !heads.isEmpty else { return }
        // Every head every second: a failover can lose what was published last.
        let c = context.bus.connection
        _ = try c.command(["HSET", .text(shard.ledger)] + heads.sorted { $0.key < $1.key }.flatMap { [RedisArg.text(LedgerBooks.headField($0.key)), .int(Int($0.value))] })
        // The books of the accounts whose head moved, and of all every 5 s, are checked.
        let all = now - headsPublishedNs >= 5_000_000_000
        let publish = heads.filter { all || headsPublished[$0.key] != $0.value }
        headsPublished = heads
        if all { headsPublishedNs = now }
        guard !publish.isEmpty else { return }
        // A book behind the audit (Kenny writes a book before Aletheia can audit what changed
        // it, so behind means lost): restored here, for a Kenny without the store at hand.
        let accounts = publish.keys.sorted()
        let books = try c.command(["HMGET", .text(shard.portfolio)] + accounts.map { .text(PortfolioHash.field(for: $0)) }).array ?? []
        let behind = zip(accounts, books).filter { account, value in
            guard case .bulk(let bytes) = value else { return true }
            guard let book = try? PaperBook(json: bytes) else { return false }
            return book.seq < publish[account]!
        }
        if !behind.isEmpty {
            let fold = try LedgerRecovery.fold(storePath: storePath, startingEquity: startingEquity)
            let written = try LedgerBooks.restore(c, shard: shard, layout: layout, fold: fold, mode: .behind, by: "aletheia " + context.instance, nowNs: now)
            context.logger.notice("books behind the audit restored from it", metadata: ["accounts": .string(written.joined(separator: ",")), "shard": .string(shard.description)])
        }
    }

    /// At shutdown: the newest records under a signed checkpoint, due or not, so a store
    /// left while Aletheia is down has no unsigned tail to edit.
    public func finish(context: BatchContext) throws {
        let signed = try shared.withWriter { store in
            try store.checkpointIfDue(force: true)
            return store.takeSigned()
        }
        if let c = signed {
            try AuditCheckpointKey.publish(c, on: context.bus.connection)
        }
    }

    /// Once a second: restores lost books, publishes the accounts' heads, copies every
    /// instance's heartbeat from Redis into the state store, prunes old rollups, and signs a
    /// due head.
    public func tick(context: BatchContext) throws {
        // A shard whose Redis lost its books (its marker is gone) gets them back from the
        // audit, which only this stage is sure to have at hand; on a fresh start this writes
        // the marker. Kenny fills nothing on the shard meanwhile.
        if track == .baseline, let written = try LedgerRecovery.restoreIfLost(context.bus.connection, shard: shard, layout: layout, storePath: storePath,
                                                                               startingEquity: startingEquity, by: "aletheia " + context.instance) {
            context.logger.notice("books restored from the audit: the shard's marker was gone", metadata: [
                "accounts": .string(written.joined(separator: ",")), "shard": .string(shard.description)])
        }
        if track == .baseline { try publishHeads(context) }
        // The heartbeats and the rollups are the whole system's: the first shard's agent
        // copies the one and, once a minute, drops the rows of the other past their retention.
        if shard.index == 0 {
            let beats = try ControlPlane(context.bus.connection).heartbeats()
            try shared.withWriter { try $0.upsertHeartbeats(beats) }
            let now = wallClockNanoseconds()
            if now - prunedNs >= 60_000_000_000 {
                prunedNs = now
                let before = now / 1_000_000_000 - rollupRetentionSeconds
                _ = try shared.withWriter { try $0.pruneRollups(before: before) }
            }
        }
        try afterRead(context: context)
    }

    /// After every read: signs the audit tree's head when its oldest unsigned leaf is due,
    /// and copies the newest checkpoint to Redis.
    public func afterRead(context: BatchContext) throws {
        let signed = try shared.withWriter { store in
            try store.checkpointIfDue()
            return store.takeSigned()
        }
        if let c = signed {
            do {
                try AuditCheckpointKey.publish(c, on: context.bus.connection)
            } catch {
                shared.withWriter { $0.keepUnpublished(c) }
                throw error
            }
        }
    }

    /// With ARK_WITNESS_HOLD: no new input while a signed head has waited longer than
    /// ARK_WITNESS_MAX_LAG_SECONDS for a witness's cosignature (looked at every 250 ms): the
    /// log does not grow past what no one outside the host has seen.
    public func holdInput(context: BatchContext) throws -> String? {
        guard let hold = witnessHold else { return nil }
        let now = wallClockNanoseconds()
        if now - hold.lookedNs < 250_000_000 { return hold.reason }
        let cosignatures = try AuditCosignatureKey.read(on: context.bus.connection)
        // One read-only connection for the agent's life, not one per look.
        if holdReader == nil { holdReader = try AuditReader(path: storePath) }
        let waiting = try WitnessWait.oldestUnwitnessed(holdReader!, cosignatures: cosignatures, witnessKeys: hold.keys)
        witnessHold!.reason = WitnessWait.problem(waiting, nowNs: now, maxLagNs: hold.maxLagNs).map { "ARK_WITNESS_HOLD: " + $0 }
        witnessHold!.lookedNs = now
        return witnessHold!.reason
    }

    /// A quarter of the checkpoint interval, so an idle log's grown head is signed within it.
    public var maxBlockMs: Int? { shared.checkpointLookMs }
}

/// Whether a dead letter came from a Kyle input stream (any shard, either track).
func isKyleInput(_ stream: String) -> Bool {
    guard let shard = Shard(stream: stream) else { return false }
    return stream == shard.stream(.kyle) || stream == shard.stream(.kyle, on: .canary)
}

/// Aletheia's state store, shared by the agents of every shard one process serves: the store
/// has one writer (`StoreWriterLock`) and one audit log, so the shards' batches are written in
/// turn, each in its own transaction.
public final class SharedOutcomeWriter: @unchecked Sendable {
    // Unchecked: the writer is only ever touched under the lock.
    private let writer: OutcomeWriter
    private let lock = Mutex(())

    /// How often Aletheia must look whether a checkpoint is due (nil: no signer).
    public let checkpointLookMs: Int?

    public init(_ writer: OutcomeWriter) {
        self.writer = writer
        checkpointLookMs = writer.signerIntervalNs.map { max(1, Int($0 / 4_000_000)) }
    }

    public func withWriter<T>(_ body: (OutcomeWriter) throws -> T) rethrows -> T {
        try lock.withLock { _ in try body(writer) }
    }
}
