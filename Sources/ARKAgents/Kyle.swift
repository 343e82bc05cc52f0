import ARKBus
import ARKCore
import Foundation
import Metrics

/// Kyle: ingest and validate. Parses each producer payload, normalises the symbol, assigns a
/// trace id and stamps `t0_ns`; a valid signal goes to Joey, an invalid one straight to
/// Aletheia as a rejected pass with every reason, so it is recorded, never dropped.
public final class Kyle: StageProcessor {
    public let stage = Stage.kyle
    let validator: SignalValidator
    let traceIDs: Bool
    let rejectedCounter = Counter(label: MetricName.signalsRejected)

    public init(config: ARKConfig) {
        validator = SignalValidator(maxPayloadBytes: config.maxSignalBytes)
        traceIDs = config.traceIDEnabled
    }

    public func handle(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult {
        var outputs: [(stream: String, payload: [UInt8])] = []
        outputs.reserveCapacity(batch.count)
        var rejected = 0
        for entry in batch {
            let fallback = SignalValidator.derivedTraceID(entryID: entry.id)
            let payload = entry.payload ?? []
            var event: Event
            let outcome: SignalValidator.Outcome
            if entry.payload == nil {
                outcome = .rejected(["parse: the entry has no 'event' field (fields: \(entry.fieldNames.joined(separator: ", ")))"])
            } else {
                outcome = validator.validate(payload, fallbackTraceID: fallback, nowNs: context.readNs)
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
            event.hops.append(Hop(stage: .kyle, instance: context.instance, inNs: context.readNs, outNs: wallClockNanoseconds()))
            let target = event.rejection == nil ? Stage.joey.inputStream : Stage.aletheia.inputStream
            outputs.append((target, EventCodec.encode(event)))
        }
        try context.bus.commit(outputs: outputs, deadLetters: [], acks: batch)
        if rejected > 0 { rejectedCounter.increment(by: rejected) }
        return BatchResult(processed: batch.count - rejected, failed: 0)
    }
}

/// Decodes an internal stage message, or says why it goes to the dead letter stream. Also
/// gives where the hops array closes, for a stage that appends its hop in place.
func decodeStageMessage(_ entry: StreamEntry) -> Result<(event: Event, hopsClose: Int?), DeadLetter> {
    guard let payload = entry.payload else {
        return .failure(DeadLetter(entry: entry, reason: "no 'event' field (fields: \(entry.fieldNames.joined(separator: ", ")))"))
    }
    do {
        return .success(try EventCodec.decodeLocatingHops(payload))
    } catch {
        return .failure(DeadLetter(entry: entry, reason: "cannot decode event: \(error.message)"))
    }
}
