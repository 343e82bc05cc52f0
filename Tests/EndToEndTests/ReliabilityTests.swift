import ARKBus
import ARKCore
import ARKState
import ARKStoreWriter
import ARKTestSupport
import Foundation
import Testing

/// The faults and bad inputs of docs/reliability.md, caused for real against
/// `ark-agent` processes, a private Redis and a real state store: a poison entry, an entry
/// that kills its process, a dead letter that kills Aletheia, and a frozen Aletheia with ten
/// times the backlog bound queued.
extension EndToEnd { @Suite struct ReliabilityTests {
    /// `stage` under deployment/supervise.sh, which restarts it when it dies, as
    /// start_production.sh --local runs it.
    func startSupervised(_ f: Pipeline, _ stage: Stage, _ extra: [String: String]) throws -> ArkProcess {
        let name = stage.rawValue.lowercased()
        let p = try ArkProcess([f.dir.path + "/\(name).pid", Repo.arkAgentBinary, stage.rawValue], executable: Repo.root + "/deployment/supervise.sh",
                               environment: f.environment.merging(extra) { $1 }, logPath: f.dir.path + "/\(name).log")
        f.others.append(p)
        return p
    }

    func signal(_ traceID: String, source: String = "test") -> String {
        "{\"trace_id\": \"\(traceID)\", \"symbol\": \"MSFT\", \"price\": 101.5, \"volume\": 100, \"source\": \"\(source)\", \"action\": \"buy\", "
            + "\"position_size_pct\": 0.001, \"leverage\": 1.0, \"stop_loss\": 99.0, \"risk_reward_ratio\": 2.0}"
    }

    func recorded(_ f: Pipeline) -> Int { (try? f.store().passCount()) ?? 0 }

    @Test func anEntryThatMakesHandleThrowTakesNoBatchMateWithIt() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        f.extraEnvironment = ["ARK_MAX_DELIVERIES": "3"]
        for s in Stage.allCases where s != .joey { try f.start(s) }
        f.agents[.joey] = try ArkProcess([Stage.joey.rawValue], executable: Repo.arkAgentBinary,
                                         environment: f.environment.merging(["ARK_FAULT": "joey:fail_on=POISON"]) { $1 }, logPath: f.dir.path + "/joey.log")
        // One pipeline of 300: Joey reads them in batches of up to 256 with the poison inside one.
        let c = try f.redis.client()
        _ = try c.pipeline((0..<300).map { i in
            ["XADD", .text(Stage.kyle.inputStream), "*", "event", .text(signal("mate-\(i)", source: i == 150 ? "POISON" : "test"))]
        })
        #expect(waitFor(timeout: 60) { recorded(f) == 300 }, "\(recorded(f)) recorded\n\(f.logs())")
        let store = try f.store()
        let poison = try #require(try store.pass(traceID: "mate-150"))
        #expect(poison.verdict == .deadlettered, "\(poison)")
        // Kyle sent the 300 to Joey in envelopes: the poison was one event of one, retried alone.
        #expect(poison.reasons.joined().contains("failed 3 times (ARK_MAX_DELIVERIES=3)"), "\(poison.reasons)")
        #expect(try store.deadLetterCount() == 1)
        for i in 0..<300 where i != 150 {
            let p = try #require(try store.pass(traceID: "mate-\(i)"))
            #expect(p.verdict == .approved || p.verdict == .denied, "mate-\(i): \(p.verdict) \(p.reasons)")
        }
    }

    @Test func anEntryThatKillsItsProcessIsIsolatedAndDeadLetteredWhileTheRestFlows() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        f.extraEnvironment = ["ARK_MAX_DELIVERIES": "3"]
        for s in Stage.allCases where s != .joey { try f.start(s) }
        let joey = try startSupervised(f, .joey, ["ARK_FAULT": "joey:crash_on=KILLER"])
        try f.queueSignals(100, prefix: "before")
        #expect(waitFor(timeout: 60) { recorded(f) == 100 }, "\(f.logs())")

        let c = try f.redis.client()
        let killedAt = wallClockNanoseconds()
        _ = try c.command(["XADD", .text(Stage.kyle.inputStream), "*", "event", .text(signal("killer", source: "KILLER"))])
        // A steady flow behind it, 20 a second for 10 s.
        try await f.trickleSignals(200, prefix: "after", perSecond: 20)
        #expect(waitFor(timeout: 60) { recorded(f) == 301 }, "\(recorded(f)) recorded\n\(joey.output.suffix(4000))")

