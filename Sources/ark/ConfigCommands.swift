import ARKCore
import ARKOperations
import ArgumentParser
import Foundation

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check ARK's configuration.",
        subcommands: [ConfigValidateCommand.self])
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

    @Flag(help: "Use the local layout: state, backups and logs under ./.ark/, rules from ./graveyard.")
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
