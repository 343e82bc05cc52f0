// `ark canary start`'s service: one rollout run to its end, rolled back on SIGINT or SIGTERM.

import ARKCore
import ARKProcess
import ARKState
import ServiceLifecycle
import Synchronization

/// One canary rollout as a service: starts the run, steps it to its end, and, when the
/// process is asked to stop (SIGINT, SIGTERM: a graceful shutdown), rolls it back before it
/// returns, so Ctrl-C never strands a run.
public final class CanaryRollout: Service, Sendable {
    let plan: CanaryPlan
    let config: ARKConfig
    let release: Release
    let runDir: String
    let say: @Sendable (String) -> Void
    private let outcome = Mutex<CanaryRunRecord?>(nil)

    public init(plan: CanaryPlan, config: ARKConfig, release: Release, runDir: String, say: @escaping @Sendable (String) -> Void) {
        self.plan = plan
        self.config = config
        self.release = release
        self.runDir = runDir
        self.say = say
    }

    /// The run's final record, once `run` has returned.
    public var result: CanaryRunRecord? { outcome.withLock { $0 } }

    public func run() async throws {
        let controller = try await CanaryController.start(plan: plan, config: config, release: release, runDir: runDir, say: say)
        defer { controller.close() }
        let record = try await controller.runToEnd()
        outcome.withLock { $0 = record }
    }
}
