import ARKCore
import ARKStoreWriter
import Graveyard
import Logging
import ServiceLifecycle

/// Runs a `StageAgent` as a ServiceLifecycle service: on graceful shutdown the agent
/// finishes and commits its batch in progress, then returns.
public struct AgentService: Service {
    public let agent: StageAgent

    public init(agent: StageAgent) {
        self.agent = agent
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await agent.run()
        }
    }
}

/// Builds the processor of a stage from the configuration.
public func makeProcessor(_ stage: Stage, config: ARKConfig) throws -> any StageProcessor {
    switch stage {
    case .kyle: Kyle(config: config)
    case .joey: Joey(config: config)
    case .hrm: HRM(config: config)
    case .kenny: Kenny(config: config)
    case .aletheia:
        Aletheia(store: try .aletheia(path: config.stateDB, checkpointInterval: .seconds(config.dbCheckpointIntervalSeconds)), config: config)
    }
}

/// Why a stage cannot start: its message names the setting and the fix, and the process
/// exits with 78 (EX_CONFIG).
public struct StageStartError: Error, CustomStringConvertible {
    public let description: String
}

/// The services that run `stages` in this process, each agent on its own thread with its own
/// Redis connection, and the Redis URL they use. Shared by `ark run`, `ark agent` and `ark-agent`.
/// A Graveyard that fails its check is logged as critical, not refused: HRM then denies
/// every proposal (fails closed) until it is fixed, and says so in `/healthz`.
public func makeStageServices(_ stages: [Stage], config: ARKConfig, logger: Logger) throws(StageStartError) -> (services: [any Service], settings: AgentSettings) {
    let settings: AgentSettings
    do {
        settings = try AgentSettings(config: config)
    } catch {
        throw StageStartError(description: "REDIS_URL: \(error). Fix: use redis://[:password@]host:port/db or unix:///path/redis.sock")
    }
    if stages.contains(.hrm), let problem = Graveyard.check(directory: config.graveyardDir).problem {
        logger.critical("Graveyard check failed: HRM will deny every proposal until it is fixed", metadata: ["problem": .string(problem)])
    }
    var services: [any Service] = []
    for stage in stages {
        do {
            services.append(AgentService(agent: StageAgent(processor: try makeProcessor(stage, config: config), settings: settings)))
        } catch {
            throw StageStartError(description: "cannot start \(stage.rawValue): \(error)")
        }
    }
    return (services, settings)
}
