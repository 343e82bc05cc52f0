import ARKBus
import ARKCore
import ARKMonitoring
import ARKSLO
import ARKState
import ARKStoreWriter
import ARKTestSupport
import Foundation
import Testing

@Suite struct ExpositionAndHealthTests {
    @Test func mergeLabelsEverySampleWithItsProcessAndWritesEachFamilyOnce() {
        var m = PrometheusExposition()
        m.add("# TYPE ark_passes_total counter\nark_passes_total{verdict=\"approved\"} 5\n# TYPE ark_ethics_drift gauge\nark_ethics_drift 0\n", process: "h-1")
        m.add("# TYPE ark_passes_total counter\nark_passes_total{verdict=\"approved\"} 7\n# TYPE ark_ethics_drift counter\nark_ethics_drift 3\n", process: "h-2", track: .canary)
        let text = m.text()
        #expect(text.components(separatedBy: "# TYPE ark_passes_total counter").count == 2)
        #expect(text.contains("ark_passes_total{process=\"h-1\",track=\"baseline\",verdict=\"approved\"} 5"))
        #expect(text.contains("ark_passes_total{process=\"h-2\",track=\"canary\",verdict=\"approved\"} 7"))
        #expect(text.contains("ark_ethics_drift{process=\"h-1\",track=\"baseline\"} 0"))
        #expect(!text.contains("} 3"))  // the family whose type disagreed is left out, not mixed in
        #expect(m.conflicts.count == 1)
        #expect(text.contains("# HELP ark_passes_total Passes recorded by Aletheia"))
    }

    func beat(_ stage: Stage, _ instance: String, ageS: Double, quarantined: Bool = false, now: Int64) -> HeartbeatRecord {
        HeartbeatRecord(instance: instance, stage: stage.rawValue, host: "h", pid: 1, processed: 0, failed: 0, pending: 0, p50Ms: 0, p95Ms: 0,
                      tsNs: now - Int64(ageS * 1e9), quarantined: quarantined)
    }

    @Test func healthNamesEachCheckAndTheWorstWins() {
        let now = wallClockNanoseconds()
        var beats = Stage.allCases.map { beat($0, "\($0.rawValue)-1", ageS: 0.5, now: now) }
        var input = HealthInputs(redisProblem: nil, storeProblem: nil, journalMode: "wal", heartbeats: beats, graveyardProblem: nil, slo: nil, nowNs: now)
        input.slo = SLOReport(generatedNs: now, windowSeconds: 300, slos: [], violations: [], inFlightOverdue: 0, notes: [])
        #expect(evaluateHealth(input).status == .healthy)

        beats.append(beat(.kenny, "Kenny-2", ageS: 0.5, quarantined: true, now: now))
        input.heartbeats = beats
        #expect(evaluateHealth(input).status == .degraded)

        input.heartbeats = beats.filter { $0.instance != "Kenny-1" }  // only the quarantined one is left
        let r = evaluateHealth(input)
        #expect(r.status == .unhealthy)
        #expect(r.checks.first { $0.name == "stage:Kenny" }?.detail.contains("wait in Redis") == true)

        input.heartbeats = Stage.allCases.map { beat($0, "\($0.rawValue)-1", ageS: 0.5, now: now) }
        input.slo?.violations = ["availability: 0.9 < target 0.995 over 5m"]
        #expect(evaluateHealth(input).status == .degraded)
        input.redisProblem = "connection refused"
        input.heartbeats = nil
        #expect(evaluateHealth(input).status == .unhealthy)
        #expect(HealthStatus.degraded.exitCode == 2 && HealthStatus.unhealthy.exitCode == 1)
    }

    @Test func aStageHoldingBackIsDegradedAndSaysWhichBacklog() throws {
        let now = wallClockNanoseconds()
        var beats = Stage.allCases.map { beat($0, "\($0.rawValue)-1", ageS: 0.5, now: now) }
        beats[0].backpressure = Stage.joey.inputStream
        let input = HealthInputs(redisProblem: nil, storeProblem: nil, journalMode: "wal", heartbeats: beats, graveyardProblem: nil,
                                 slo: SLOReport(generatedNs: now, windowSeconds: 300, slos: [], violations: [], inFlightOverdue: 0, notes: []), nowNs: now)
        let r = evaluateHealth(input)
        #expect(r.status == .degraded)
        let kyle = try #require(r.checks.first { $0.name == "stage:Kyle" })
        #expect(kyle.status == .degraded && kyle.detail.contains("1 holding back: the backlog of ark:joey is over ARK_STREAM_MAXLEN"), "\(kyle.detail)")
        // The heartbeat carries it: the field round-trips through the JSON agents publish.
        let json = Array(#"{"instance":"Kyle-1","stage":"Kyle","ts_ns":1,"backpressure":"ark:joey"}"#.utf8)
        #expect(HeartbeatRecord(json: json)?.backpressure == "ark:joey")
        #expect(HeartbeatRecord(json: Array(#"{"instance":"Kyle-1","stage":"Kyle","ts_ns":-5}"#.utf8)) == nil)
    }

    @Test func aLockedStoreOrAFullDiskIsUnhealthyAndALowDiskDegraded() {
        let now = wallClockNanoseconds()
        var input = HealthInputs(redisProblem: nil, storeProblem: nil, journalMode: "wal", storeSpace: FileSystemSpace(freeBytes: 900 << 20, totalBytes: 1000 << 20),
                                 storeDirectory: "/var/lib/ark", heartbeats: Stage.allCases.map { beat($0, "\($0.rawValue)-1", ageS: 0.5, now: now) },
                                 graveyardProblem: nil, slo: SLOReport(generatedNs: now, windowSeconds: 300, slos: [], violations: [], inFlightOverdue: 0, notes: []), nowNs: now)
        func store() -> HealthCheck? { evaluateHealth(input).checks.first { $0.name == "state_store" } }
        #expect(store()?.status == .healthy && store()?.detail == "answering, WAL mode, writable, 943.7 MB free")

        input.storeSpace = FileSystemSpace(freeBytes: 40 << 20, totalBytes: 1000 << 20)
        #expect(store()?.status == .degraded && store()?.detail.hasPrefix("disk low: 41.9 MB of 1.0 GB free") == true)

        input.storeSpace = FileSystemSpace(freeBytes: 1 << 20, totalBytes: 1000 << 20)
        #expect(store()?.status == .unhealthy && store()?.detail.hasPrefix("disk full: 1.0 MB free on the file system of /var/lib/ark") == true)
        #expect(evaluateHealth(input).status == .unhealthy)

        input.storeSpace = nil
        input.storeWriteProblem = "locked: the write lock was not granted within 2000 ms"
        #expect(store()?.status == .unhealthy && store()?.detail.hasPrefix("locked") == true)
    }
}

/// Counting signals overdue in flight, against a private redis-server.
@Suite(.serialized) final class PipelineProbeTests {
    let redis: RedisServer
    init() throws { redis = try RedisServer() }
    deinit { redis.shutdown() }

