import ARKBus
import ARKCore
import ARKState
import ARKStoreWriter
import ARKTestSupport
import Foundation
import Testing

/// The watchdog against real faults: two Kenny instances (one made faulty), the other stages,
/// `ark watchdog`, a private Redis and a real SQLite store. Idle take-over (XAUTOCLAIM) is
/// set to a minute, so only the watchdog's quarantine can move a faulty instance's entries
/// within the test.
extension EndToEnd { @Suite final class WatchdogTests {
    let f: Pipeline
    var healthy: ArkProcess!
    var faulty: ArkProcess!

    init() throws {
        f = try Pipeline()
        f.extraEnvironment = [
            "ARK_CLAIM_IDLE_MS": "60000", "WATCHDOG_RELEASE_BACKOFF_MS": "3000", "WATCHDOG_PROBATION_MS": "3000",
            "ARK_MAX_DELIVERIES": "20",
        ]
    }
    deinit { f.shutdown() }

    /// Every stage but Kenny once, Kenny twice (the second with `faultEnvironment`), the watchdog.
    func start(faultEnvironment: [String: String] = [:]) throws {
        for stage in Stage.allCases where stage != .kenny { try f.start(stage) }
        healthy = try f.startProcess(["agent", "Kenny"], name: "kenny-healthy")
        faulty = try f.startProcess(["agent", "Kenny"], name: "kenny-faulty", environment: faultEnvironment)
        try f.startProcess(["watchdog"], name: "watchdog")
    }

    var faultyInstance: String { "Kenny-\(ProcessInfo.processInfo.hostName)-\(faulty.pid)" }

    func events(_ action: String) throws -> [WatchdogEventRecord] {
        try f.store().watchdogEvents(limit: 1000).filter { $0.action == action && $0.instance == faultyInstance }
    }

    /// The trace ids of the entries the faulty instance holds (delivered, not acknowledged).
    func held() throws -> [String] {
        let c = try f.redis.client()
        let pending = try c.command(["XPENDING", "ark:kenny", "Kenny", "-", "+", "1000", .text(faultyInstance)]).array ?? []
        var traces: [String] = []
        for row in pending {
            guard let id = row.array?.first?.string,
                  let entry = try c.command(["XRANGE", "ark:kenny", .text(id), .text(id)]).array?.first?.array,
                  let fields = entry.last?.array, fields.count >= 2, case .bulk(let payload) = fields[1] else { continue }
            // An entry of one `event`, or an envelope of several.
            let events = fields[0].string == Envelope.field ? payload.withUnsafeBytes { Envelope.split($0) } : [payload]
            traces += events.compactMap { try? EventCodec.decode($0).traceID }
        }
        return traces
    }

    /// Waits for the faulty instance's next quarantine, then for every entry it held to be
    /// recorded: `holding` when known at the fault, else what it held when last seen before
    /// the quarantine. Returns (the quarantine, ms from it to the last of those passes, how
    /// many were held).
    func awaitQuarantine(after count: Int = 0, rule: String, holding: [String]? = nil, timeout: Double = 30) throws -> (WatchdogEventRecord, Double?, Int) {
        var event: WatchdogEventRecord?
        var traces = holding ?? []
        _ = try waitFor(timeout: timeout) {
            event = try events("quarantine").dropFirst(count).first
            if holding == nil { let now = try held(); if !now.isEmpty || event == nil { traces = now.isEmpty ? traces : now } }
            return event != nil
        }
        let q = try #require(event, "no quarantine of \(faultyInstance)\n\(f.logs())")
        #expect(q.figures.contains("\"rule\":\"\(rule)\""), "\(q)")
        guard !traces.isEmpty else { return (q, nil, 0) }
        var done: [String: StoredPass] = [:]
        let finished = try waitFor(timeout: 30, interval: 0.1) {
            done = try f.store().passes(traceIDs: traces)
            return done.count == traces.count
        }
        #expect(finished, "only \(done.count) of the \(traces.count) entries the quarantined instance held were recorded\n\(f.logs())")
        let last = done.values.map(\.doneNs).max() ?? q.tsNs
        return (q, Double(last - q.tsNs) / 1e6, traces.count)
    }

