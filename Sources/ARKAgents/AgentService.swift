import ARKCore
import ARKState
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
        Aletheia(store: try .outcomesWriter(path: config.stateDB, checkpointInterval: .seconds(config.dbCheckpointIntervalSeconds)), config: config)
    }
}
