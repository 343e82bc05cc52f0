// A stage's agents (one per served shard) run as one ServiceLifecycle service.

import ARKBus
import ARKCore
import ARKStoreWriter
import Graveyard
import Logging
import ServiceLifecycle

/// Runs a stage's agents (one per shard this process serves) as one ServiceLifecycle
/// service: on graceful shutdown each agent finishes and commits its batch in progress, then
/// returns.
public struct AgentService: Service {
    public let agents: [StageAgent]

    public init(agents: [StageAgent]) {
        self.agents = agents
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for agent in agents { group.addTask { await agent.run() } }
            }
        }
        for agent in agents {
            if let refusal = agent.refusal { throw StageStartError(description: refusal) }
        }
    }
}

/// Builds the processor of a stage from the configuration.
/// Builds the processor of a stage for one shard from the configuration. Aletheia's agents of
/// one process share `store` (made by `makeAletheiaStore` once).
public func makeProcessor(_ stage: Stage, config: ARKConfig, shard: Shard = .untagged, store: SharedOutcomeWriter? = nil) throws -> any StageProcessor {
    switch stage {
    case .kyle: Kyle(config: config, shard: shard)
    case .joey: Joey(config: config, shard: shard)
    case .hrm: HRM(config: config, shard: shard)
    case .kenny: Kenny(config: config, shard: shard)
    case .aletheia: try Aletheia(store: try store ?? makeAletheiaStore(config), config: config, shard: shard)
    }
}

/// Aletheia's state store, opened as its one writer, with the signed log checked.
public func makeAletheiaStore(_ config: ARKConfig, logger: Logger = Logger(label: "ark.aletheia")) throws -> SharedOutcomeWriter {
    let signer = try auditSigner(config)
    if let cut = try signer?.cutTornTail() {
        logger.warning("the checkpoint file ended in a torn line (a crash while it was written): cut off before appending", metadata: [
            "file": .string(config.auditCheckpointsPath), "bytes": .stringConvertible(cut)])
    }
    let store = try OutcomeWriter.aletheia(path: config.stateDB, checkpointInterval: .seconds(config.dbCheckpointIntervalSeconds), signer: signer)
    if let signer {
        // The keys the log may be signed with: from the pinned one (or, unpinned, this key)
        // through the rotation records it signed.
        let reader = try AuditReader(path: config.stateDB)
        let root: AuditTrust?
        do { root = try AuditTrust.root(config) } catch { throw StageStartError(description: error.description) }
        var chain = AuditKeyChain(pinned: root?.key ?? signer.key.publicKey)
        _ = chain.admit(try reader.head().rotations)
        if chain.key(signer.keyID) != nil, !chain.isCurrent(signer.keyID) {
            throw StageStartError(description: "ARK_AUDIT_KEY (key id \(signer.keyID)) was rotated away by a rotation record: what it signs now would fail verification. Fix: point ARK_AUDIT_KEY at its successor")
        }
        guard chain.key(signer.keyID) != nil else {
            throw StageStartError(description: "ARK_AUDIT_KEY (key id \(signer.keyID)) is neither the pinned key \(root?.key.keyID ?? "?") (ARK_AUDIT_PUBLIC_KEY) nor named by a rotation record it signed: every checkpoint it signed would fail verification. Fix: rotate to it with `ark audit-key rotate --new \(config.auditKey)` under the old key, or point ARK_AUDIT_KEY back at the old key")
        }
        // The newest head the chain signed, in the checkpoint file, the store's table or Redis.
        let fromFile = AuditSigner.newest(inFile: signer.checkpointFile).map { ($0, "the checkpoint file \(signer.checkpointFile)") }
        let fromStore = try reader.newestCheckpoints(256).map { ($0, "the store's audit_checkpoints") }
        // Best effort: a Redis that is down now is waited for by the agent itself later.
        let fromRedis = ((try? AuditCheckpointKey.briefly(config.redisURL) { try AuditCheckpointKey.read(on: $0) }) ?? nil)
            .map { [($0, "Redis \(Streams.auditCheckpoint)")] } ?? []
        let trusted = (fromFile + fromStore + fromRedis).filter { c, _ in chain.key(c.keyID).map { c.verify(with: $0) } ?? false }
        if let (newest, source) = trusted.max(by: { $0.0.timeNs < $1.0.timeNs }) {
            try store.checkHead(against: newest, source: source)
        }
    }
    return SharedOutcomeWriter(store)
}

/// Aletheia's signer: nil without ARK_AUDIT_KEY (refused in production), else the key, which
/// must be usable; and the store's log must still be what the newest checkpoint published
/// outside it signed, or Aletheia would sign an altered history.
func auditSigner(_ config: ARKConfig) throws -> AuditSigner? {
    guard !config.auditKey.isEmpty else {
        if config.environment == "production" {
            throw StageStartError(description: "ARK_AUDIT_KEY is not set: in production Aletheia signs the audit's checkpoints. Fix: make a key with `ark audit-key generate --out /etc/ark/audit_ed25519.pem` and set ARK_AUDIT_KEY")
        }
        return nil
    }
    let key: Ed25519.PrivateKey
    do { key = try AuditSigner.loadKey(path: config.auditKey) } catch { throw StageStartError(description: "ARK_AUDIT_KEY: \(error)") }
    return AuditSigner(key: key, checkpointFile: config.auditCheckpointsPath, intervalNs: Int64(config.auditCheckpointMs) * 1_000_000)
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
    // One agent per stage and shard, each on its own thread with its own connection (on a
    // cluster, to its shard's primary), so a shard that is down stalls only its own agents.
    var services: [any Service] = []
    for stage in stages {
        if stage == .aletheia && config.servedShards.count < config.shardLayout.shards.count {
            throw StageStartError(description: "ARK_AGENT_SHARDS=\(config.agentShards?.map(String.init).joined(separator: ",") ?? ""): Aletheia is the state store's one writer and serves every shard. Fix: unset ARK_AGENT_SHARDS for the Aletheia process")
        }
        do {
            let store = stage == .aletheia ? try makeAletheiaStore(config, logger: logger) : nil
            let agents = try config.servedShards.map {
                StageAgent(processor: try makeProcessor(stage, config: config, shard: $0, store: store), settings: settings)
            }
            services.append(AgentService(agents: agents))
        } catch {
            throw StageStartError(description: "cannot start \(stage.rawValue): \(error)")
        }
    }
    return (services, settings)
}