    func report(_ fault: String, faultNs: Int64, _ q: WatchdogEventRecord, _ drainMs: Double?, _ held: Int) {
        let detect = Double(q.tsNs - faultNs) / 1e6
        print("watchdog [\(fault)]: fault → quarantine \(Int(detect)) ms; quarantine → last of \(held) held entries recorded \(drainMs.map { $0 < 0 ? "before it (the instance finished them itself)" : "\(Int($0)) ms" } ?? "n/a (none held)")")
    }

    @Test func aSlowInstanceIsQuarantinedItsEntriesFinishElsewhereAndAReleaseByCommandRelapses() async throws {
        f.extraEnvironment["WATCHDOG_RELEASE_BACKOFF_MS"] = "120000"  // only the command releases it
        f.extraEnvironment["WATCHDOG_PROBATION_MS"] = "60000"  // longer than one of its batches
        // 9 s batches: quarantined at 5 s of a batch, while it still holds it.
        try start(faultEnvironment: ["ARK_FAULT": "kenny:latency=9000ms"])
        let fixture = f
        async let run = fixture.synthetic(count: 400, rate: 40)
        let (q, drainMs, held) = try awaitQuarantine(rule: "latency")
        // The fault begins with its first batch: the figures say how long that had run.
        let ran = try #require(q.figures.split(separator: ":").last.flatMap { Double($0.dropLast()) }, "\(q.figures)")
        report("slow, latency=9000ms", faultNs: q.tsNs - Int64(ran * 1e6), q, drainMs, held)
        #expect(ran < 9000, "quarantined only after its batch ended: its heartbeat did not show the batch running")
        let r = try await run
        try f.expectConsistent(r)
        #expect(r.completed == 400, "\(r.summary)\n\(f.logs())")
        #expect(held > 0 && healthy.output.contains("took over entries of quarantined instances"), "\(healthy.output.suffix(2000))")

        // Released by command onto probation; still slow, so it relapses at once, for longer.
        let release = try runCommand(Repo.arkBinary, ["watchdog", "release", faultyInstance], environment: f.environment)
        #expect(release.code == 0 && release.output.contains("released \(faultyInstance)"), "\(release.output)")
        #expect(try events("release").last?.by == "operator")
        try await f.trickleSignals(20, prefix: "after-release", perSecond: 10)
        let (again, _, _) = try awaitQuarantine(after: 1, rule: "latency")
        #expect(again.reason.hasPrefix("relapse on probation"), "\(again)")
        #expect(try f.store().watchdogInstances().first { $0.instance == faultyInstance }?.offences == 2)
        #expect(waitFor(timeout: 30) { (try? f.store().passCount()) == 420 }, "\(f.logs())")
        // An unknown selector names what is quarantined.
        let none = try runCommand(Repo.arkBinary, ["watchdog", "release", "Kenny-nohost-1"], environment: f.environment)
        #expect(none.code == 1 && none.output.contains("quarantined now: \(faultyInstance)"), "\(none.output)")
    }

    @Test func aFailingInstanceIsQuarantinedOnItsFailureRate() async throws {
        f.extraEnvironment["WATCHDOG_PROBATION_MS"] = "30000"  // room for the 10 batches the rate needs
        try start(faultEnvironment: ["ARK_FAULT": "kenny:errors=0.5"])
        let faultNs = wallClockNanoseconds()
        let fixture = f
        async let run = fixture.synthetic(count: 400, rate: 40)
        let (q, drainMs, held) = try awaitQuarantine(rule: "failure_rate")
        report("failing, errors=0.5", faultNs: faultNs, q, drainMs, held)
        let r = try await run
        try f.expectConsistent(r)
        #expect(r.completed == 400, "\(r.summary)\n\(f.logs())")
        // Released by back-off, it fails again on probation and goes back, for longer.
        #expect(try waitFor(timeout: 20) { try events("release").first?.by == "watchdog" }, "\(f.logs())")
        try await f.trickleSignals(60, prefix: "probation", perSecond: 10)
        let (again, _, _) = try awaitQuarantine(after: 1, rule: "failure_rate")
        #expect(again.reason.hasPrefix("relapse on probation"), "\(again)")
        #expect(waitFor(timeout: 30) { (try? f.store().passCount()) == 460 }, "\(f.logs())")
        #expect(try f.store().verdictCounts()[.deadlettered] == nil)
    }

