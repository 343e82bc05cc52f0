import ARKBus
import ARKCore

/// Kenny: paper execution. Approved buys and sells become simulated fills at the signal's
/// price in a book kept in Redis; every batch reads the book under WATCH and writes the new
/// book, the orders, its outputs and the acknowledgements in one MULTI/EXEC, so a crash or
/// a concurrent instance can never apply a batch twice. Orders are also keyed by trace id:
/// a redelivered signal gets its original order back, never a second one.
public final class Kenny: StageProcessor {
    public let stage = Stage.kenny
    public let track: Track
    let startingEquity: Double
    /// Order keys live two days: redeliveries come within minutes.
    static let orderKeyTTLSeconds = 172_800
    static let maxWatchRetries = 50

    public init(config: ARKConfig) {
        track = config.track
        startingEquity = config.paperEquity
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
            for (i, var e) in events.enumerated() {
                if let prior = seen[e.traceID] ?? Self.existingOrder(todays, i) ?? Self.existingOrder(yesterdays, i) {
                    var x = prior
                    x.status = .duplicate
                    e.execution = x
                } else {
                    let x = book.execute(e, orderID: "ord-" + e.traceID)
                    e.execution = x
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
