// The loop every stage instance runs: reads, hands batches to its processor, recovers, and beats.

import ARKBus
import ARKCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import Synchronization

/// Where an agent connects and how it reads.
public struct AgentSettings: Sendable {
    public var redisURL: RedisURL
    public var batchSize: Int
    public var blockMs: Int
    public var claimIdleMs: Int
    public var maxDeliveries: Int
    /// ARK_ENVELOPE_MAX: the most events one output entry carries.
    public var envelopeMax: Int
    public var streamMaxLen: Int
    public var heartbeatInterval: Duration
    /// Injected into this agent's batches when it is for its stage (rehearsals only).
    public var fault: AgentFault?

    public init(config: ARKConfig) throws {
        redisURL = try RedisURL(parsing: config.redisURL)
        batchSize = config.batchSize
        blockMs = config.blockMs
        claimIdleMs = config.claimIdleMs
        maxDeliveries = config.maxDeliveries
        envelopeMax = config.envelopeMax
        streamMaxLen = config.streamMaxLen
        heartbeatInterval = .seconds(1)
        fault = config.fault
    }
}

/// The name of this process's consumer for a stage: `<stage>-<host>-<pid>` (DESIGN §2), and
/// `@s<N>` after it for a tagged shard (a process serves each of its shards with an agent of
/// its own, and each is an instance to the watchdog).
public func instanceName(for stage: Stage, shard: Shard = .untagged) -> String {
    shard.instanceName(stage: stage, host: ProcessInfo.processInfo.hostName, pid: getpid())
}