    /// The faulty instance is given 2 s batches (under the 3.5 s warning level) so that it
    /// freezes or dies holding entries, which must then finish elsewhere.
    static let busy = ["ARK_FAULT": "kenny:latency=2000ms"]

    /// Runs 400 signals through the pipeline with a busy faulty Kenny, applies `fault` to it
    /// 3 s in, and checks it is quarantined for its missing heartbeat, that what it held
    /// finishes elsewhere, and that the run is complete and consistent.
    func quarantinedMidRun(_ name: String, fault: () -> Void) async throws {
        try start(faultEnvironment: Self.busy)
        let fixture = f
        async let run = fixture.synthetic(count: 400, rate: 40)
        try await Task.sleep(for: .seconds(3))
        fault()
        let faultNs = wallClockNanoseconds()
        let (q, drainMs, held) = try awaitQuarantine(rule: "missing_heartbeat", holding: try held())
        report(name, faultNs: faultNs, q, drainMs, held)
        #expect(held > 0, "a frozen or killed reader should hold what Redis delivered to it")
        let r = try await run
        try f.expectConsistent(r)
        #expect(r.completed == 400, "\(r.summary)\n\(f.logs())")
    }

    @Test func aHungInstanceIsQuarantinedAndReleasedByBackOffOnceItRecovers() async throws {
        try await quarantinedMidRun("hung, SIGSTOP") { faulty.child.signal(SIGSTOP) }
        // It thaws: heartbeats resume, the back-off ends, it is released onto probation and
        // passes it.
        faulty.child.signal(SIGCONT)
        #expect(try waitFor(timeout: 20) { try events("release").first?.by == "watchdog" }, "\(f.logs())")
        #expect(try waitFor(timeout: 20) { try f.store().watchdogInstances().first { $0.instance == faultyInstance }?.status == "healthy" }, "\(f.logs())")
        #expect(try f.redis.client().command(["HLEN", "ark:quarantine"]).integer == 0)
    }

    /// A killed instance needs no quarantine: it was a process of this host, so its live
    /// peer takes over what it held at once (handling each entry alone, in case one killed
    /// it), and the watchdog forgets it once nothing is pending on it.
    @Test func aKilledInstancesEntriesFinishElsewhereAtOnce() async throws {
        try start(faultEnvironment: Self.busy)
        let fixture = f
        async let run = fixture.synthetic(count: 400, rate: 40)
        try await Task.sleep(for: .seconds(3))
        let holding = try held()
        faulty.kill9()
        let faultNs = wallClockNanoseconds()
        #expect(!holding.isEmpty, "a killed reader should hold what Redis delivered to it")
        var done: [String: StoredPass] = [:]
        #expect(try waitFor(timeout: 15, interval: 0.1) {
            done = try f.store().passes(traceIDs: holding)
            return done.count == holding.count
        }, "only \(done.count) of the \(holding.count) entries the killed instance held were recorded\n\(f.logs())")
        let last = done.values.map(\.doneNs).max() ?? faultNs
        print("watchdog fault killed, kill -9: \(holding.count) held entries recorded \(String(format: "%.0f", Double(last - faultNs) / 1e6)) ms after the kill")
        let r = try await run
        try f.expectConsistent(r)
        #expect(r.completed == 400, "\(r.summary)\n\(f.logs())")
        #expect(try f.redis.client().command(["XPENDING", "ark:kenny", "Kenny", "-", "+", "10", .text(faultyInstance)]).array?.isEmpty == true)
    }
} }
