// `ark metrics-server`, `ark health` and `ark status`.

import ARKCore
import ARKMonitoring
import ARKProcess
import ARKSLO
import ARKState
import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

func makeMetricsServer(_ config: ARKConfig) throws -> MetricsServer {
    do {
        let backend = try MonitoringBackend(config: config, registry: ProcessBootstrap.metricsRegistry)
        return MetricsServer(backend: backend, host: config.metricsBind, port: config.metricsPort)
    } catch {
        throw fail("REDIS_URL: \(error). Fix: use redis://[:password@]host:port/db or unix:///path/redis.sock", code: 78)
    }
}

struct MetricsServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics-server",
        abstract: "Serve /metrics, /metrics/json, /slos, /healthz and /readyz for every ARK process.",
        discussion: """
            SLOs are computed from the state store's per-second rollups, so every server (and one
            restarted) gives the same answer. /metrics merges the expositions each agent process
            publishes to Redis, every sample labelled with its process.
            Examples:
              ark metrics-server --local
              METRICS_PORT=9191 ark metrics-server
              curl -s localhost:9090/slos
            """)

    @OptionGroup var common: CommonOptions

    func run() async throws {
        common.bootstrapLogging()
        ProcessBootstrap.bootstrapMetrics()
        let config = try common.config()
        let server = try makeMetricsServer(config)
        try await ProcessBootstrap.run([server], publishingMetricsTo: nil)
    }
}

struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Check Redis, the state store, every stage's heartbeat, the Graveyard and the SLOs.",
        discussion: """
            The same checks as GET /healthz. Exit status: 0 healthy, 1 unhealthy, 2 degraded.
            Examples:
              ark health --local
              ark health --json | jq .checks
            """)

    @Flag(help: "Print the report as JSON (as /healthz does).")
    var json = false

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try common.config()
        let backend = try MonitoringBackend(config: config, registry: nil, logger: Logger(label: "ark.health", factory: { _ in SwiftLogNoOpLogHandler() }))
        let report = await backend.health()
        if json {
            FileHandle.standardOutput.write(try JSONDocument.data(healthJSON(report), .pretty))
        } else {
            print("ARK is \(report.status.rawValue.uppercased())")
            for c in report.checks {
                print("  \(mark(c.status)) \(c.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(c.detail)")
            }
        }
        throw ExitCode(report.status.exitCode)
    }
}

func mark(_ s: HealthStatus) -> String {
    switch s {
    case .healthy: "✓"
    case .degraded: "!"
    case .unhealthy: "✗"
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Live dashboard: every stage's instances, rates, pending entries and p95; SLOs; quarantines.",
        discussion: """
            Redraws in place every --interval seconds until Ctrl-C. --once prints one frame
            (for scripts and logs).
            Examples:
              ark status --local
              ark status --once
            """)

    @Flag(help: "Print one frame and exit.")
    var once = false

    @Option(help: "Seconds between frames.")
    var interval: Double = 1

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard interval >= 0.2 && interval <= 3600 else { throw ValidationError("--interval must be between 0.2 and 3600 seconds") }
    }

    func run() async throws {
        let config = try common.config()
        let backend = try MonitoringBackend(config: config, registry: nil, logger: Logger(label: "ark.status", factory: { _ in SwiftLogNoOpLogHandler() }))
        var previous: [String: (processed: Int, tsNs: Int64)] = [:]
        while true {
            let frame = await StatusFrame.render(backend: backend, previous: &previous, config: config)
            if once {
                print(frame, terminator: "")
                return
            }
            FileHandle.standardOutput.write(Data(("\u{1B}[H\u{1B}[J" + frame).utf8))
            try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
        }
    }
}

enum StatusFrame {
    static func render(backend: MonitoringBackend, previous: inout [String: (processed: Int, tsNs: Int64)], config: ARKConfig) async -> String {
        let health = await backend.health()
        let beats = await backend.heartbeats()
        let slo = try? await backend.sloReport()
        let now = wallClockNanoseconds()
        var out = "ARK status  \(iso8601Now())  overall: \(health.status.rawValue.uppercased())\n\n"
        out += "STAGE     INSTANCE                              STATE        PROCESSED     RATE/s  PENDING  P95 ms\n"
        if let beats {
            // Instances silent for over a minute are gone (a restart has a new pid): counted, not listed.
            let gone = beats.filter { $0.ageSeconds(nowNs: now) > MonitoringBackend.goneAfterSeconds }
            for b in beats where b.ageSeconds(nowNs: now) <= MonitoringBackend.goneAfterSeconds {
                let age = b.ageSeconds(nowNs: now)
                let state = b.quarantined ? "QUARANTINED" : age > config.heartbeatStaleSeconds ? "silent \(Int(age))s" : "live"
                var rate = "-"
                if let p = previous[b.instance], b.tsNs > p.tsNs {
                    rate = String(format: "%.0f", Double(b.processed - p.processed) / (Double(b.tsNs - p.tsNs) / 1e9))
                }
                previous[b.instance] = (b.processed, b.tsNs)
                out += pad(b.stage, 9) + " " + pad(b.instance, 37) + " " + pad(state, 12)
                out += lpad(String(b.processed), 10) + " " + lpad(rate, 10) + " " + lpad(String(b.pending), 8) + " " + lpad(String(format: "%.2f", b.p95Ms), 7) + "\n"
            }
            if !gone.isEmpty { out += "  (\(gone.count) instance(s) silent for over a minute not shown: stopped or restarted)\n" }
        } else {
            out += "  (Redis unreachable: no heartbeats)\n"
        }
        out += "\nSLO                   TARGET      ACTUAL      STATUS     BUDGET LEFT  BURN 5m/1h\n"
        if let slo {
            for s in slo.slos {
                let actual = s.actual.map { String(format: "%.4g", $0) } ?? "no data"
                let budget = s.budgetRemaining.map { String(format: "%.1f%%", $0 * 100) } ?? "-"
                let burn = [BurnWindow.m5, .h1].map { w in (s.burnRates[w] ?? nil).map { String(format: "%.2f", $0) } ?? "-" }.joined(separator: "/")
                out += pad(s.name, 21) + " " + pad(String(format: "%g", s.target), 11) + " " + pad(actual, 11) + " " + pad(s.state.rawValue, 10) + " " + lpad(budget, 11) + "  " + burn + "\n"
            }
            if let n = slo.inFlightOverdue, n > 0 { out += "  \(n) signal(s) in flight past the \(Int(config.passTimeoutMs)) ms pass timeout\n" }
            for v in slo.violations { out += "  VIOLATION: \(v)\n" }
        } else {
            out += "  (state store unavailable)\n"
        }
        if let trading = health.checks.first(where: { $0.name == "trading" }) {
            out += "\nTRADING: " + (trading.status == .healthy ? "ACTIVE" : trading.detail) + "\n"
        }
        let quarantined = beats?.filter(\.quarantined) ?? []
        out += "\nQUARANTINES: " + (quarantined.isEmpty ? "none" : quarantined.map(\.instance).joined(separator: ", ")) + "\n"
        for c in health.checks where c.status != .healthy && c.name != "trading" { out += "  \(mark(c.status)) \(c.name): \(c.detail)\n" }
        return out
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n)) : s + String(repeating: " ", count: n - s.count) }
    static func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

    static func iso8601Now() -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date())
    }
}
