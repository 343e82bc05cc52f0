// The `ark` command and the options its subcommands share.

import ARKCore
import ARKProcess
import ArgumentParser
import Foundation
import Logging

@main
struct ARK: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ark",
        abstract: "ARK: market signals in, trusted trading decisions out (Kyle → Joey → HRM → Kenny → Aletheia).",
        discussion: """
            Settings come from the environment (see .env.production.template); --local keeps the
            state under ./.ark/. Examples:
              ark run --local                       all five stages in one process
              ark agent HRM                         one stage; start several to share its work
              ark synthetic-loop --duration 60      prove the pipeline end to end at 1 Hz
              ark trace syn-abc-42                  one pass, hop by hop
              ark verify-audit                      check every audited record, the Merkle tree and its signed checkpoints
              ark verify-audit --trace T            prove one decision: record, leaf, audit path, signed head
              ark metrics-server                    /metrics, /metrics/json, /slos, /healthz on :9090
              ark health                            exit 0 healthy, 1 unhealthy, 2 degraded
              ark status                            live dashboard
              ark config validate --local           every setting, directory, Redis, port and the Graveyard
              ark watchdog release Kenny            put quarantined Kenny instances back on probation
              ark api                               the API on :8000 (POST /v1/signals, GET /v1/traces/{id})
              ark token --subject desk-1            mint a bearer token for the API
            """,
        subcommands: [RunCommand.self, AgentCommand.self, ConfigCommand.self, AuditCommand.self, BackupCommand.self, RestoreCommand.self, LogsCommand.self, MetricsServerCommand.self, HealthCommand.self, StatusCommand.self, BenchCommand.self,
                      WatchdogCommand.self, CanaryCommand.self, APICommand.self, TokenCommand.self, SyntheticLoopCommand.self, TraceCommand.self, VerifyAuditCommand.self, AuditKeyCommand.self, TradingCommand.self, BookCommand.self, ReconcileCommand.self, WitnessCommand.self]
    )
}

/// Options every command that touches ARK's state shares.
struct CommonOptions: ParsableArguments {
    @Flag(help: "Use the local layout: state, backups and logs under ./.ark/, rules from ./graveyard, and the private Redis of start_production.sh --local when it runs.")
    var local = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["ARK_LOG_LEVEL"] ?? "info"

    func config() throws -> ARKConfig {
        let root = FileManager.default.currentDirectoryPath
        if local { ensureLocalJWTSecret(root: root) }
        let base = local ? ARKConfig.localDefaults(root: root) : ARKConfig()
        do {
            return try ARKConfig.load(environment: ProcessInfo.processInfo.environment, base: base)
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(78)
        }
    }

    func bootstrapLogging() {
        ProcessBootstrap.bootstrapLogging(level: logLevel)
    }
}

/// `--local` without JWT_SECRET: a random secret in ./.ark/jwt_secret, made once (mode 600),
/// so the local API and `ark token --local` share it.
func ensureLocalJWTSecret(root: String) {
    guard ProcessInfo.processInfo.environment["JWT_SECRET"]?.isEmpty ?? true else { return }
    let path = ARKConfig.localJWTSecretPath(root: root)
    guard !FileManager.default.fileExists(atPath: path) else { return }
    try? FileManager.default.createDirectory(atPath: root + "/.ark", withIntermediateDirectories: true)
    let secret = SHA256.hex(secureRandomBytes(32)) + "\n"
    _ = FileManager.default.createFile(atPath: path, contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
}

/// `--local` without ARK_AUDIT_KEY: an Ed25519 key beside the state store (mode 600) and its
/// public half, made at first start by the commands that run Aletheia (`ark run`, `ark
/// agent`), so the local Aletheia signs its audit. A command that only reads never makes one.
func ensureLocalAuditKey(_ config: ARKConfig) {
    guard config.auditKeyBesideStateDB, !config.auditKey.isEmpty, !FileManager.default.fileExists(atPath: config.auditKey) else { return }
    let dir = (config.auditKey as NSString).deletingLastPathComponent
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    do {
        try writeAuditKey(to: config.auditKey)
    } catch {
        FileHandle.standardError.write(Data("cannot make the local audit key \(config.auditKey): \(error)\n".utf8))
    }
}

/// Prints a message to standard error and exits with `code`.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    return ExitCode(code)
}
