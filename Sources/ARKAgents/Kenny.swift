// Kenny, the paper executor: fills approved proposals into the books, idempotently by trace.

import ARKBus
import ARKCore
import Graveyard
import ARKRisk
import Metrics
#if canImport(Glibc)
import Glibc
#endif

/// Kenny: paper execution. Approved buys and sells become simulated fills at the signal's
/// price in each account's book, kept in Redis; every batch reads the books of its accounts,
/// its instruments' trusted prices and the trading states under WATCH, decides every
/// execution with the pure `ExecutionDesk`, and writes the new books, prices, orders, breaker
/// states, its outputs and the acknowledgements in one MULTI/EXEC, so a crash or a
/// concurrent instance can never apply a batch twice. Every outcome (filled, limited, or the
/// denial HRM passed on) is also kept by trace id: a trace that comes back, redelivered or
/// resubmitted with other content, gets its first outcome again and is never decided twice.
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
    public let shard: Shard
    let startingEquity: Double
    /// The state store, when it is on this host: the books are restored from its audit.
    let storePath: String
    let layout: ShardLayout
    let throttles: Throttles
    /// ARK_INSTRUMENTS_FILE, read at start.
    let instruments: InstrumentPolicy
    private var rules: GraveyardWatch
    /// Kenny waited for the shard's marker since it was last seen (it waits once).
    private var waitedForLedger = false
    /// Wall clock for the UTC day and the idempotency window (a test moves it).
    let clock: @Sendable () -> Int64
    let limitedCounter = Counter(label: MetricName.executionLimited)
    /// Outcomes are kept by trace id in one hash per UTC day of the trace's `t0_ns`
    /// (`ark:orders:<day>`), each living 48 h after its last write. A redelivered entry
    /// carries the same t0, so it finds its order wherever it waited, for 48 h after the fill
    /// at least; an approved signal older than `idempotencyWindowNs` (47 h, an hour inside
    /// that) is refused rather than risk a second fill after its record expired. A producer's
    /// resubmission (a new entry, a new t0) is also looked up in today's and yesterday's
    /// hashes, so it is caught for 24 h after the first fill at least.
    static let orderKeyTTLSeconds = 172_800
    static let idempotencyWindowNs: Int64 = 47 * 3_600_000_000_000
    static let maxWatchRetries = 50

    public init(config: ARKConfig, shard: Shard = .untagged, clock: @escaping @Sendable () -> Int64 = { wallClockNanoseconds() }) {
        self.shard = shard
        self.clock = clock
        track = config.track
        startingEquity = config.paperEquity
        storePath = config.stateDB
        layout = config.shardLayout
        throttles = config.throttles
        instruments = InstrumentPolicy(file: config.instrumentsFile)
        rules = GraveyardWatch(directory: config.graveyardDir, checkSeconds: config.graveyardCheckSeconds)
    }

    /// Re-reads the rules when the check interval has passed, as HRM does.
    public func tick(context: BatchContext) throws {
        _ = rules.refreshIfDue()
    }

    /// The portfolio limits a fill of `e` would break on `book`; with the rules unreadable
    /// or drifted, every fill is refused (fail closed, as HRM is).
    func limitViolations(_ e: Event, _ book: PortfolioSnapshot) -> [Violation] {
        guard case .intact(let ruleSet) = rules.integrity else {
            return [Violation(rule: "graveyard_integrity", severity: .critical, message: "fail closed at execution: \(rules.integrity.problem ?? "the rules are unavailable")")]
        }
        return ruleSet.portfolioViolations(Proposal(e), book: book)
    }

    func orderKey(day: String) -> String { shard.orders + ":" + day }

    public func handle(_ batch: [StreamEntry], context: BatchContext) throws -> BatchResult {
        var dead: [DeadLetter] = []
        // What Kenny reads: the proposal and HRM's verdict (not its lists), and where to
        // splice the execution and the hop into the entry's bytes.
        var events: [(event: Event, layout: EventLayout, payload: [UInt8])] = []
        events.reserveCapacity(batch.count)
        for entry in batch {
            switch decodeStageMessage(entry, keeping: .decision) {
            case .failure(let d): dead.append(d)
            case .success(let decoded): events.append((decoded.event, decoded.layout, entry.payload ?? []))
            }
        }
        let bus = context.bus
        guard !events.isEmpty else {
            try bus.commit(outputs: [], deadLetters: dead, acks: batch)
            return BatchResult(processed: 0, failed: dead.count)
        }
        let now = clock()
        let today = PaperBook.utcDay(now)
        let yesterday = PaperBook.utcDay(now - 86_400_000_000_000)
        let traceArgs = events.map { RedisArg.text($0.event.traceID) }
        // Each trace's t0 day, formatted once per distinct day (decoded times are ≥ 0).
        var dayNames: [Int64: String] = [:]
        let t0Days = events.map { (e, _, _) -> String in
            let index = e.t0Ns / 86_400_000_000_000
            if let name = dayNames[index] { return name }
            let name = PaperBook.utcDay(e.t0Ns)
            dayNames[index] = name
            return name
        }
        // Usually just today and yesterday: the hashes an order of this batch may be in.
        let days = Array(Set(t0Days + [today, yesterday])).sorted()
        // The accounts whose books, and the instruments whose trusted prices, the batch reads.
        let accounts = Array(Set(events.map(\.event.account))).sorted()
        let symbols = Array(Set(events.map(\.event.symbol))).sorted()
        let ruleSet = rules.integrity.ruleSet
        let settings = ExecutionDesk.Settings(startingEquity: startingEquity, band: ruleSet?.priceBand?.band, throttles: throttles,
                                              dailyLossLimit: ruleSet?.dailyLossLimit, instruments: instruments)
        // A throw between WATCH and EXEC would leave the connection watching the book.
        var committed = false
        defer { if !committed { _ = try? bus.connection.command(["UNWATCH"]) } }
        // Books computed from this batch that would not read back: redone as unreadable, so
        // their fills are refused, no entry is lost and nothing unreadable is ever written.
        var unwritable: [String: String] = [:]
        var triedRestore = false
        for _ in 0..<Self.maxWatchRetries {
            let replies = try bus.connection.pipeline([
                // The outcome records too: a trace recorded by a concurrent batch must be seen.
                ["WATCH", .text(shard.portfolio), .text(shard.marks), .text(shard.trading), .text(shard.ledger)] + days.map { .text(orderKey(day: $0)) },
                ["HMGET", .text(shard.portfolio)] + accounts.map { .text(PortfolioHash.field(for: $0)) },
                ["HMGET", .text(shard.marks)] + symbols.map { .text($0) },
                ["HGETALL", .text(shard.trading)],
                ["EXISTS", .text(shard.ledger)],
                ["HMGET", .text(shard.ledger)] + accounts.map { .text(LedgerBooks.headField($0)) },
            ] + days.map { ["HMGET", .text(orderKey(day: $0))] + traceArgs })
            for r in replies { if case .error(let e) = r { throw RedisError.server(e) } }
            // The shard's marker is gone: Redis lost the books (restarted empty, flushed).
            let proven = replies[4].integer == 1
            if !proven && !waitedForLedger && !LedgerRecovery.storeIsHere(storePath) {
                // Aletheia restores the books (and on a fresh start writes the marker) within
                // a second: wait for it once, rather than refuse what comes meanwhile.
                waitedForLedger = true
                _ = try bus.connection.command(["UNWATCH"])
                let deadline = monotonicNanoseconds() + 3_000_000_000
                while monotonicNanoseconds() < deadline, try !LedgerBooks.isProven(bus.connection, shard: shard) { usleep(50_000) }
                continue
            }
            if proven { waitedForLedger = false }
            var books: [String: Result<PaperBook, PaperBook.UnreadableBook>?] = [:]
            for (account, value) in zip(accounts, replies[1].array ?? []) {
                if let problem = unwritable[account] {
                    books[account] = .failure(PaperBook.UnreadableBook(description: problem))
                } else if case .bulk(let bytes) = value {
                    do { books[account] = .success(try PaperBook(json: bytes)) } catch { books[account] = .failure(error) }
                } else {
                    books[account] = .some(nil)
                }
            }
            // A book behind the audit's head (Aletheia's, published every second) lost
            // executions the audit holds (a failover lost a window of book writes).
            var behind: [String: String] = [:]
            for (account, value) in zip(accounts, replies[5].array ?? []) {
                guard let head = value.string.flatMap({ Int64($0) }) else { continue }
                let kept: Int64
                switch books[account] {
                case .success(let b)??: kept = b.seq
                case .some(.none), nil: kept = 0
                case .failure??: continue
                }
                if kept < head { behind[account] = "the book of account \(account) holds executions 1…\(kept), the audit 1…\(head)" }
            }
            // Books lost or behind are restored from the audit before anything fills: here
            // when the store is on this host, else by Aletheia within a second, and until then
            // their approvals are refused.
            if (!proven || !behind.isEmpty) && !triedRestore && LedgerRecovery.storeIsHere(storePath) {
                triedRestore = true
                _ = try bus.connection.command(["UNWATCH"])
                do {
                    let fold = try LedgerRecovery.fold(storePath: storePath, startingEquity: startingEquity)
                    let written = try LedgerBooks.restore(bus.connection, shard: shard, layout: layout, fold: fold, mode: .behind, by: "kenny " + context.instance, nowNs: now)
                    context.logger.notice("books restored from the audit", metadata: [
                        "accounts": .string(written.joined(separator: ",")), "shard": .string(shard.description), "marker_was_gone": .stringConvertible(!proven)])
                } catch {
                    context.logger.error("the books could not be restored from the audit: approvals are refused until they are", metadata: [
                        "error": .string("\(error)"), "shard": .string(shard.description)])
                }
                continue
            }
            var references: [String: PriceBand.Reference?] = [:]
            var unreadableReferences: [String: String] = [:]
            for (symbol, value) in zip(symbols, replies[2].array ?? []) {
                guard case .bulk(let bytes) = value else { references[symbol] = .some(nil); continue }
                let text = String(decoding: bytes, as: UTF8.self)
                if let r = PriceBand.Reference(stored: text) { references[symbol] = r } else { unreadableReferences[symbol] = text }
            }
            let trading = TradingStates(entries: replies[3].hashEntries)
            var desk = ExecutionDesk(settings: settings, today: today, nowNs: now, books: books, references: references,
                                     unreadableReferences: unreadableReferences, trading: trading)
            var recorded: [String: [RedisValue]] = [:]
            for (day, reply) in zip(days, replies.dropFirst(6)) { recorded[day] = reply.array ?? [] }

            var outputs: [(stream: String, payload: [UInt8])] = []
            outputs.reserveCapacity(events.count)
            let next = shard.stream(Stage.kenny.next()!, on: track)
            var newOrders: [String: [RedisArg]] = [:]
            var seen: [String: Execution] = [:]
            /// The trace's outcome, kept for good (in its t0 day's hash) and for the batch.
            func keep(_ x: Execution, _ i: Int, _ traceID: String) {
                newOrders[t0Days[i], default: []] += [.text(traceID), .bytes(EventCodec.encode(x))]
                seen[traceID] = x
            }
            var limited = 0
            for (i, (var e, layout, payload)) in events.enumerated() {
                let prior = seen[e.traceID] ?? [t0Days[i], today, yesterday].lazy.compactMap { Self.existingOrder(recorded[$0] ?? [], i) }.first
                if let prior {
                    var x = prior
                    x.status = .duplicate
                    // A duplicate changes no book: only the first outcome carries the sequence.
                    x.seq = nil
                    e.execution = x
                } else if e.decision?.approved == true, elapsedNanoseconds(from: e.t0Ns, to: now) > Self.idempotencyWindowNs {
                    let x = Execution(status: .limited, side: e.action, violations: [Violation(
                        rule: "idempotency_window", severity: .high,
                        message: "the signal is \(elapsedNanoseconds(from: e.t0Ns, to: now) / 3_600_000_000_000) h old, past the 47 h its order record is kept: refused, so it can never fill twice")])
                    e.execution = x
                    limited += 1
                    keep(x, i, e.traceID)
                } else if (!proven || behind[e.account] != nil) && e.decision?.approved == true {
                    let why = behind[e.account].map { "\($0): it lost executions the audit holds" } ?? "the books of shard \(shard) are not proven against the audit (its Redis lost them)"
                    let x = Execution(status: .limited, side: e.action, positionAfter: 0, violations: [Violation(
                        rule: "ledger_unproven", severity: .critical,
                        message: "\(why): nothing fills until they are restored (Aletheia does within a second; else ark book rebuild)")])
                    e.execution = x
                    limited += 1
                    keep(x, i, e.traceID)
                } else {
                    let x = desk.execute(e, orderID: "ord-" + e.traceID) { self.limitViolations(e, $0) }
                    e.execution = x
                    if x.status == .limited { limited += 1 }
                    // Every outcome is the trace's, for good: a trace denied or limited once
                    // that comes back (approved this time, or once there is room) gets its
                    // first outcome again, never a fill.
                    keep(x, i, e.traceID)
                }
                let hop = Hop(stage: .kenny, instance: context.instance, inNs: context.readNs, outNs: wallClockNanoseconds())
                let execution = e.execution.map { [(key: EventKey.execution, json: EventCodec.encode($0))] } ?? []
                outputs.append((next, layout.splice(payload, setting: execution, appending: hop)))
            }
            // What is written must read back: a book that would not is never stored.
            var bookFields: [RedisArg] = []
            var redo = false
            for account in desk.changedBooks.sorted() {
                guard let book = desk.books[account] else { continue }
                let encoded = book.encoded()
                guard let back = try? PaperBook(json: encoded), back == book else {
                    unwritable[account] = "the book computed for account \(account) does not read back (\(book.boundsProblem() ?? "encoding")): nothing of it was written"
                    context.logger.critical("Kenny's book does not read back: refusing the account's fills", metadata: ["account": .string(account), "shard": .string(shard.description)])
                    redo = true
                    break
                }
                bookFields += [.text(PortfolioHash.field(for: account)), .bytes(encoded)]
            }
            if redo {
                _ = try bus.connection.command(["UNWATCH"])
                continue
            }
            var extra: [[RedisArg]] = []
            for (day, fields) in newOrders.sorted(by: { $0.key < $1.key }) {
                let key = RedisArg.text(orderKey(day: day))
                extra.append(["HSET", key] + fields)
                extra.append(["EXPIRE", key, .int(Self.orderKeyTTLSeconds)])
            }
            if !bookFields.isEmpty { extra.append(["HSET", .text(shard.portfolio)] + bookFields) }
            if !desk.changedReferences.isEmpty {
                var set: [RedisArg] = ["HSET", .text(shard.marks)]
                for symbol in desk.changedReferences.sorted() { set += [.text(symbol), .text((desk.references[symbol] ?? nil)?.stored ?? "")] }
                extra.append(set)
            }
            for control in desk.breakers { extra += TradingStateStore.commands(control, shard: shard) }
            if try bus.commit(outputs: outputs, deadLetters: dead, acks: batch, extra: extra) {
                committed = true
                for (account, problem) in desk.unreadableBooks.sorted(by: { $0.key < $1.key }) {
                    context.logger.critical("fills halted: Kenny's book cannot be read", metadata: ["account": .string(account), "problem": .string(problem), "shard": .string(shard.description)])
                }
                for c in desk.breakers {
                    context.logger.critical("trading state set by a breaker", metadata: [
                        "scope": .string(c.scope.field), "mode": .string(c.mode.rawValue), "by": .string(c.by), "reason": .string(c.reason), "shard": .string(shard.description),
                    ])
                }
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

}
