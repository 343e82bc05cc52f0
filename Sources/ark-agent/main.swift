// `ark-agent`, the lean agent binary: one stage, without the HTTP stack or Foundation.

import ARKAgents
import ARKCore
import ARKProcess
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
import ServiceLifecycle

// One pipeline stage in this process, as `ark agent STAGE` runs it, from a binary that links
// only what an agent needs: no HTTP stack, no metrics server, no operator commands. The
// agents' resident memory is mostly the pages of the binary they touch, so this saves about
// 3.7 MB per agent process (docs/performance.md). start_production.sh, the canary controller
// and `ark bench` start agents with it when it sits next to `ark`.

let usage = """
    usage: ark-agent STAGE [--local] [--log-level LEVEL]
      STAGE        Kyle, Joey, HRM, Kenny or Aletheia (any case)
      --local      the local layout: state under ./.ark/, rules from ./graveyard
      --log-level  trace, debug, info, notice, warning, error or critical (default: ARK_LOG_LEVEL, else info)
    Settings come from the environment, as for `ark agent` (see .env.production.template).

    """

func exit(usageError message: String) -> Never {
    writeStandard(.error, "ark-agent: \(message)\n\(usage)")
    exit(64)
}

var stage: Stage?
var local = false
var logLevel = ProcessInfo.processInfo.environment["ARK_LOG_LEVEL"] ?? "info"
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "-h", "--help":
        writeStandard(.output, usage)
        exit(0)
    case "--local":
        local = true
    case "--log-level":
        guard let value = arguments.popFirst() else { exit(usageError: "--log-level needs a value") }
        logLevel = value
    case _ where argument.hasPrefix("--log-level="):
        logLevel = String(argument.dropFirst("--log-level=".count))
    case _ where argument.hasPrefix("-"):
        exit(usageError: "unknown option '\(argument)'")
    default:
        guard stage == nil else { exit(usageError: "one stage per process; '\(argument)' is a second") }
        guard let named = Stage(name: argument) else {
            exit(usageError: "unknown stage '\(argument)': use one of \(Stage.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        stage = named
    }
}
guard let stage else { exit(usageError: "which stage?") }

ProcessBootstrap.bootstrapLogging(level: logLevel)
ProcessBootstrap.bootstrapMetrics()
let config: ARKConfig
do {
    let base = local ? ARKConfig.localDefaults(root: FileManager.default.currentDirectoryPath) : ARKConfig()
    config = try ARKConfig.load(environment: ProcessInfo.processInfo.environment, base: base)
} catch {
    writeStandard(.error, error.description + "\n")
    exit(78)
}
let logger = Logger(label: "ark")
let stageServices: (services: [any Service], settings: AgentSettings)
do {
    stageServices = try makeStageServices([stage], config: config, logger: logger)
} catch {
    writeStandard(.error, error.description + "\n")
    exit(78)
}
do {
    try await ProcessBootstrap.run(stageServices.services, publishingMetricsTo: stageServices.settings.redisURL, track: config.track)
} catch {
    logger.critical("stopped on an error", metadata: ["error": .string("\(error)")])
    exit(1)
}
