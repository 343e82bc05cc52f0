import ARKBus
import ARKCore
import ARKTestSupport
import Testing

/// The envelope's wire format and the settling of its events, without Redis.
@Suite struct EnvelopeTests {
    func split(_ text: String) -> [String] {
        Array(text.utf8).withUnsafeBytes { Envelope.split($0) }.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func eventsAreLinesAndNoLineIsDropped() {
        #expect(split("{\"a\":1}\n{\"b\":2}\n{\"c\":3}") == ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"])
        #expect(split("{\"a\":1}") == ["{\"a\":1}"])
        // An empty line is an event with an empty payload (dead-lettered as undecodable), a
        // trailing newline one more: nothing a careless writer sends is silently lost.
        #expect(split("x\n\ny\n") == ["x", "", "y", ""])
        #expect(split("") == [""])
    }

    @Test func canonicalEventsNeverHoldTheSeparator() throws {
        var e = Event(traceID: "t\n1", id: "a\nb", symbol: "AAPL", price: 1, volume: 1, ts: 0, source: "line\nbreak\r\u{2028}", t0Ns: 1)
        e.intent = "multi\nline"
        let bytes = EventCodec.encode(e)
        #expect(!bytes.contains(Envelope.separator))
        #expect(try EventCodec.decode(bytes).source == "line\nbreak\r\u{2028}")
    }

    func event(_ id: String, _ index: Int, of count: Int, stream: String = "s") -> StreamEntry {
        var e = StreamEntry(stream: stream, id: id, payload: [UInt8(index)])
        e.envelope = EnvelopeSlot(index: index, count: count)
        return e
    }

    @Test func wholeEnvelopesCompleteWithoutKeepingAnything() {
        let progress = EnvelopeProgress()
        let acks = (0..<3).map { event("1-0", $0, of: 3) } + [StreamEntry(stream: "s", id: "2-0", payload: [1])] + (0..<2).map { event("3-0", $0, of: 2) }
        let (complete, after) = progress.completing(acks)
        #expect(complete.map(\.id) == ["1-0", "2-0", "3-0"])
        #expect(after == nil)
    }

    @Test func anEnvelopeSettledInPartsIsAcknowledgedWithItsLastEvent() {
        var progress = EnvelopeProgress()
        let first = progress.completing([event("1-0", 0, of: 4), event("1-0", 2, of: 4)])
        #expect(first.complete.isEmpty)
        progress = first.after!
        #expect(progress.isSettled(event("1-0", 2, of: 4)) && !progress.isSettled(event("1-0", 1, of: 4)))
        // Settling one again does not complete it; the two missing do.
        #expect(progress.completing([event("1-0", 2, of: 4)]).complete.isEmpty)
        let last = progress.completing([event("1-0", 1, of: 4), event("1-0", 3, of: 4)])
        #expect(last.complete.map(\.id) == ["1-0"])
        #expect(last.after!.isEmpty)
    }

    @Test func aRunWithAnEventTwiceIsNotTakenForTheWholeEnvelope() {
        let (complete, after) = EnvelopeProgress().completing([event("1-0", 0, of: 2), event("1-0", 0, of: 2)])
        #expect(complete.isEmpty && after != nil)
    }

    @Test func eventsBeforeASuspectAreSettled() {
        var progress = EnvelopeProgress()
        progress.settledBefore(3, stream: "s", id: "9-0")
        #expect((0..<3).allSatisfy { progress.isSettled(event("9-0", $0, of: 5)) })
        #expect(!progress.isSettled(event("9-0", 3, of: 5)) && !progress.isSettled(event("9-0", 0, of: 5, stream: "t")))
        #expect(progress.completing([event("9-0", 3, of: 5), event("9-0", 4, of: 5)]).complete.count == 1)
    }
}

/// Envelopes through a private redis-server, started for this suite and stopped by its pid.
@Suite(.serialized) final class EnvelopeBusTests {
    let redis: RedisServer

    init() throws { redis = try RedisServer() }
    deinit { redis.shutdown() }

    func bus(_ consumer: String, envelopeMax: Int = 4) throws -> StreamBus {
        let b = StreamBus(connection: try redis.client(), group: "G", consumer: consumer)
        b.envelopeMax = envelopeMax
        return b
    }

    func payload(_ n: Int) -> [UInt8] { Array("{\"n\":\(n)}".utf8) }

