import ARKBus
import ARKCore
import ARKState
import ARKTestSupport
import Foundation
import Testing

/// Every end-to-end suite runs inside this one, one test at a time: each starts a whole
/// pipeline of processes, and two at once on two cores make their timing checks lie.
@Suite(.serialized) enum EndToEnd {}

/// The whole pipeline as operators run it: five `ark agent` processes, a real Redis, a real
/// SQLite file.
extension EndToEnd { @Suite struct PipelineTests {
    @Test func thousandSignalsThroughFiveProcessesLoseNothing() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        let report = try await f.synthetic(count: 1000, rate: 250)
        try f.expectConsistent(report)
        #expect(report.completed == 1000 && report.violationsInjected == 17 && report.violationsDenied == 17, "\(report.summary)\n\(f.logs())")
        #expect(try f.store().passCount() == 1000)
        // Every agent published heartbeats and Aletheia copied them into the state store.
        #expect(waitFor(timeout: 5) { (try? f.store().heartbeats().count) == 5 })
        // Each stage trims what it acknowledged from its input stream (whole 100-entry nodes),
        // except `ark:aletheia`, which the fixture's tap group keeps whole.
        let c = try f.redis.client()
        for stage in [Stage.kyle, .joey, .hrm, .kenny] {
            #expect(waitFor(timeout: 5) { ((try? c.command(["XLEN", .text(stage.inputStream)]))?.integer ?? .max) <= 100 },
                    "\(stage.inputStream) kept its acknowledged entries")
        }
        // In envelopes: fewer entries than events, every event there.
        #expect(try f.eventsWritten(to: Stage.aletheia.inputStream).count == 1000)
        #expect((try c.command(["XLEN", .text(Stage.aletheia.inputStream)]).integer ?? 0) <= 1000)
    }

    @Test func killingAnyStageMidStreamLosesNothingAndDuplicatesNoOrder() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        async let report = f.synthetic(count: 1200, rate: 100)
        var pendingAtKill: [Stage: Int] = [:]
        let redis = try f.redis.client()
        for stage in Stage.allCases {
            try await Task.sleep(for: .milliseconds(1500))
            // Frozen first, so Redis keeps delivering to its blocked read and the instance
            // most likely dies with entries pending, which its successor must take over.
            let victim = try #require(f.agents[stage])
            victim.child.signal(SIGSTOP)
            try await Task.sleep(for: .milliseconds(300))
            let consumers = try redis.command(["XPENDING", .text(stage.inputStream), .text(stage.group)]).array?[3].array ?? []
            pendingAtKill[stage] = consumers.compactMap { c -> Int? in
                guard let pair = c.array, pair.count == 2, pair[0].string?.hasSuffix("-\(victim.pid)") == true else { return nil }
                return pair[1].integer.map(Int.init)
            }.reduce(0, +)
            victim.kill9()
            try f.start(stage)
        }
        let r = try await report
        try f.expectConsistent(r)
        #expect(r.completed == 1200, "\(r.summary)\n\(f.logs())")
        // Whatever a killed instance left pending, its successor took over: at once, since
        // it was a process of this host that has exited.
        #expect(pendingAtKill.values.reduce(0, +) > 0, "no stage died with entries pending: \(pendingAtKill)")
        for (stage, pending) in pendingAtKill where pending > 0 {
            let output = f.agents[stage]?.output ?? ""
            #expect(output.contains("took over the entries of an exited process"), "\(stage.rawValue) left \(pending) pending:\n\(output.suffix(2000))")
        }
    }

    @Test func aRedisRestartMidStreamIsRecoveredByItself() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        async let report = f.synthetic(count: 800, rate: 100)
        try await Task.sleep(for: .seconds(3))
        try f.redis.restart()
        let r = try await report
        try f.expectConsistent(r)
        #expect(r.completed == 800, "\(r.summary)\n\(f.logs())")
        for (stage, p) in f.agents {
            #expect(p.isRunning, "\(stage.rawValue) exited")
            #expect(p.output.contains("Redis connection restored"), "\(stage.rawValue):\n\(p.output.suffix(2000))")
        }
    }

    @Test func malformedEntriesAreRejectedOrDeadLetteredWithReasons() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        let c = try f.redis.client()
        let good = #"{"id":"g","symbol":"AAPL","price":190.25,"volume":1200,"ts":1732330000.1,"stop_loss":185.0}"#
        var kyleInputs: [[RedisArg]] = []
        let bad: [String] = [
            "", "not json", "{", "[1,2]", "null", "{\"price\":NaN,\"symbol\":\"A\",\"volume\":1}",
            "{\"price\":Infinity,\"symbol\":\"A\",\"volume\":1}", "{\"price\":\"1\",\"symbol\":\"A\",\"volume\":1}",
            "{\"price\":1,\"symbol\":7,\"volume\":1}", "{\"price\":1,\"symbol\":\"A\",\"volume\":-1}",
            "{\"symbol\":\"A\",\"volume\":1}", "{\"price\":1,\"volume\":1}", "{\"unknown\":true}",
            "{\"price\":1,\"symbol\":\"" + String(repeating: "Z", count: 100_000) + "\",\"volume\":1}",
            "{\"price\":1,\"symbol\":\"A\",\"volume\":1,\"leverage\":[1]}", "{\"price\":-0.0,\"symbol\":\"A\",\"volume\":1}",
            "{\"price\":1,\"symbol\":\"A\\u0000\",\"volume\":1}", "{\"price\":1e999,\"symbol\":\"A\",\"volume\":1}",
            String(repeating: "[", count: 10_000),
        ]
        for i in 0..<75 {
            kyleInputs.append(["XADD", .text(Stage.kyle.inputStream), "*", "event", .text(bad[i % bad.count])])
        }
        kyleInputs.append(["XADD", .text(Stage.kyle.inputStream), "*", "not_event", "x"])  // no event field
        for i in 0..<4 {  // invalid UTF-8
            kyleInputs.append(["XADD", .text(Stage.kyle.inputStream), "*", "event", .bytes(Array(good.utf8.prefix(30)) + [0xFF, 0xFE, UInt8(i)] + Array("\"}".utf8))])
        }
        // Garbage inside the pipeline: only a bug or tampering puts it there. It must be dead-lettered.
        var internalInputs: [[RedisArg]] = []
        for stage in [Stage.joey, .hrm, .kenny, .aletheia] {
            for payload in ["{}", "garbage", "{\"trace_id\":\"x\",\"symbol\":\"A\",\"price\":\"no\",\"volume\":1}", "{\"trace_id\":\"y\",\"symbol\":\"A\",\"price\":1,\"volume\":1,\"hops\":[{\"stage\":\"Mallory\"}]}"] {
                internalInputs.append(["XADD", .text(stage.inputStream), "*", "event", .text(payload)])
            }
            internalInputs.append(["XADD", .text(stage.inputStream), "*", "other", "field"])
        }
        let ids = try c.pipeline(kyleInputs).compactMap(\.string)
        #expect(ids.count == 80)
        _ = try c.pipeline(internalInputs)
        #expect(kyleInputs.count + internalInputs.count == 100)

        let store = try f.store()
        let allRecorded = waitFor(timeout: 20) {
            (try? store.verdictCounts()[.rejected]) == 80 && (try? store.deadLetterCount()) == 20
        }
        #expect(allRecorded, "rejected \(String(describing: try? store.verdictCounts())), dead letters \(String(describing: try? store.deadLetterCount()))\n\(f.logs())")
        let rejections = try store.rejections()
        for id in ids {
            let reasons = rejections["ark-" + id] ?? []
            #expect(!reasons.isEmpty, "entry \(id) has no recorded reason")
            #expect(reasons.allSatisfy { $0.contains(": ") }, "\(reasons)")
        }
        let dead = try store.deadLetters()
        #expect(dead.allSatisfy { !$0.reason.isEmpty && $0.stream.hasPrefix("ark:") })
        #expect(Set(dead.map(\.stream)) == Set([Stage.joey, .hrm, .kenny, .aletheia].map(\.inputStream)))
        #expect(dead.contains { $0.reason.contains("unknown stage 'Mallory'") })

        // The pipeline is still running and still right.
        for (stage, p) in f.agents { #expect(p.isRunning, "\(stage.rawValue) exited") }
        let report = try await f.synthetic(count: 60, rate: 60, violationEvery: 10)
        #expect(report.passed, "\(report.summary)")
        #expect(try store.verifyAudit().ok)
    }
}
}
