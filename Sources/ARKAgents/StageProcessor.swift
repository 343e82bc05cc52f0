// What a stage does with a batch, and what it is given and gives back.

import ARKBus
import ARKCore
import Logging

/// What a stage does with a batch. Implementations run on their agent's thread and may use
/// `context.bus` synchronously; they commit their own outputs (so Kenny can put its book in
/// the same transaction and Aletheia can write SQLite first), and must acknowledge every
/// entry they were given, or throw so the whole batch is retried.
public protocol StageProcessor: AnyObject {
    var stage: Stage { get }
    /// The track this instance serves: its input and output streams are that track's.
    var track: Track { get }
    /// The shard this instance serves: every key it touches is that shard's.
    var shard: Shard { get }
    /// Streams this stage consumes, in its group.
    var inputStreams: [String] { get }
    func handle(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult
    /// Commands Redis runs right after each blocking read, in its round trip; their replies
    /// reach `handle` as `context.readAlong`.
    var readAlong: [[RedisArg]] { get }
    /// Called about once a second, after the heartbeat; for periodic work.
    func tick(context: BatchContext) throws
    /// Called after every read, at least every `maxBlockMs` when idle: for work that must not
    /// wait for the next tick (Aletheia's signature of a grown head). Cheap when nothing is due.
    func afterRead(context: BatchContext) throws
    /// The longest a blocking read may wait for this stage (nil: ARK_BLOCK_MS).
    var maxBlockMs: Int? { get }
    /// Why this stage must take no new input now (nil: it may); asked before every read.
    func holdInput(context: BatchContext) throws -> String?
    /// Called once on graceful shutdown, after the last batch committed.
    func finish(context: BatchContext) throws
    /// The stages this one writes to: while the unread backlog of one's input (in its own
    /// consumer group) is over ARK_STREAM_MAXLEN, this stage takes no new input (back-pressure).
    var downstream: [Stage] { get }
}

extension StageProcessor {
    public var inputStreams: [String] { [shard.stream(stage, on: track)] }
    public var readAlong: [[RedisArg]] { [] }
    public func tick(context: BatchContext) throws {}
    public func afterRead(context: BatchContext) throws {}
    public var maxBlockMs: Int? { nil }
    public func holdInput(context: BatchContext) throws -> String? { nil }
    public func finish(context: BatchContext) throws {}
    public var downstream: [Stage] { stage.downstream }

    /// The common shape of a middle stage, forwarding to its next stage: decode what the stage reads of each entry (the
    /// top-level values; the rest is checked, not kept), let `transform` change the event and say which
    /// values it set, and forward the entry's own bytes with those values and this stage's
    /// hop spliced in (`EventLayout.splice`: the canonical bytes a full re-encoding would
    /// give, without decoding and encoding every value). An entry that cannot be decoded is
    /// dead-lettered. Everything is committed with the acknowledgements in one round trip.
    func forwardEach(_ batch: [StreamEntry], context: BatchContext,
                     _ transform: (inout Event) -> [(key: EventKey, json: [UInt8])]) throws -> BatchResult {
        var outputs: [(stream: String, payload: [UInt8])] = []
        outputs.reserveCapacity(batch.count)
        var dead: [DeadLetter] = []
        guard let next = stage.next() else { preconditionFailure("\(stage) has no next stage to forward to") }
        let stream = shard.stream(next, on: track)
        for entry in batch {
            switch decodeStageMessage(entry, keeping: []) {
            case .failure(let d): dead.append(d)
            case .success(let decoded):
                var e = decoded.event
                let values = transform(&e)
                let hop = Hop(stage: stage, instance: context.instance, inNs: context.readNs, outNs: wallClockNanoseconds())
                outputs.append((stream, decoded.layout.splice(entry.payload ?? [], setting: values, appending: hop)))
            }
        }
        try context.bus.commit(outputs: outputs, deadLetters: dead, acks: batch)
        return BatchResult(processed: outputs.count, failed: dead.count)
    }
}

/// What a processor gets for one batch.
public struct BatchContext {
    public let bus: StreamBus
    public let instance: String
    /// Wall-clock time the batch was read, for the stage's hop.
    public let readNs: Int64
    public let logger: Logger
    /// The replies to the processor's `readAlong`, when the batch came from a blocking read;
    /// nil for entries recovered or taken over, and in `tick`.
    public var readAlong: [RedisValue]? = nil
}

public struct BatchResult: Sendable, Equatable {
    public var processed: Int
    /// Entries that ended in the dead letter stream or as errors.
    public var failed: Int

    public init(processed: Int, failed: Int = 0) {
        self.processed = processed
        self.failed = failed
    }
}