    @Test func outputsTravelInEnvelopesAndComeBackAsEvents() throws {
        let producer = try bus("p"), consumer = try bus("c")
        try consumer.ensureGroups(["ark:joey", "ark:hrm"])
        try producer.commit(outputs: (0..<10).map { ("ark:joey", payload($0)) } + [("ark:hrm", payload(99))], deadLetters: [], acks: [])
        let c = try redis.client()
        // 10 events in envelopes of at most 4: three entries; one event alone is a plain `event`.
        #expect(try c.command(["XLEN", "ark:joey"]) == .integer(3))
        let raw = try c.command(["XRANGE", "ark:joey", "-", "+"]).array!
        #expect(raw[0].array![1].array![0].string == "events")
        #expect(raw[0].array![1].array![1].string == "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}")
        #expect(try c.command(["XRANGE", "ark:hrm", "-", "+"]).array![0].array![1].array![0].string == "event")
        #expect(try StreamBus.backlog(of: "ark:joey", group: "G", on: c, maxEventsPerEntry: 4) == 10)

        let events = try consumer.read(["ark:joey"], count: 10, blockMs: 100)
        #expect(events.map(\.payload) == (0..<10).map { payload($0) })
        #expect(events.map { $0.envelope?.index } == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
        #expect(Set(events.map(\.id)).count == 3)
        // Six events settled: the first envelope is acknowledged, the second waits for the rest.
        try consumer.commit(outputs: [], deadLetters: [], acks: Array(events[0..<6]))
        #expect(try consumer.pendingCount("ark:joey") == 2)
        #expect(try StreamBus.backlog(of: "ark:joey", group: "G", on: c, maxEventsPerEntry: 4) == 4)
        // Read again, the pending envelopes hand over only the events still to do.
        let again = consumer.unsettled(try consumer.read(["ark:joey"], count: 10, blockMs: nil, history: true))
        #expect(again.map(\.payload) == (6..<10).map { payload($0) })
        try consumer.commit(outputs: [], deadLetters: [], acks: again)
        #expect(try consumer.pendingCount("ark:joey") == 0)
        #expect(try StreamBus.backlog(of: "ark:joey", group: "G", on: c, maxEventsPerEntry: 4) == 0)
    }

    @Test func aDeadLetteredEventNamesItsPlaceAndTheRestOfItsEnvelopeGoesOn() throws {
        let producer = try bus("p"), consumer = try bus("c")
        try consumer.ensureGroups(["ark:kenny"])
        try producer.commit(outputs: (0..<3).map { ("ark:kenny", payload($0)) }, deadLetters: [], acks: [])
        let events = try consumer.read(["ark:kenny"], count: 10, blockMs: 100)
        try consumer.commit(outputs: [("ark:aletheia", events[0].payload!), ("ark:aletheia", events[2].payload!)],
                            deadLetters: [DeadLetter(entry: events[1], reason: "poison")], acks: events)
        let c = try redis.client()
        #expect(try consumer.pendingCount("ark:kenny") == 0)
        let dead = try c.command(["XRANGE", "ark:deadletter", "-", "+"]).array!
        #expect(dead.count == 1)
        let fields = dead[0].array![1].array!.compactMap(\.string)
        #expect(fields[1] == "{\"n\":1}")
        #expect(fields.firstIndex(of: "event_index").map { fields[$0 + 1] } == "1")
        #expect(fields.firstIndex(of: "entry_id").map { fields[$0 + 1] } == events[1].id)
    }

    @Test func claimedEnvelopesComeBackAsTheirEvents() throws {
        let producer = try bus("p"), dying = try bus("dying"), heir = try bus("heir")
        try dying.ensureGroups(["ark:hrm"])
        try producer.commit(outputs: (0..<4).map { ("ark:hrm", payload($0)) }, deadLetters: [], acks: [])
        _ = try dying.read(["ark:hrm"], count: 10, blockMs: 100)
        let taken = try heir.claim("ark:hrm", from: "dying", minIdleMs: 0, count: 10)
        #expect(taken.map(\.payload) == (0..<4).map { payload($0) })
        let auto = try bus("auto").claim("ark:hrm", minIdleMs: 0, count: 10)
        #expect(auto.count == 4 && auto.allSatisfy { $0.envelope?.count == 4 })
    }

    @Test func aForeignEntryWithEventsBesideOtherFieldsIsNotAnEnvelope() throws {
        let consumer = try bus("c")
        try consumer.ensureGroups(["ark:joey"])
        _ = try redis.client().command(["XADD", "ark:joey", "*", "events", "{}\n{}", "event", "{}"])
        let read = try consumer.read(["ark:joey"], count: 10, blockMs: 100)
        #expect(read.count == 1 && read[0].envelope == nil && read[0].fieldNames == ["events", "event"])
    }
}