/// One pipeline stage instance: an actor running on its own thread, so its blocking Redis
/// calls never stall the cooperative pool. It reads batches from its consumer group, hands
/// them to the stage's processor, takes over entries stuck on dead consumers, dead-letters
/// poison entries, reconnects with back-off, and publishes a heartbeat every second.
public actor StageAgent {
    public nonisolated let stage: Stage
    public nonisolated let instance: String
    private nonisolated let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let processor: any StageProcessor
    private let settings: AgentSettings
    private var logger: Logger
    private let connection: RedisConnection
    private let bus: StreamBus

    private var stats = Stats()
    /// Why the agent stopped of its own accord: a setting that cannot work (nil: it did not).
    /// Readable after `run` returns, when the agent's thread is gone (so not actor-isolated).
    public nonisolated var refusal: String? { refusalBox.withLock { $0 } }
    private nonisolated let refusalBox = Mutex<String?>(nil)
    private let vitals = AgentVitals()
    private let pulse: HeartbeatPulse
    private var fault: FaultInjector?
    private let instruments: Instruments
    /// Attempts and suspect deaths per entry: which entries are handled, which dead-lettered.
    private var ledger: DeliveryLedger
    /// Whether a later stage's backlog holds this stage's input.
    private var backpressure: Backpressure
    private let host = ProcessInfo.processInfo.hostName
    /// Entries asked for per read: ARK_BATCH_SIZE events' worth, by the events per entry of
    /// the last read (envelopes carry many).
    private var readCount: Int

    /// The stage's swift-metrics instruments, made once (the factory lookup is not free).
    struct Instruments {
        let processed: Counter
        let failed: Counter
        let batchTime: Metrics.Timer
        let reconnects: Counter

        init(stage: Stage) {
            let dims = [("stage", stage.rawValue)]
            processed = Counter(label: MetricName.stageProcessed, dimensions: dims)
            failed = Counter(label: MetricName.stageFailed, dimensions: dims)
            batchTime = Metrics.Timer(label: MetricName.stageLatency, dimensions: dims)
            reconnects = Counter(label: MetricName.redisReconnects, dimensions: dims)
        }
    }

    struct Stats {
        var lastTickNs: Int64 = 0
        /// Why the processor holds its input (`holdInput`), while it does: logged when it changes.
        var held: String?
        var lastClaimNs: Int64 = 0
        var lastTakeOverNs: Int64 = 0
        var lastTrimWarningNs: Int64 = 0
    }

    public init(processor: any StageProcessor, settings: AgentSettings, instance: String? = nil, logger: Logger? = nil) {
        self.stage = processor.stage
        let name = instance ?? instanceName(for: processor.stage, shard: processor.shard)
        self.instance = name
        self.executor = ThreadExecutor(name: name)
        self.processor = processor
        self.settings = settings
        self.instruments = Instruments(stage: processor.stage)
        var log = logger ?? Logger(label: "ark.\(processor.stage.rawValue.lowercased())")
        log[metadataKey: "agent"] = .string(processor.stage.rawValue)
        log[metadataKey: "instance"] = .string(name)
        self.logger = log
        self.connection = RedisConnection(url: settings.redisURL, commandTimeout: .milliseconds(settings.blockMs + 15_000),
                                          slotKey: processor.shard.tagged ? processor.shard.slotKey : nil)
        self.bus = StreamBus(connection: connection, group: processor.stage.group, consumer: name, shard: processor.shard)
        bus.envelopeMax = settings.envelopeMax
        self.readCount = settings.batchSize
        self.ledger = DeliveryLedger(maxDeliveries: settings.maxDeliveries, deadLetterStream: processor.shard.deadLetter)
        self.backpressure = Backpressure(bound: settings.streamMaxLen, batchSize: settings.batchSize)
        self.pulse = HeartbeatPulse(stage: processor.stage, instance: name, streams: processor.inputStreams, settings: settings, vitals: vitals, logger: log)
        if let f = settings.fault, f.stage == processor.stage {
            self.fault = FaultInjector(fault: f)
            log.warning("fault injection on (ARK_FAULT)", metadata: ["latency_ms": .stringConvertible(f.latencyMs), "errors": .stringConvertible(f.errorRate)])
        }
    }

    /// Runs until the task is cancelled (graceful shutdown). A batch in progress is finished
    /// and committed first; entries read but not committed stay pending in Redis.
    public func run() async {
        logger.info("starting", metadata: ["redis": .string(settings.redisURL.description), "streams": .string(processor.inputStreams.joined(separator: ",")),
                                           "shard": .string(processor.shard.description)])
        // At most a second between tries: a cluster's failover takes a few, and an agent
        // asleep for 5 s after it ends would stall its shard that much longer.
        var backoff = Backoff(cap: .seconds(1))
        var connected = false
        var recoverOwn = true
        var lostSinceNs: Int64 = 0
        // Detached: a task made here would start on this actor's thread, which a first batch
        // that never ends would keep from ever beating.
        let heartbeats = Task.detached { [pulse] in await pulse.run() }
        while !Task.isCancelled {
            if vitals.standing.quarantined {
                // Out of rotation: no new entries, no take-overs; the heartbeat goes on, so
                // the watchdog can see the instance recover and release it.
                try? tickIfDue()
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            do {
                if !connection.isConnected {
                    try connection.connect()
                    if connection.isCluster && !processor.shard.tagged {
                        let refusal = "REDIS_URL names a Redis Cluster, whose transactions and blocking reads need every key of a shard in one slot. Fix: set ARK_SHARDS (1 or more) for every ARK process; keys then carry their shard's hash tag (ark:{s0}:kyle …)"
                        refusalBox.withLock { $0 = refusal }
                        logger.critical("cannot run on a Redis Cluster without ARK_SHARDS", metadata: ["fix": .string(refusal)])
                        connection.close()
                        break
                    }
                    do {
                        try bus.ensureGroups(processor.inputStreams)
                    } catch {
                        connection.close()  // set-up is retried as a whole
                        throw RedisError.connection("cannot create consumer groups: \(error)")
                    }
                    if connected == false && lostSinceNs != 0 {
                        instruments.reconnects.increment()
                        logger.notice("Redis connection restored", metadata: [
                            "attempts": .stringConvertible(backoff.attempt),
                            "down_ms": .stringConvertible((wallClockNanoseconds() - lostSinceNs) / 1_000_000),
                        ])
                    } else if !connected {
                        logger.info("connected to Redis", metadata: ["node": .string(connection.node?.description ?? "")])
                    }
                    connected = true
                    lostSinceNs = 0
                    backoff.reset()
                    recoverOwn = true
                }
                // Only an idle round lets other jobs onto this thread: a yield after every batch
                // cost two thread wake-ups per batch, a third of Kyle's CPU at 1,000/s.
                if try !iterate(recoverOwn: &recoverOwn) { await Task.yield() }
            } catch let error as RedisError where error.isConnectionError {
                if connected || lostSinceNs == 0 {
                    logger.warning("Redis connection lost; retrying with back-off, pending entries stay in Redis", metadata: ["error": .string(error.description)])
                    lostSinceNs = wallClockNanoseconds()
                }
                connected = false
                connection.close()
                try? await Task.sleep(for: backoff.next())
            } catch {
                // A batch failed (a store error, a server error): nothing of it was acknowledged.
                // Re-read our pending entries next; delivery counts bound the retries.
                vitals.batchFailed()
                instruments.failed.increment()
                logger.error("batch failed; it will be retried", metadata: ["error": .string("\(error)")])
                recoverOwn = true
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        heartbeats.cancel()
        await heartbeats.value
        do {
            try processor.finish(context: BatchContext(bus: bus, instance: instance, readNs: wallClockNanoseconds(), logger: logger))
        } catch {
            logger.warning("the work at shutdown failed", metadata: ["error": .string("\(error)")])
        }
        connection.close()
        let counts = vitals.current
        logger.info("stopped", metadata: ["processed": .stringConvertible(counts.processed), "failed": .stringConvertible(counts.failed)])
        executor.shutdown()
    }

    /// One round: a batch read and processed, and the periodic work. False when there was
    /// nothing to read.
    private func iterate(recoverOwn: inout Bool) throws -> Bool {
        let now = wallClockNanoseconds()
        var entries: [StreamEntry] = []
        if recoverOwn {
            // Of envelopes partly handled before, only the events still to do.
            entries = bus.unsettled(try bus.read(processor.inputStreams, count: readCount, blockMs: nil, history: true))
            if entries.isEmpty {
                recoverOwn = false
            } else {
                try bus.fillDeliveryCounts(&entries)
            }
        }
        // Entries another consumer held when it died, hung or was quarantined: one of them
        // may be what killed it, so they are handled one at a time, each under an in-flight
        // record (PoisonIsolation.swift).
        var takenOver = false
        if entries.isEmpty, try holdingBack(now: now) {
            // Nothing new while a later stage is behind: this stage's own input waits in
            // Redis (bounded by the same rule upstream, and at the API by a 503).
            try tickIfDue()
            sleepThread(seconds: 0.05)
            return false
        }
        if entries.isEmpty {
            let context = BatchContext(bus: bus, instance: instance, readNs: now, logger: logger)
            let held = try processor.holdInput(context: context)
            if held != stats.held {
                if let held {
                    logger.warning("holding input", metadata: ["reason": .string(held)])
                } else {
                    logger.notice("taking input again")
                }
                stats.held = held
            }
            if held != nil {
                // Entries wait in Redis (bounded upstream by back-pressure); the periodic work goes on.
                try processor.afterRead(context: context)
                try tickIfDue()
                sleepThread(seconds: 0.05)
                return false
            }
        }
        if entries.isEmpty {
            entries = try takeOverFromQuarantinedPeers()
            takenOver = !entries.isEmpty
        }
        if entries.isEmpty, now - stats.lastClaimNs >= claimIntervalNs {
            stats.lastClaimNs = now
            entries = try takeOverFromDeadConsumers()
            takenOver = !entries.isEmpty
        }
        var readAlong: [RedisValue]?
        if entries.isEmpty {
            (entries, readAlong) = try bus.read(processor.inputStreams, count: readCount, blockMs: min(settings.blockMs, processor.maxBlockMs ?? .max),
                                                along: processor.readAlong)
            readCount = Self.nextReadCount(read: entries, batchSize: settings.batchSize, last: readCount)
        }
        backpressure.handled(entries.count)
        if takenOver {
            try processOneByOne(entries)
        } else if !entries.isEmpty {
            try process(entries, readAlong: readAlong)
        }
        try processor.afterRead(context: BatchContext(bus: bus, instance: instance, readNs: now, logger: logger))
        try tickIfDue()
        return !entries.isEmpty
    }

    /// Whether a downstream stage's unread backlog holds this stage's input (`Backpressure`
    /// decides; one XINFO per downstream stream when it asks for a measurement).
    private func holdingBack(now: Int64) throws -> Bool {
        guard backpressure.shouldMeasure(nowNs: now) else { return backpressure.holding }
        var worst: (stream: String, backlog: Int)?
        for next in processor.downstream {
            let stream = processor.shard.stream(next, on: processor.track)
            let backlog = try StreamBus.backlog(of: stream, group: next.group, on: connection, maxEventsPerEntry: settings.envelopeMax)
            if backlog > (worst?.backlog ?? -1) { worst = (stream, backlog) }
        }
        switch backpressure.observe(worst: worst, nowNs: now) {
        case .hold(let stream, let backlog):
            vitals.backpressure.withLock { $0 = stream }
            logger.warning("taking no input: the unread backlog of an output stream is over ARK_STREAM_MAXLEN; a later stage is stopped or slow, nothing is dropped", metadata: [
                "stream": .string(stream), "backlog": .stringConvertible(backlog), "bound": .stringConvertible(backpressure.bound),
            ])
        case .release(let stream, let backlog):
            vitals.backpressure.withLock { $0 = nil }
            logger.notice("taking input again: the output backlog is back under its bound", metadata: [
                "stream": .string(stream), "backlog": .stringConvertible(backlog),
            ])
        case nil:
            break
        }
        return backpressure.holding
    }

    /// What other consumers left: first the entries a consumer had in hand alone when it died
    /// (those alone this round, so the rest are not charged for a killer's deaths); then
    /// everything pending on a process of this host that has exited, at once; then entries
    /// idle ARK_CLAIM_IDLE_MS on any consumer (XAUTOCLAIM).
    private func takeOverFromDeadConsumers() throws -> [StreamEntry] {
        let isDead = { [host, stage] (name: String) in isExitedLocalConsumer(name, stage: stage, host: host) }
        let suspects = try bus.takeOverSuspects(minIdleMs: settings.claimIdleMs, isDead: isDead)
        if !suspects.isEmpty {
            ledger.tookOverSuspects(suspects.map { ($0.entry.key, $0.deaths) })
            logger.warning("took over entries that were in hand when their process died or hung; each is retried alone", metadata: [
                "entries": .string(suspects.filter { $0.deaths > 0 }.map { "\($0.entry.stream) \($0.entry.key) (deaths \($0.deaths))" }.joined(separator: ", ")),
                "events": .stringConvertible(suspects.count),
            ])
            return suspects.map(\.entry)
        }
        var entries: [StreamEntry] = []
        for stream in processor.inputStreams where entries.count < settings.batchSize {
            for c in try bus.consumersWithPending(stream) where c.name != instance && isDead(c.name) {
                if c.pending == 0 {
                    try bus.forgetConsumer(stream, c.name)
                } else if entries.count < settings.batchSize {
                    let got = try bus.claim(stream, from: c.name, minIdleMs: 0, count: settings.batchSize - entries.count)
                    if !got.isEmpty {
                        logger.notice("took over the entries of an exited process", metadata: ["count": .stringConvertible(got.count), "from": .string(c.name)])
                    }
                    entries += got
                }
            }
        }
        for stream in processor.inputStreams where entries.count < settings.batchSize {
            entries += try bus.claim(stream, minIdleMs: settings.claimIdleMs, count: settings.batchSize - entries.count)
        }
        if !entries.isEmpty {
            logger.notice("took over entries left by other consumers", metadata: ["count": .stringConvertible(entries.count)])
        }
        return entries
    }

    /// Processes entries taken over from another consumer one event at a time, each under
    /// this consumer's in-flight record, so if one kills this process too its successor knows
    /// which. An entry that fails stays pending (retried, then dead-lettered); the others go on.
    /// An envelope's events go in order, and after one fails the rest of its entry waits for
    /// the retry: so a record naming an event also says every event before it is settled.
    private func processOneByOne(_ entries: [StreamEntry]) throws {
        var firstFailure: (any Error)?
        var failedEntries: [(stream: String, id: String)] = []
        for e in entries {
            if e.envelope != nil, failedEntries.contains(where: { $0.stream == e.stream && $0.id == e.id }) { continue }
            try bus.markInFlight(e)
            do {
                try process([e], readAlong: nil)
                try bus.clearInFlight(e, resolved: true)
                ledger.resolvedAlone(e.key)
            } catch {
                if Self.isEnvironmental(error) { throw error }
                try bus.clearInFlight(e, resolved: false)
                firstFailure = firstFailure ?? error
                failedEntries.append((e.stream, e.id))
            }
        }
        if let firstFailure { throw firstFailure }
    }

    /// How many entries the next read asks for: about ARK_BATCH_SIZE events, by the events
    /// per entry this read found (the same as before when it found none).
    static func nextReadCount(read: [StreamEntry], batchSize: Int, last: Int) -> Int {
        guard !read.isEmpty else { return last }
        var entries = 0
        var previous: StreamEntry?
        for e in read {
            if e.envelope == nil || previous?.id != e.id || previous?.stream != e.stream { entries += 1 }
            previous = e
        }
        return max(1, min(batchSize, batchSize * entries / read.count))
    }

    /// A failure of what the stage runs on (Redis gone or unable to take writes, the store
    /// locked or full), which says nothing about the entries.
    static func isEnvironmental(_ error: any Error) -> Bool {
        if error is EnvironmentFailure { return true }
        guard let r = error as? RedisError else { return false }
        return r.isConnectionError || r.isServerUnavailable
    }

    /// The pending entries of quarantined instances of this stage, claimed at once rather
    /// than after ARK_CLAIM_IDLE_MS. Entries delivered to a peer within the last second are
    /// left for the next round, so healthy instances do not snatch them from each other.
    private func takeOverFromQuarantinedPeers() throws -> [StreamEntry] {
        let peers = vitals.standing.quarantinedPeers
        let now = wallClockNanoseconds()
        // A killed peer stays listed until it is forgotten: look four times a second, not
        // on every batch.
        guard !peers.isEmpty, now - stats.lastTakeOverNs >= 250_000_000 else { return [] }
        stats.lastTakeOverNs = now
        var entries: [StreamEntry] = []
        for peer in peers {
            for stream in processor.inputStreams where entries.count < settings.batchSize {
                entries += try bus.claim(stream, from: peer, minIdleMs: 1000, count: settings.batchSize - entries.count)
            }
        }
        if !entries.isEmpty {
            logger.notice("took over entries of quarantined instances", metadata: [
                "count": .stringConvertible(entries.count), "from": .string(peers.joined(separator: ",")),
            ])
        }
        return entries
    }

    /// The processor's periodic work and the trimming of acknowledged entries from this
    /// stage's input streams, about once a second.
    private func tickIfDue() throws {
        let now = wallClockNanoseconds()
        guard now - stats.lastTickNs >= heartbeatIntervalNs else { return }
        stats.lastTickNs = now
        try processor.tick(context: BatchContext(bus: bus, instance: instance, readNs: now, logger: logger))
        for stream in processor.inputStreams {
            do {
                try bus.trimAcknowledged(stream)
            } catch {
                if error.isConnectionError { throw error }
                // Memory, not correctness, is at stake: say so once a minute, not every second.
                if now - stats.lastTrimWarningNs >= 60_000_000_000 {
                    stats.lastTrimWarningNs = now
                    logger.warning("cannot trim acknowledged entries", metadata: ["stream": .string(stream), "error": .string(error.description)])
                }
            }
        }
    }

    private var claimIntervalNs: Int64 { Int64(max(100, min(1000, settings.claimIdleMs / 2))) * 1_000_000 }
    private var heartbeatIntervalNs: Int64 {
        let c = settings.heartbeatInterval.components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }

    private func process(_ all: [StreamEntry], readAlong: [RedisValue]?) throws {
        let readNs = wallClockNanoseconds()
        let context = BatchContext(bus: bus, instance: instance, readNs: readNs, logger: logger, readAlong: readAlong)
        // Entries delivered too often, or gone from the stream, are dead-lettered here, once
        // for every stage; the dead letter stream itself is only ever recorded, never re-lettered.
        let (batch, poison) = ledger.sort(all)
        if !poison.isEmpty {
            try bus.commit(outputs: [], deadLetters: poison, acks: poison.map(\.entry))
            ledger.settled(poison.map(\.entry.key))
            vitals.entriesDeadLettered(poison.count)
            instruments.failed.increment(by: poison.count)
            logger.error("dead-lettered entries", metadata: ["count": .stringConvertible(poison.count), "reason": .string(poison[0].reason)])
        }
        guard !batch.isEmpty else { return }
        vitals.batchStarted(atNs: readNs)
        var result = BatchResult(processed: 0)
        let failing: [(item: StreamEntry, error: any Error)]
        do {
            try fault?.beforeBatch()
            // When the processor throws for a reason that may lie in the entries, the batch is
            // halved down to single entries, so only the entries that fail are left and every
            // other one commits.
            failing = try bisect(batch[...], isFatal: Self.isEnvironmental) { part in
                let r = try handleRetryingEnvironmentFailures(Array(part), context: context)
                result.processed += r.processed
                result.failed += r.failed
            }
        } catch {
            // Failures of the environment (Redis gone, the store locked or full) say nothing
            // about the entries: only the others count towards ARK_MAX_DELIVERIES.
            if Self.isEnvironmental(error) { throw error }
            ledger.failed(batch.lazy.map(\.key))
            throw error
        }
        if failing.isEmpty {
            ledger.settled(batch.lazy.map(\.key))
        } else {
            // The failing keep their attempts: an event of an envelope counts nothing else.
            let failed = Set(failing.map(\.item.key))
            ledger.settled(batch.lazy.map(\.key).filter { !failed.contains($0) })
        }
        if let first = failing.first {
            // Only these stay pending, to be retried on their own and dead-lettered after
            // ARK_MAX_DELIVERIES; their batch-mates went through.
            ledger.failed(failing.lazy.map(\.item.key))
            logger.error("entries failed and stay pending; the rest of their batch was committed", metadata: [
                "failed": .stringConvertible(failing.count), "committed": .stringConvertible(result.processed + result.failed),
                "entry_id": .string(first.item.id), "error": .string("\(first.error)"),
            ])
            throw first.error
        }
        let doneNs = wallClockNanoseconds()
        vitals.batchSucceeded(processed: result.processed, failed: result.failed, durationNs: doneNs - readNs)
        instruments.processed.increment(by: result.processed)
        if result.failed > 0 { instruments.failed.increment(by: result.failed) }
        instruments.batchTime.recordNanoseconds(doneNs - readNs)
    }

    /// Hands the batch to the processor, retrying failures of the environment (the store
    /// locked or its disk full) on the same entries, with a short back-off, until the batch
    /// commits or the agent stops. Re-reading them from Redis instead would count a delivery
    /// each time and in the end dead-letter entries nothing was wrong with.
    private func handleRetryingEnvironmentFailures(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult {
        var backoff = Backoff(base: .milliseconds(100), cap: .seconds(1))
        var failingSinceNs: Int64 = 0
        while true {
            do {
                try fault?.beforeHandle(batch)
                let result = try processor.handle(batch, context: context)
                if failingSinceNs != 0 {
                    logger.notice("batch committed after the failures", metadata: [
                        "attempts": .stringConvertible(backoff.attempt + 1),
                        "down_ms": .stringConvertible((wallClockNanoseconds() - failingSinceNs) / 1_000_000),
                    ])
                }
                return result
            } catch let failure where Self.isEnvironmental(failure) && !((failure as? RedisError)?.isConnectionError ?? false) {
                vitals.batchFailed()
                instruments.failed.increment()
                if failingSinceNs == 0 {
                    failingSinceNs = wallClockNanoseconds()
                    logger.error("batch failed; retrying it until it commits, its entries stay pending in Redis", metadata: [
                        "error": .string("\(failure)"), "entries": .stringConvertible(batch.count),
                    ])
                }
                if Task.isCancelled { throw failure }
                let wait = backoff.next()
                sleepThread(seconds: Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18)
            }
        }
    }
}
