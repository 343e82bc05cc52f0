// `ark run` and `ark agent`: the stages and services run in this process.

import ARKAgents
import ARKCore
import ARKMonitoring
import ARKProcess
import ARKState
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run all five stages, the watchdog, the metrics server and the API in one process until SIGTERM or SIGINT.",
        discussion: """
            Each stage is its own actor on its own thread with its own Redis connection and
            consumer (<stage>-<host>-<pid>). On SIGTERM each finishes and commits its batch.
            The metrics server (METRICS_BIND:METRICS_PORT) runs unless METRICS_SERVER_ENABLED=false,
            the watchdog unless WATCHDOG_ENABLED=false, the API (API_BIND:API_PORT, needs
            JWT_SECRET; --local makes one) unless API_ENABLED=false.
            Examples:
              REDIS_URL=redis://127.0.0.1:6379/0 ark run --local
              ARK_STATE_DB=/var/lib/ark/ark_state.db ark run
            """)

    @OptionGroup var common: CommonOptions

    func run() async throws {
        common.bootstrapLogging()
        let config = try common.config()
        if common.local { ensureLocalAuditKey(config) }
        try await runStages(Stage.allCases, config: config, withMetricsServer: config.metricsServerEnabled, withWatchdog: config.watchdogEnabled, withAPI: config.apiEnabled)
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run one stage (Kyle, Joey, HRM, Kenny or Aletheia) in this process.",
        discussion: """
            Several processes of one stage share its consumer group: each entry goes to one of
            them, and entries left pending by a dead one are taken over after ARK_CLAIM_IDLE_MS.
            Examples:
              ark agent Kyle
              ark agent hrm --local
              ARK_BATCH_SIZE=512 ark agent Aletheia
            """)

    @Argument(help: "The stage: Kyle, Joey, HRM, Kenny or Aletheia (any case).")
    var name: String

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard Stage(name: name) != nil else {
            throw ValidationError("unknown stage '\(name)': use one of \(Stage.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        common.bootstrapLogging()
        let config = try common.config()
        if common.local { ensureLocalAuditKey(config) }
        try await runStages([Stage(name: name)!], config: config)
    }
}

/// Runs the given stages as services in this process (and the watchdog and the API when asked), with
/// either the metrics server (which serves this process's registry directly) or a publisher
/// of this process's metrics to Redis for the metrics server of another process.
func runStages(_ stages: [Stage], config: ARKConfig, withMetricsServer: Bool = false, withWatchdog: Bool = false, withAPI: Bool = false) async throws {
    ProcessBootstrap.bootstrapMetrics()
    let logger = Logger(label: "ark")
    let stageServices: (services: [any Service], settings: AgentSettings)
    do {
        stageServices = try makeStageServices(stages, config: config, logger: logger)
    } catch {
        throw fail(error.description, code: 78)
    }
    var services = stageServices.services
    if withWatchdog {
        services.append(try makeWatchdog(config))
    }
    if withAPI {
        services.append(try makeAPIServer(config))
    }
    if withMetricsServer {
        services.append(try makeMetricsServer(config))
    }
    try await ProcessBootstrap.run(services, publishingMetricsTo: withMetricsServer ? nil : stageServices.settings.redisURL, track: config.track)
}
