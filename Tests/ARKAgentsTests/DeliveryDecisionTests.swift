@testable import ARKAgents
import ARKBus
import Testing

/// The pure cores of the stage loop: the delivery ledger, back-pressure and the bisection of
/// a failing batch, without Redis.
@Suite struct DeliveryLedgerTests {
    let dlq = "ark:dlq"
    func entry(_ id: String, stream: String = "ark:kyle", deliveries: Int = 1, payload: [UInt8]? = [1]) -> StreamEntry {
        StreamEntry(stream: stream, id: id, payload: payload, fieldNames: payload == nil ? [] : StreamEntry.eventOnly, deliveries: deliveries)
    }

    @Test func freshEntriesAreHandledInOrder() {
        let ledger = DeliveryLedger(maxDeliveries: 3, deadLetterStream: dlq)
        let (handle, poison) = ledger.sort([entry("1-0"), entry("2-0"), entry("3-0")])
        #expect(handle.map(\.id) == ["1-0", "2-0", "3-0"] && poison.isEmpty)
    }

    @Test func redisDeliveryCountPastTheLimitIsDeadLettered() {
        let ledger = DeliveryLedger(maxDeliveries: 3, deadLetterStream: dlq)
        let (handle, poison) = ledger.sort([entry("1-0", deliveries: 3), entry("2-0", deliveries: 4)])
        #expect(handle.map(\.id) == ["1-0"])
        #expect(poison.map(\.entry.id) == ["2-0"] && poison[0].reason.contains("delivered 4 times (ARK_MAX_DELIVERIES=3)"))
    }

    @Test func localAttemptsCountWhenRedisDoesNot() {
        var ledger = DeliveryLedger(maxDeliveries: 2, deadLetterStream: dlq)
        ledger.failed(["1-0"])
        #expect(ledger.sort([entry("1-0")]).handle.first?.deliveries == 2)
        ledger.failed(["1-0"])
        let (handle, poison) = ledger.sort([entry("1-0"), entry("2-0")])
        #expect(handle.map(\.id) == ["2-0"] && poison.map(\.entry.id) == ["1-0"])
        ledger.settled(["1-0"])
        #expect(ledger.attempts.isEmpty && ledger.sort([entry("1-0")]).poison.isEmpty)
    }

    @Test func suspectDeathsDeadLetterOnlyTheSuspect() {
        var ledger = DeliveryLedger(maxDeliveries: 3, deadLetterStream: dlq)
        ledger.tookOverSuspects([("k-0", 3), ("o-0", 1)])
        let (handle, poison) = ledger.sort([entry("k-0"), entry("o-0")])
        #expect(handle.map(\.id) == ["o-0"])
        #expect(poison.map(\.entry.id) == ["k-0"] && poison[0].reason.contains("died or hung 3 times"))
        ledger.resolvedAlone("o-0")
        #expect(ledger.deaths == ["k-0": 3])
    }

    func event(_ id: String, _ index: Int, of count: Int, deliveries: Int = 1) -> StreamEntry {
        var e = entry(id, deliveries: deliveries)
        e.envelope = EnvelopeSlot(index: index, count: count)
        return e
    }

    /// An envelope's events share Redis's delivery count of the entry: an event's own count is
    /// its attempts and the deaths charged to it alone, so the others are never dead-lettered
    /// for a killer beside them.
    @Test func eachEventOfAnEnvelopeIsCountedAndDeadLetteredAlone() {
        var ledger = DeliveryLedger(maxDeliveries: 3, deadLetterStream: dlq)
        ledger.tookOverSuspects([(event("e-0", 7, of: 100).key, 3), (event("e-0", 8, of: 100).key, 0)])
        ledger.failed([event("e-0", 9, of: 100).key, event("e-0", 9, of: 100).key, event("e-0", 9, of: 100).key])
        let events = (6..<11).map { event("e-0", $0, of: 100, deliveries: 9) }
        let (handle, poison) = ledger.sort(events)
        #expect(handle.map { $0.envelope!.index } == [6, 8, 10])
        #expect(handle.allSatisfy { $0.deliveries == 1 })
        #expect(poison.map { $0.entry.envelope!.index } == [7, 9])
        #expect(poison[0].reason.contains("event 8 of the 100 of its entry: the process handling it alone died or hung 3 times"), "\(poison[0].reason)")
        #expect(poison[1].reason.contains("event 10 of the 100 of its entry: failed 3 times (ARK_MAX_DELIVERIES=3)"), "\(poison[1].reason)")
        #expect(ledger.deaths.keys.sorted() == ["e-0/7"])
    }

    @Test func readsAskForAboutABatchOfEvents() {
        let plain = (0..<10).map { entry("\($0)-0") }
        #expect(StageAgent.nextReadCount(read: plain, batchSize: 256, last: 4) == 256)
        let envelopes = (0..<2).flatMap { n in (0..<64).map { event("\(n)-0", $0, of: 64) } }
        #expect(StageAgent.nextReadCount(read: envelopes, batchSize: 256, last: 256) == 4)
        #expect(StageAgent.nextReadCount(read: [], batchSize: 256, last: 4) == 4)
        #expect(StageAgent.nextReadCount(read: (0..<64).map { event("1-0", $0, of: 64) }, batchSize: 10, last: 10) == 1)
    }

