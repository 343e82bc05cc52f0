import ARKBus
import ARKCore
import Graveyard
import Metrics

/// Kenny: paper execution. Approved buys and sells become simulated fills at the signal's
/// price in a book kept in Redis; every batch reads the book under WATCH and writes the new
/// book, the orders, its outputs and the acknowledgements in one MULTI/EXEC, so a crash or
/// a concurrent instance can never apply a batch twice. Orders are also keyed by trace id:
/// a redelivered signal gets its original order back, never a second one.
///
/// Kenny is also where the portfolio limits are made to hold: before each fill it asks the
/// Graveyard's portfolio rules about the book as it is at that moment, inside the same
/// WATCH/MULTI/EXEC, and refuses a fill that would break one (`limited`). HRM's check is
/// against the book it read when the batch arrived; this one cannot be stale, so no number
/// of HRM or Kenny instances, batches in flight or redeliveries can take the filled book
/// past a limit.
public final class Kenny: StageProcessor {
    public let stage = Stage.kenny
    public let track: Track
    let startingEquity: Double
    let graveyardDirectory: String
    let checkIntervalNs: Int64
    private var integrity: Graveyard.Integrity
    private var lastCheckNs: Int64
    let limitedCounter = Counter(label: MetricName.executionLimited)
    /// Order keys live two days: redeliveries come within minutes.
    static let orderKeyTTLSeconds = 172_800
    static let maxWatchRetries = 50

    public init(config: ARKConfig) {
        track = config.track
        startingEquity = config.paperEquity
        graveyardDirectory = config.graveyardDir
        checkIntervalNs = Int64(config.graveyardCheckSeconds * 1e9)
        integrity = Graveyard.check(directory: config.graveyardDir)
        lastCheckNs = monotonicNanoseconds()
    }

    /// Re-reads the rules when the check interval has passed, as HRM does.
    public func tick(context: BatchContext) throws {
        let now = monotonicNanoseconds()
        guard now - lastCheckNs >= checkIntervalNs else { return }
        lastCheckNs = now
        integrity = Graveyard.check(directory: graveyardDirectory)
    }

    /// The portfolio limits a fill of `e` would break on `book`; with the rules unreadable
    /// or drifted, every fill is refused (fail closed, as HRM is).
    func limitViolations(_ e: Event, _ book: PortfolioSnapshot) -> [Violation] {
        guard case .intact(let rules) = integrity else {
            return [Violation(rule: "graveyard_integrity", severity: .critical, message: "fail closed at execution: \(integrity.problem ?? "the rules are unavailable")")]
        }
        return rules.portfolioViolations(Proposal(e), book: book)
    }

    static func orderKey(day: String) -> String { Streams.orders + ":" + day }

    public func handle(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult {
        var dead: [DeadLetter] = []
        var events: [Event] = []
        events.reserveCapacity(batch.count)
        for entry in batch {
            switch decodeStageMessage(entry) {
            case .failure(let d): dead.append(d)
            case .success(let decoded): events.append(decoded.event)
            }
        }
        let bus = context.bus
        guard !events.isEmpty else {
            try bus.commit(outputs: [], deadLetters: dead, acks: batch)
            return BatchResult(processed: 0, failed: dead.count)
        }
        let today = PaperBook.utcDay(wallClockNanoseconds())
        let yesterday = PaperBook.utcDay(wallClockNanoseconds() - 86_400_000_000_000)
        let traceArgs = events.map { RedisArg.text($0.traceID) }
        // A throw between WATCH and EXEC would leave the connection watching the book.
        var committed = false
        defer { if !committed { _ = try? bus.connection.command(["UNWATCH"]) } }
        for _ in 0..<Self.maxWatchRetries {
            let replies = try bus.connection.pipeline([
                ["WATCH", .text(Streams.portfolio)],
                ["HGET", .text(Streams.portfolio), "book"],
                ["HMGET", .text(Self.orderKey(day: today))] + traceArgs,
                ["HMGET", .text(Self.orderKey(day: yesterday))] + traceArgs,
            ])
            for r in replies { if case .error(let e) = r { throw RedisError.server(e) } }
            var book = try Self.decodeBook(replies[1], startingEquity: startingEquity, day: today)
            book.roll(to: today)
            let todays = replies[2].array ?? []
            let yesterdays = replies[3].array ?? []

            var outputs: [(stream: String, payload: [UInt8])] = []
            outputs.reserveCapacity(events.count)
            var newOrders: [RedisArg] = []
            var seen: [String: Execution] = [:]
            var limited = 0
            for (i, var e) in events.enumerated() {
                if let prior = seen[e.traceID] ?? Self.existingOrder(todays, i) ?? Self.existingOrder(yesterdays, i) {
                    var x = prior
                    x.status = .duplicate
                    e.execution = x
                } else {
                    let x = book.execute(e, orderID: "ord-" + e.traceID) { self.limitViolations(e, $0) }
                    e.execution = x
                    if x.status == .limited { limited += 1 }
                    if x.status == .filled {
                        newOrders.append(.text(e.traceID))
                        newOrders.append(.bytes(EventCodec.encode(x)))
                        seen[e.traceID] = x
                    }
                }
                e.hops.append(Hop(stage: .kenny, instance: context.instance, inNs: context.readNs, outNs: wallClockNanoseconds()))
                outputs.append((Stage.aletheia.inputStream(on: track), EventCodec.encode(e)))
            }
            var extra: [[RedisArg]] = []
            if !newOrders.isEmpty {
                let key = RedisArg.text(Self.orderKey(day: today))
                extra.append(["HSET", key] + newOrders)
                extra.append(["EXPIRE", key, .int(Self.orderKeyTTLSeconds)])
            }
            extra.append(["DEL", .text(Streams.portfolio)])
            var fields: [RedisArg] = ["HSET", .text(Streams.portfolio), "book", .bytes(book.encoded())]
            for (k, v) in book.publishedFields { fields += [.text(k), .text(v)] }
            extra.append(fields)
            if try bus.commit(outputs: outputs, deadLetters: dead, acks: batch, extra: extra) {
                committed = true
                if limited > 0 { limitedCounter.increment(by: limited) }
                return BatchResult(processed: events.count, failed: dead.count)
            }
            // Another Kenny instance changed the book first: read it again and redo the batch.
        }
        throw RedisError.server("the book kept changing under WATCH for \(Self.maxWatchRetries) tries")
    }

    static func existingOrder(_ replies: [RedisValue], _ i: Int) -> Execution? {
        guard i < replies.count, case .bulk(let bytes) = replies[i] else { return nil }
        return try? EventCodec.decodeExecution(bytes)
    }

    static func decodeBook(_ reply: RedisValue, startingEquity: Double, day: String) throws -> PaperBook {
        guard case .bulk(let bytes) = reply else { return PaperBook(equity: startingEquity, day: day) }
        do {
            return try PaperBook(json: bytes)
        } catch {
            throw RedisError.unexpectedReply("the paper book in \(Streams.portfolio) is unreadable: \(error)")
        }
    }
}
