// `ark config validate` and `reference`, `ark audit`, `ark backup`, `ark restore` and `ark logs`.

import ARKBus
import ARKCore
import ARKOperations
import ARKState
import ARKStoreWriter
import ArgumentParser
import Foundation

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check ARK's configuration, or print its reference.",
        subcommands: [ConfigValidateCommand.self, ConfigReferenceCommand.self])
}

struct ConfigReferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reference",
        abstract: "Print docs/configuration.md: every setting ARK reads, with its type, default and meaning.",
        discussion: """
            Generated from the configuration code; ConfigReferenceTests fails when the file
            in docs/ differs.
            Example:
              ark config reference > docs/configuration.md
            """)

    func run() throws {
        print(ARKConfig.referenceMarkdown(), terminator: "")
    }
}

struct ConfigValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check every setting, directory, the state store, Redis, the ports and the Graveyard; exit 78 on any problem.",
        discussion: """
            One line per check, each problem with its fix, then `Production configuration is
            VALID ✓` (exit 0) or the count of problems (exit 78). start_production.sh runs it
            before starting anything. Secrets are checked, never printed.
            Examples:
              set -a; source .env.production; set +a; ark config validate
              ark config validate --local
              ark config validate --skip-ports     (ARK already running)
            """)

    @Flag(help: "Use the local layout: state, backups and logs under ./.ark/, rules from ./graveyard, and the private Redis of start_production.sh --local when it runs.")
    var local = false

    @Flag(help: "Do not test METRICS_PORT and API_PORT (ARK is running and holds them).")
    var skipPorts = false

    func run() throws {
        let base = local ? ARKConfig.localDefaults(root: FileManager.default.currentDirectoryPath) : ARKConfig()
        let checks = ConfigValidation(environment: ProcessInfo.processInfo.environment, base: base, checkPorts: !skipPorts).run()
        for c in checks { print(c.line) }
        let verdict = ConfigValidation.verdict(checks)
        print(verdict.line)
        if !verdict.valid { throw ExitCode(78) }
    }
}

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take an online, integrity-checked backup of the state store into ARK_BACKUP_DIR; keep the newest 10.",
        discussion: """
            Safe while ARK runs: SQLite's backup API copies a consistent snapshot. The copy is
            checked (SQLite integrity check and the audit log) before it takes its name,
            ark_state_backup_<ISO8601>.db, mode 600.
            Examples:
              ark backup --local
              ARK_BACKUP_DIR=/mnt/backups ark backup
            """)

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let start = Date()
        do {
            let store = try StateStore(path: config.stateDB)
            let made = try Backups.backup(store, into: config.backupDir)
            print("Backup \(made.path): \(made.passes) passes, \(made.bytes / 1024) KB, integrity ok, audit log intact (\(Int(Date().timeIntervalSince(start) * 1000)) ms)")
            for old in made.removed { print("removed \(old) (keeping the newest \(Backups.keep))") }
        } catch {
            throw fail("backup failed: \(error)")
        }
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Replace the state store with a backup, after checking it; stop ARK first.",
        discussion: """
            A backup that fails SQLite's integrity check or whose audit log is broken is
            refused and nothing changes. The current store is kept beside it as
            <db>.before-restore-<ISO8601> and put back if the restored one does not open.
            Examples:
              deployment/stop_production.sh --local
              ark restore --local .ark/backups/ark_state_backup_20261123T125000Z.db
            """)

    @Argument(help: "The backup file.")
    var file: String

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        var signer: AuditSigner?
        if !config.auditKey.isEmpty {
            do {
                signer = AuditSigner(key: try AuditSigner.loadKey(path: config.auditKey), checkpointFile: config.auditCheckpointsPath)
            } catch {
                throw fail("restore refused: ARK_AUDIT_KEY: \(error)", code: 78)
            }
        }
        do {
            let restored = try Backups.restore(file, to: config.stateDB, signer: signer)
            print("Restored \(config.stateDB) from \(file): \(restored.passes) passes, audit log intact")
            if let previous = restored.previous { print("The previous store is kept at \(previous)") }
            if let c = restored.checkpoint {
                print("Signed the restored head (restore checkpoint: size \(c.size), in the store and \(config.auditCheckpointsPath)): the records after it are recorded as discarded by this restore")
                publishToRedis(c, config)
            } else {
                print("No ARK_AUDIT_KEY: the restored log is unsigned until Aletheia signs it; ark verify-audit will report the discarded checkpoints as deleted records")
            }
        } catch {
            throw fail("restore refused: \(error)")
        }
    }

    /// The Redis copy of the head, so it does not keep the pre-restore one; Aletheia's next
    /// checkpoints replace it in any case once the log has grown past it.
    func publishToRedis(_ c: AuditCheckpoint, _ config: ARKConfig) {
        do {
            try AuditCheckpointKey.briefly(config.redisURL) { try AuditCheckpointKey.publish(c, on: $0) }
        } catch {
            print("note: Redis did not take the restore checkpoint (\(error)); verify-audit orders checkpoints by time, so the old head there reads as discarded")
        }
    }
}

struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Gather one trace's log lines from every process's log file in ARK_LOG_DIR, in time order.",
        discussion: """
            Reads <process>.log and the newest rotation (<process>.log.1). Lines are JSON (see
            docs/operations.md, Logs); one whose trace_id is the trace, or that mentions it, is shown.
            Examples:
              ark logs --trace syn-4f2a-17 --local
              ARK_LOG_DIR=/var/log/ark ark logs --trace ark-1795438437968-0
            """)

    @Option(help: "The trace id.")
    var trace: String

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let lines: [LogSearch.Line]
        do {
            lines = try LogSearch.lines(forTrace: trace, in: config.logDir)
        } catch {
            throw fail("cannot read the logs in \(config.logDir): \(error.localizedDescription). Fix: set ARK_LOG_DIR (or use --local)")
        }
        if lines.isEmpty { throw fail("no log line mentions trace \(trace) in \(config.logDir)") }
        for l in lines { print("\(l.ts)  \(l.file)  \(l.text)") }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Security audit: file modes, the Graveyard pin, secrets (and leaks into logs), open binds, Redis exposure, token lifetime, root processes.",
        discussion: """
            One line per check; each finding has a severity (high, medium, low) and its fix.
            Exit 0 when clean, 1 on any finding. Secrets are compared, never printed.
            Examples:
              set -a; source .env.production; set +a; ark audit
              ark audit --local
              ark audit --json > audit.json
            """)

    @Flag(help: "Use the local layout (./.ark/), as start_production.sh --local does.")
    var local = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Option(help: "The .env.production whose mode to check (default: ./.env.production when present).")
    var envFile: String?

    func run() throws {
        let root = FileManager.default.currentDirectoryPath
        let base = local ? ARKConfig.localDefaults(root: root) : ARKConfig()
        let config: ARKConfig
        do {
            config = try ARKConfig.load(environment: ProcessInfo.processInfo.environment, base: base)
        } catch {
            throw fail(error.description, code: 78)
        }
        let defaultEnv = root + "/.env.production"
        let env = envFile ?? (FileManager.default.fileExists(atPath: defaultEnv) ? defaultEnv : nil)
        let runDir = ProcessInfo.processInfo.environment["ARK_RUN_DIR"] ?? (local ? root + "/.ark/run" : config.logDir + "/../run")
        let (findings, passed) = SecurityAudit(config: config, envFile: env, runDir: runDir).run()
        let counts = AuditFinding.Severity.allCases.map { s in (s, findings.filter { $0.severity == s }.count) }
        if json {
            let object: [String: Any] = [
                "clean": findings.isEmpty, "environment": config.environment, "passed": passed,
                "counts": Dictionary(uniqueKeysWithValues: counts.map { ($0.0.rawValue, $0.1) }),
                "findings": findings.map { ["check": $0.check, "severity": $0.severity.rawValue, "message": $0.message, "fix": $0.fix] },
            ]
            let data = try JSONDocument.data(object, .pretty)
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("ARK security audit (\(config.environment))")
            for p in passed { print("✓ \(p)") }
            for f in findings { print(f.line) }
            print(findings.isEmpty ? "Security audit CLEAN ✓"
                : "Security audit: \(findings.count) finding\(findings.count == 1 ? "" : "s") (" + counts.map { "\($0.1) \($0.0.rawValue)" }.joined(separator: ", ") + ") ✗")
        }
        if !findings.isEmpty { throw ExitCode(1) }
    }
}