    @Test func overdueCountsPendingAndUndeliveredEntriesOlderThanTheTimeout() throws {
        let c = try redis.client()
        let nowMs = wallClockNanoseconds() / 1_000_000
        let stream = Stage.joey.inputStream
        _ = try c.command(["XGROUP", "CREATE", .text(stream), "Joey", "0", "MKSTREAM"])
        for i in 0..<5 { _ = try c.command(["XADD", .text(stream), .text("\(nowMs - 20_000)-\(i)"), "event", "old"]) }
        for i in 0..<3 { _ = try c.command(["XADD", .text(stream), .text("\(nowMs - 100)-\(i)"), "event", "new"]) }
        // Two old entries delivered and not acknowledged; three old and three new never delivered.
        _ = try c.command(["XREADGROUP", "GROUP", "Joey", "c1", "COUNT", "2", "STREAMS", .text(stream), ">"])
        let probe = PipelineProbe(connection: c)
        let groups = try probe.groups()
        let joey = try #require(groups.first { $0.stage == .joey })
        #expect(joey.pending == 2 && joey.lag == 6)
        #expect(try probe.overdueInFlight(groups: groups, olderThanMs: 5_000, nowNs: nowMs * 1_000_000) == 5)
        #expect(try probe.overdueInFlight(groups: groups, olderThanMs: 60_000, nowNs: nowMs * 1_000_000) == 0)
    }

    /// An envelope overdue is its events overdue, delivered or not.
    @Test func overdueEnvelopesCountTheirEvents() throws {
        let c = try redis.client()
        let nowMs = wallClockNanoseconds() / 1_000_000
        let stream = Stage.hrm.inputStream
        _ = try c.command(["XGROUP", "CREATE", .text(stream), "HRM", "0", "MKSTREAM"])
        _ = try c.command(["XADD", .text(stream), .text("\(nowMs - 20_000)-0"), "events", "{}\n{}\n{}"])
        _ = try c.command(["XADD", .text(stream), .text("\(nowMs - 20_000)-1"), "events", "{}\n{}"])
        _ = try c.command(["XADD", .text(stream), .text("\(nowMs - 20_000)-2"), "event", "{}"])
        // The first envelope delivered and pending, the rest never delivered.
        _ = try c.command(["XREADGROUP", "GROUP", "HRM", "c1", "COUNT", "1", "STREAMS", .text(stream), ">"])
        let probe = PipelineProbe(connection: c)
        #expect(try probe.overdueInFlight(groups: try probe.groups(), olderThanMs: 5_000, nowNs: nowMs * 1_000_000) == 6)
    }
}

/// monitoring/ checked with promtool, installed by scripts/test.sh from Debian's prometheus.
@Suite struct MonitoringFilesTests {
    static let promtool = "/usr/bin/promtool"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: promtool), "promtool is not installed"))
    func prometheusConfigAlertRulesAndTheirUnitTestsPass() throws {
        let dir = Repo.root + "/monitoring"
        for args in [["check", "config", dir + "/prometheus.yml"], ["check", "rules", dir + "/ark_slo_alerts.yml"],
                     ["test", "rules", dir + "/tests/ark_slo_alerts_test.yml"]] {
            let r = try runCommand(Self.promtool, args)
            #expect(r.code == 0, "promtool \(args.joined(separator: " ")): \(r.output)")
        }
    }

    @Test func grafanaDashboardIsJSONWithPanels() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Repo.root + "/monitoring/grafana_dashboard.json"))
        let d = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = try #require(d["panels"] as? [[String: Any]])
        #expect(panels.count >= 10)
        let exprs = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        for name in ["ark_slo_ok", "ark_pass_latency_seconds_bucket", "ark_stage_processed_total", "watchdog_quarantines_total"] {
            #expect(exprs.contains { $0.contains(name) }, "no panel uses \(name)")
        }
    }
}