        let store = try f.store()
        let killer = try #require(try store.pass(traceID: "killer"))
        #expect(killer.verdict == .deadlettered, "\(killer)")
        #expect(killer.reasons.joined().contains("died or hung"), "\(killer.reasons)")
        #expect(try store.deadLetterCount() == 1)
        let dead = try #require(try store.deadLetters().first)
        var latencies: [Double] = []
        for i in 0..<200 {
            let p = try #require(try store.pass(traceID: "after-\(i)"))
            #expect(p.verdict == .approved || p.verdict == .denied, "after-\(i): \(p.verdict) \(p.reasons)")
            latencies.append(p.latencyMs)
        }
        let deaths = joey.output.components(separatedBy: "restarting it in 1 s").count - 1
        #expect(deaths == 3, "\(joey.output.suffix(4000))")
        // The figures docs/reliability.md quotes.
        let isolatedS = Double(dead.tsNs - killedAt) / 1e9
        print("killer entry: \(deaths) deaths, dead-lettered \(String(format: "%.1f", isolatedS)) s after it was queued; "
              + "signals behind it: max latency \(String(format: "%.0f", latencies.max() ?? 0)) ms, median \(String(format: "%.0f", latencies.sorted()[100])) ms")
    }

    /// The killer is one event of an envelope of 100: the first death takes the envelope's
    /// batch, the heir handles its events one at a time under its in-flight record, and each
    /// later heir starts at the event in hand, so the deaths are charged to the killer alone.
    /// After ARK_MAX_DELIVERIES of them it is dead-lettered and the other 99 are recorded,
    /// each once.
    @Test func aKillerEventInsideAnEnvelopeOfAHundredIsDeadLetteredAloneAndTheOther99AreRecorded() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        f.extraEnvironment = ["ARK_MAX_DELIVERIES": "3", "ARK_ENVELOPE_MAX": "100"]
        for s in Stage.allCases where s != .joey && s != .kyle { try f.start(s) }
        let joey = try startSupervised(f, .joey, ["ARK_FAULT": "joey:crash_on=KILLER"])
        let c = try f.redis.client()
        _ = try c.pipeline((0..<100).map { i in
            ["XADD", .text(Stage.kyle.inputStream), "*", "event", .text(signal("mate-\(i)", source: i == 37 ? "KILLER" : "test"))]
        })
        // Kyle, started with the 100 waiting, reads them in one batch and sends one envelope.
        try f.start(.kyle)
        #expect(waitFor(timeout: 90) { recorded(f) == 100 }, "\(recorded(f)) recorded\n\(joey.output.suffix(4000))")
        let store = try f.store()
        let killer = try #require(try store.pass(traceID: "mate-37"))
        #expect(killer.verdict == .deadlettered, "\(killer)")
        #expect(killer.reasons.joined().contains("event 38 of the 100 of its entry: the process handling it alone died or hung 3 times"), "\(killer.reasons)")
        #expect(try store.deadLetterCount() == 1)
        let dead = try #require(try store.deadLetters().first)
        #expect(dead.entryID.hasSuffix("/37"), "\(dead.entryID)")
        for i in 0..<100 where i != 37 {
            let p = try #require(try store.pass(traceID: "mate-\(i)"))
            #expect(p.verdict == .approved || p.verdict == .denied, "mate-\(i): \(p.verdict) \(p.reasons)")
        }
        // The batch's death, then three charged to the killer alone.
        let deaths = joey.output.components(separatedBy: "restarting it in 1 s").count - 1
        #expect(deaths == 4, "\(joey.output.suffix(4000))")
        // Nothing left pending on Joey's stream: the envelope was acknowledged with its last event.
        #expect(waitFor(timeout: 10) { ((try? StreamBus.backlog(of: Stage.joey.inputStream, group: Stage.joey.group, on: c)) ?? -1) == 0 })
        #expect(try store.passCount() == 100)
    }

    @Test func aDeadLetterThatKillsAletheiaIsRecordedRawAndEndsTheCrashLoop() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        f.extraEnvironment = ["ARK_MAX_DELIVERIES": "2"]
        for s in Stage.allCases where s != .aletheia { try f.start(s) }
        let aletheia = try startSupervised(f, .aletheia, ["ARK_FAULT": "aletheia:crash_on=DEADLY"])
        let c = try f.redis.client()
        _ = try c.command(["XADD", .text(Streams.deadLetter), "*", "event", .text("{\"trace_id\":\"DEADLY\"}"), "reason", "test", "stream", "ark:joey",
                           "entry_id", "1-0", "group", "Joey", "consumer", "Joey-x-1", "deliveries", "6", "ts_ns", .text(String(wallClockNanoseconds()))])
        try f.queueSignals(50, prefix: "beside")
        #expect(waitFor(timeout: 60) { ((try? f.store().deadLetters()) ?? []).contains { $0.reason.contains("recorded without decoding") } },
                "\(aletheia.output.suffix(4000))")
        #expect(waitFor(timeout: 30) { recorded(f) >= 50 }, "\(recorded(f))\n\(aletheia.output.suffix(3000))")
        // It stays recorded once, and Aletheia stays up.
        try await Task.sleep(for: .seconds(2))
        #expect(try f.store().deadLetterCount() == 1)
        let restarts = aletheia.output.components(separatedBy: "restarting it in 1 s").count - 1
        #expect(restarts >= 1 && restarts <= 3, "\(aletheia.output.suffix(3000))")
        #expect(aletheia.isRunning)
    }

    @Test func aFrozenAletheiaWithTenTimesTheBoundQueuedDropsNothingAndHoldsEveryStreamNearItsBound() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        let bound = 1000
        f.extraEnvironment = ["ARK_STREAM_MAXLEN": String(bound)]
        try f.startAll()
        let c = try f.redis.client()
        #expect(waitFor(timeout: 30) { ((try? c.command(["HLEN", .text(Streams.heartbeats)]))?.integer ?? 0) == 5 })
        let aletheia = try #require(f.agents[.aletheia])
        aletheia.child.signal(SIGSTOP)
        for chunk in 0..<10 { try f.queueSignals(1000, prefix: "flood", first: chunk * 1000) }

        func holdingBack() -> Set<String> {
            let beats = ((try? c.hashEntries(Streams.heartbeats)) ?? []).compactMap { HeartbeatRecord(json: $0.value) }
            return Set(beats.filter { $0.backpressure != nil }.map(\.stage))
        }
        func backlogs() throws -> [Stage: Int] {
            var out: [Stage: Int] = [:]
            for s in Stage.allCases { out[s] = try StreamBus.backlog(of: s.inputStream, group: s.group, on: c, maxEventsPerEntry: ARKConfig.defaultEnvelopeMax) }
            return out
        }
        // Kenny holds back for ark:aletheia, and so does Kyle, which writes its rejections
        // there too: the flood waits in ark:kyle.
        #expect(waitFor(timeout: 90) { holdingBack().isSuperset(of: ["Kyle", "Kenny"]) }, "holding back: \(holdingBack()), \((try? backlogs()) ?? [:])\n\(f.logs())")
        try await Task.sleep(for: .seconds(3))
        let held = try backlogs()
        // Each stage's input at most one batch (ARK_BATCH_SIZE, 256) past the bound, the rest
        // waiting in ark:kyle; all 10,000 are somewhere.
        for s in [Stage.joey, .hrm, .kenny, .aletheia] {
            #expect(held[s]! <= bound + 256, "\(s): \(held)")
        }
        #expect(held.values.reduce(0, +) == 10_000, "\(held)")
        #expect(held[.kyle]! >= 10_000 - 4 * (bound + 256), "\(held)")
        #expect(try backlogs() == held, "the backlogs moved while Aletheia was frozen")
        print("frozen Aletheia, bound \(bound): backlogs \(Stage.allCases.map { "\($0.rawValue) \(held[$0]!)" }.joined(separator: ", "))")

        aletheia.child.signal(SIGCONT)
        #expect(waitFor(timeout: 180) { recorded(f) == 10_000 }, "\(recorded(f)) recorded\n\(f.logs())")
        #expect(try f.store().deadLetterCount() == 0)
        #expect(waitFor(timeout: 10) { holdingBack().isEmpty })
        #expect(try f.tracesFilledTwice() == [])
    }
} }
