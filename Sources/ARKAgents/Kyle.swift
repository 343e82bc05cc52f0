// Kyle, the intake stage: validates producers' signals and routes them to the next stage or a
// track.

import ARKBus
import ARKCore
import Metrics

/// Kyle: ingest and validate. Parses each producer payload, normalises the symbol, assigns a
/// trace id and stamps `t0_ns`; a valid signal goes to Joey, an invalid one straight to
/// Aletheia as a rejected pass with every reason, so it is recorded, never dropped.
///
/// During a canary rollout the baseline Kyle is also the entry's router: a trace whose id
/// falls in the canary's share is passed, as received and with the trace id it was given,
/// to the canary's Kyle, and acknowledged in the same transaction.
public final class Kyle: StageProcessor {
    public let stage = Stage.kyle
    public let track: Track
    public let shard: Shard
    let validator: SignalValidator
    let traceIDs: Bool
    let rejectedCounter = Counter(label: MetricName.signalsRejected)
    let routedCounter = Counter(label: MetricName.canaryRouted)
    /// The split in force (baseline only), refreshed from Redis every tick.
    private(set) var route = CanaryRoute.off

    /// The field a routed or handed-back entry carries its trace id in.
    static let traceIDField = "trace_id"

    public init(config: ARKConfig, shard: Shard = .untagged) {
        self.shard = shard
        track = config.track
        validator = SignalValidator(maxPayloadBytes: config.maxSignalBytes)
        traceIDs = config.traceIDEnabled
    }

    public func tick(context: BatchContext) throws {
        guard track == .baseline else { return }
        let control = ControlPlane(context.bus.connection)
        let next = try control.canaryRoute()
        if next != route {
            context.logger.notice("canary route changed", metadata: [
                "percent": .stringConvertible(next.percent), "version": .stringConvertible(next.version), "run_id": .string(next.runID),
            ])
            route = next
        }
        try control.confirmRoute(route.version, by: context.instance)
    }

    public func handle(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult {
        var outputs: [(stream: String, payload: [UInt8])] = []
        outputs.reserveCapacity(batch.count)
        var routed: [[RedisArg]] = []
        var rejected = 0
        // Named once a batch: every entry goes to one of the two.
        let accepted = shard.stream(Stage.kyle.next(rejected: false)!, on: track)
        let refused = shard.stream(Stage.kyle.next(rejected: true)!, on: track)
        let canary = shard.stream(.kyle, on: .canary)
        for entry in batch {
            let fallback = entry.otherFields[Self.traceIDField] ?? SignalValidator.derivedTraceID(entryID: entry.id, index: entry.envelope?.index)
            let payload = entry.payload ?? []
            var event: Event
            let outcome: SignalValidator.Outcome
            if entry.payload == nil {
                outcome = .rejected(["parse: the entry has no 'event' field (fields: \(entry.fieldNames.joined(separator: ", ")))"])
            } else {
                outcome = validator.validate(payload, fallbackTraceID: fallback, nowNs: context.readNs)
            }
            if track == .baseline && route.percent > 0 {
                var traceID = fallback
                if case .accepted(let e) = outcome, traceIDs { traceID = e.traceID }
                if route.routesToCanary(traceID) {
                    routed.append(context.bus.addCommand(stream: canary, payload: payload, fields: [(Self.traceIDField, traceID)]))
                    continue
                }
            }
            switch outcome {
            case .accepted(let e):
                event = e
                if !traceIDs { event.traceID = fallback }
            case .rejected(let reasons):
                rejected += 1
                event = Event(traceID: fallback, id: fallback, symbol: "", price: 0, volume: 0, ts: 0, source: "unknown", t0Ns: context.readNs)
                event.rejection = SignalValidator.rejection(reasons, payload: payload)
                context.logger.warning("signal rejected", metadata: ["trace_id": .string(fallback), "entry_id": .string(entry.id), "reasons": .string(reasons.joined(separator: "; "))])
            }
            event.track = track
            event.hops.append(Hop(stage: .kyle, instance: context.instance, inNs: context.readNs, outNs: wallClockNanoseconds()))
            outputs.append((event.rejection == nil ? accepted : refused, EventCodec.encode(event)))
        }
        try context.bus.commit(outputs: outputs, deadLetters: [], acks: batch, extra: routed)
        if rejected > 0 { rejectedCounter.increment(by: rejected) }
        if !routed.isEmpty { routedCounter.increment(by: routed.count) }
        return BatchResult(processed: batch.count - rejected - routed.count, failed: 0)
    }
}

/// Decodes what a stage reads of an internal stage message (`keeping`, see
/// `EventCodec.decode(_:keeping:layout:)`) and where its values are, or says why it goes to
/// the dead letter stream.
func decodeStageMessage(_ entry: StreamEntry, keeping parts: EventParts) -> Result<(event: Event, layout: EventLayout), DeadLetter> {
    guard let payload = entry.payload else {
        return .failure(DeadLetter(entry: entry, reason: "no 'event' field (fields: \(entry.fieldNames.joined(separator: ", ")))"))
    }
    do {
        var layout = EventLayout()
        let e = try EventCodec.decode(payload, keeping: parts, layout: &layout)
        return .success((e, layout))
    } catch {
        return .failure(DeadLetter(entry: entry, reason: "cannot decode event: \(error.message)"))
    }
}
