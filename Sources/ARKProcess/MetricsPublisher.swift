// This process's metrics published to Redis for the metrics server.

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
import Prometheus
import ServiceLifecycle

/// Publishes this process's Prometheus exposition to Redis every second
/// (`ark:metrics:<host>-<pid>`, expiring after a few seconds), so one metrics server can
/// serve every agent process in the production layout without a scrape port per process.
/// A process that dies drops out of `/metrics` when its key expires.
public actor MetricsPublisher: Service {
    private nonisolated let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    let registry: PrometheusCollectorRegistry
    let key: String
    let interval: Duration
    let logger: Logger
    private let connection: RedisConnection
    private var failing = false

    public init(registry: PrometheusCollectorRegistry, redisURL: RedisURL, track: Track = .baseline, interval: Duration = .seconds(1), logger: Logger = Logger(label: "ark.metrics")) {
        self.registry = registry
        self.key = Streams.metricsPrefix + Self.label(process: Self.processLabel(), track: track)
        self.interval = interval
        self.logger = logger
        self.executor = ThreadExecutor(name: "ark-metrics-publisher")
        self.connection = RedisConnection(url: redisURL, commandTimeout: .seconds(2))
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.publishOnce()
                try? await Task.sleep(for: self.interval)
            }
        }
        connection.close()
        executor.shutdown()
    }

    /// The key suffix: the process, after `canary/` for a canary process, so the metrics
    /// server labels every sample of it `track="canary"`.
    static func label(process: String, track: Track) -> String {
        track == .canary ? "canary/" + process : process
    }

    public static func parse(label: String) -> (process: String, track: Track) {
        label.hasPrefix("canary/") ? (String(label.dropFirst(7)), .canary) : (label, .baseline)
    }

    /// This process in the metrics server's `process` label: `<host>-<pid>`.
    public static func processLabel() -> String { "\(ProcessInfo.processInfo.hostName)-\(getpid())" }

    func publishOnce() {
        do {
            if !connection.isConnected { try connection.connect(timeout: .seconds(1)) }
            let ttl = max(3_000, Int(interval.components.seconds * 5_000))
            let reply = try connection.command(["SET", .text(key), .bytes(registry.emitToBuffer()), "PX", .int(ttl)])
            if case .error(let e) = reply { throw RedisError.server(e) }
            if failing { logger.notice("publishing metrics again") }
            failing = false
        } catch {
            if !failing { logger.warning("cannot publish metrics to Redis; retrying", metadata: ["error": .string("\(error)")]) }
            failing = true
            connection.close()
        }
    }
}
