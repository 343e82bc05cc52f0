import ARKBus
import ARKCore
import ARKTestSupport
import Foundation
import Testing

/// `ark-agent`, the lean one-stage binary start_production.sh runs: its usage errors, its
/// configuration errors (exit 78 with the fix), that it never loads Foundation proper, and a
/// clean stop on SIGTERM.
extension EndToEnd { @Suite struct AgentExecutableTests {
    @Test(arguments: [
        ([], "which stage?"),
        (["Mallory"], "unknown stage 'Mallory': use one of Kyle, Joey, HRM, Kenny, Aletheia"),
        (["Kyle", "Joey"], "one stage per process; 'Joey' is a second"),
        (["Kyle", "--verbose"], "unknown option '--verbose'"),
        (["Kyle", "--log-level"], "--log-level needs a value"),
    ])
    func usageErrorsExit64NamingTheMistake(arguments: [String], message: String) throws {
        let r = try runCommand(Repo.arkAgentBinary, arguments, timeout: 30)
        #expect(r.code == 64, "\(r.output)")
        #expect(r.output.contains("ark-agent: " + message), "\(r.output)")
        #expect(r.output.contains("usage: ark-agent STAGE"), "\(r.output)")
    }

    @Test func helpPrintsUsageAndExits0() throws {
        let r = try runCommand(Repo.arkAgentBinary, ["--help"], timeout: 30)
        #expect(r.code == 0 && r.output.hasPrefix("usage: ark-agent STAGE"), "\(r.output)")
    }

    @Test func badSettingsStopStartUpWithTheFix() throws {
        let badURL = try runCommand(Repo.arkAgentBinary, ["Kyle"], environment: ["REDIS_URL": "ftp://somewhere"], timeout: 30)
        #expect(badURL.code == 78, "\(badURL.output)")
        #expect(badURL.output.contains("REDIS_URL") && badURL.output.contains("Fix: use redis://"), "\(badURL.output)")

        // A store whose directory cannot be made (its parent is a file).
        let unwritable = "/dev/null/ark_state.db"
        let store = try runCommand(Repo.arkAgentBinary, ["aletheia"], environment: ["ARK_STATE_DB": unwritable, "REDIS_URL": "redis://127.0.0.1:1/0"], timeout: 30)
        #expect(store.code == 78, "\(store.output)")
        #expect(store.output.contains("cannot start Aletheia: cannot create the state directory /dev/null:"), "\(store.output)")
        #expect(!store.output.contains(".. Fix"), "\(store.output)")
    }

    @Test func runsAStageWithoutFoundationAndStopsCleanlyOnSIGTERM() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        // Aletheia: the stage with the state store, the one most likely to pull Foundation in.
        try f.start(.aletheia)
        let redis = try f.redis.client()
        let up = try waitFor(timeout: 30) { try redis.command(["HLEN", .text(Streams.heartbeats)]).integer ?? 0 >= 1 }
        #expect(up, "\(f.agents[.aletheia]!.output)")
        let aletheia = try #require(f.agents[.aletheia])
        // Foundation proper, its internationalization and ICU cost each agent 6.7 MB of
        // resident memory (docs/performance.md): ark-agent links FoundationEssentials only.
        // Read to the end (procfs reports a size of 0, and Foundation's reader stops early).
        let maps = String(decoding: try readFileBytes("/proc/\(aletheia.child.pid)/maps"), as: UTF8.self)
        #expect(maps.contains("libFoundationEssentials.so"), "the maps of a running ark-agent: \(maps.prefix(200))")
        for library in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            #expect(!maps.contains(library), "ark-agent loaded \(library)")
        }
        aletheia.child.signal(SIGTERM)
        #expect(aletheia.child.wait(timeout: 15))
        #expect(aletheia.child.exitCode == 0, "\(aletheia.output)")
        // JSON log lines (standard error is a file), the stage named in each.
        let lines = aletheia.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(!lines.isEmpty && lines.allSatisfy { $0.contains("\"ts\":") }, "\(aletheia.output)")
    }
} }
