// What every ARK process sets up before its services start: logs, metrics, signals.

import ARKBus
import ARKCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// What every ARK process sets up before its services start: its log format and level, and
/// its Prometheus registry behind swift-metrics. Shared by `ark` and the lean `ark-agent`.
public enum ProcessBootstrap {
    /// This process's registry: swift-metrics is bootstrapped onto it once.
    public static let metricsRegistry = PrometheusCollectorRegistry()

    public static func bootstrapMetrics() {
        var factory = PrometheusMetricsFactory(registry: metricsRegistry)
        let ms = { (v: Double) in Duration.microseconds(Int64(v * 1000)) }
        factory.durationHistogramBuckets = [
            MetricName.passLatency: [1, 2.5, 5, 10, 25, 50, 100, 250, 400, 1000, 2500, 5000, 10000].map(ms),
            MetricName.hrmEvaluation: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10, 50, 120, 500].map(ms),
            MetricName.stageLatency: [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 5000].map(ms),
            MetricName.dbWrite: [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000].map(ms),
        ]
        MetricsSystem.bootstrap(factory)
    }

    /// JSON lines (`ARK_LOG_FORMAT=json`, the default when standard error is not a
    /// terminal: log files) or text (`text`, the default on a terminal). An unknown level
    /// name logs at `info`.
    public static func bootstrapLogging(level levelName: String) {
        let level = Logger.Level(rawValue: levelName.lowercased()) ?? .info
        let format = ProcessInfo.processInfo.environment["ARK_LOG_FORMAT"]?.lowercased() ?? (isatty(2) == 1 ? "text" : "json")
        LoggingSystem.bootstrap { label in
            if format == "text" {
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// Runs `services` until SIGTERM or SIGINT, when each finishes gracefully. With a Redis
    /// URL, this process's metrics are published there for the metrics server of another
    /// process; without one (the metrics server itself), they are not.
    public static func run(_ services: [any Service], publishingMetricsTo redisURL: RedisURL?, track: Track = .baseline) async throws {
        var all = services
        if let redisURL { all.append(MetricsPublisher(registry: metricsRegistry, redisURL: redisURL, track: track)) }
        let group = ServiceGroup(configuration: .init(
            services: all.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "ark")))
        try await group.run()
    }
}