    @Test func aDeadLetterIsRecordedRawNeverReLettered() {
        var ledger = DeliveryLedger(maxDeliveries: 1, deadLetterStream: dlq)
        ledger.tookOverSuspects([("d-0", 5)])
        let (handle, poison) = ledger.sort([entry("d-0", stream: dlq, deliveries: 9, payload: nil)])
        #expect(poison.isEmpty && handle.count == 1 && handle[0].recordRaw)
        // Under the limit it is handled as usual, not raw.
        let fresh = DeliveryLedger(maxDeliveries: 3, deadLetterStream: dlq).sort([entry("e-0", stream: dlq)])
        #expect(fresh.handle.count == 1 && !fresh.handle[0].recordRaw)
    }

    @Test func anEntryTrimmedWhilePendingIsDeadLetteredWithWhy() {
        let ledger = DeliveryLedger(maxDeliveries: 3, deadLetterStream: dlq)
        let (handle, poison) = ledger.sort([entry("1-0", payload: nil)])
        #expect(handle.isEmpty && poison[0].reason == "entry was removed from ark:kyle before it was processed")
    }

    @Test func theAttemptCountsStayBounded() {
        var ledger = DeliveryLedger(maxDeliveries: 3, deadLetterStream: dlq)
        ledger.failed((0...DeliveryLedger.attemptsCap).map { "\($0)-0" })
        #expect(ledger.attempts.isEmpty)
    }
}

@Suite struct BackpressureTests {
    @Test func holdsOverTheBoundAndReleasesUnderNinetyPercent() {
        var bp = Backpressure(bound: 1000, batchSize: 10)
        #expect(bp.observe(worst: ("s", 1000), nowNs: 1) == nil && !bp.holding)
        #expect(bp.observe(worst: ("s", 1001), nowNs: 2) == .hold(stream: "s", backlog: 1001) && bp.holding)
        #expect(bp.observe(worst: ("s", 950), nowNs: 3) == nil && bp.holding)  // no flapping at the edge
        #expect(bp.observe(worst: ("s", 901), nowNs: 4) == nil && bp.holding)
        #expect(bp.observe(worst: ("s", 900), nowNs: 5) == .release(stream: "s", backlog: 900) && !bp.holding)
        #expect(bp.observe(worst: ("s", 990), nowNs: 6) == nil && !bp.holding)
    }

    @Test func measuresEveryHundredMillisecondsAndBeforeEachBatchNearTheBound() {
        var bp = Backpressure(bound: 1000, batchSize: 100)
        _ = bp.observe(worst: ("s", 500), nowNs: 0)
        #expect(!bp.shouldMeasure(nowNs: 50_000_000))
        #expect(bp.shouldMeasure(nowNs: 100_000_000))
        bp.handled(400)  // 500 + 400 + one more batch of 100 is at the bound, not past it
        #expect(!bp.shouldMeasure(nowNs: 1))
        bp.handled(1)
        #expect(bp.shouldMeasure(nowNs: 1))
        _ = bp.observe(worst: ("s", 500), nowNs: 2)
        #expect(bp.handledSinceMeasure == 0 && !bp.shouldMeasure(nowNs: 3))
    }

    @Test func noDownstreamNeverHolds() {
        var bp = Backpressure(bound: 1, batchSize: 1)
        #expect(bp.observe(worst: nil, nowNs: 1) == nil && !bp.holding)
        _ = bp.observe(worst: ("s", 5), nowNs: 2)
        #expect(bp.observe(worst: nil, nowNs: 3) == .release(stream: "s", backlog: 0))
    }
}

@Suite struct BisectTests {
    struct Bad: Error, Equatable { let item: Int }
    struct Fatal: Error {}

    @Test func everyGoodItemIsDoneAndOnlyTheBadAreLeft() throws {
        for bad in [Set<Int>(), [0], [255], [7, 8, 200], Set(0..<256)] {
            var done: [Int] = []
            var attempts = 0
            let failing = try bisect(Array(0..<256)[...], isFatal: { $0 is Fatal }) { part in
                attempts += 1
                if let b = part.first(where: bad.contains) { throw Bad(item: b) }
                done += part
            }
            #expect(done.sorted() == (0..<256).filter { !bad.contains($0) })
            #expect(failing.map(\.item) == bad.sorted())
            #expect(failing.allSatisfy { ($0.error as? Bad)?.item == $0.item })
            if bad.count == 1 { #expect(attempts <= 17) }
        }
    }

    @Test func aFatalErrorStopsAtOnce() {
        var attempts = 0
        #expect(throws: Fatal.self) {
            _ = try bisect([1, 2, 3, 4][...], isFatal: { $0 is Fatal }) { part in
                attempts += 1
                if part.count == 2 { throw Fatal() }
                throw Bad(item: 0)
            }
        }
        #expect(attempts == 2)
    }

    @Test func nothingToDoIsNoAttempt() throws {
        var attempts = 0
        #expect(try bisect([Int]()[...], isFatal: { _ in true }) { _ in attempts += 1 }.isEmpty && attempts == 0)
    }
}
