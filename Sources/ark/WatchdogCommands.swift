// `ark watchdog`, `ark watchdog release` and `ark watchdog status`.

import ARKBus
import ARKCore
import ARKMonitoring
import ARKProcess
import ARKState
import ARKWatchdog
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

struct WatchdogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watchdog",
        abstract: "Watch every agent instance; quarantine slow, failing or hung ones; release them.",
        discussion: """
            Without a subcommand, runs the watchdog until SIGTERM or SIGINT (the production
            layout runs it as its own process; `ark run` includes it).
            Examples:
              ark watchdog                              run it
              ark watchdog release Kenny                release every quarantined Kenny instance
              ark watchdog release Kenny-host-4242      release one instance
              ark watchdog status                       standings and the latest events
            """,
        subcommands: [WatchdogRunCommand.self, WatchdogReleaseCommand.self, WatchdogStatusCommand.self],
        defaultSubcommand: WatchdogRunCommand.self)
}

/// Opens the state store and the Redis URL the watchdog commands need.
func watchdogResources(_ config: ARKConfig) throws -> (StateStore, RedisURL) {
    let url: RedisURL
    do {
        url = try RedisURL(parsing: config.redisURL)
    } catch {
        throw fail("REDIS_URL: \(error). Fix: use redis://[:password@]host:port/db or unix:///path/redis.sock", code: 78)
    }
    do {
        return (try StateStore(path: config.stateDB), url)
    } catch {
        throw fail("ARK_STATE_DB: \(error)", code: 78)
    }
}

func makeWatchdog(_ config: ARKConfig) throws -> Watchdog {
    let (store, url) = try watchdogResources(config)
    return Watchdog(settings: WatchdogSettings(config: config), store: store, redisURL: url)
}

struct WatchdogRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the watchdog until SIGTERM or SIGINT.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        common.bootstrapLogging()
        ProcessBootstrap.bootstrapMetrics()
        let config = try common.config()
        if !config.watchdogEnabled {
            throw fail("WATCHDOG_ENABLED is false: the watchdog does not run. Fix: set WATCHDOG_ENABLED=true", code: 78)
        }
        let watchdog = try makeWatchdog(config)
        try await ProcessBootstrap.run([watchdog], publishingMetricsTo: try RedisURL(parsing: config.redisURL))
    }
}

struct WatchdogReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Release quarantined instances onto probation: a stage name for all of its instances, or one instance.")

    @Argument(help: "A stage (Kenny) or an instance (Kenny-host-4242).")
    var selector: String

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let (store, url) = try watchdogResources(config)
        let connection = RedisConnection(url: url, commandTimeout: .seconds(5))
        do {
            try connection.connect()
        } catch {
            throw fail("cannot reach Redis at \(url): \(error). Fix: start Redis or set REDIS_URL", code: 69)
        }
        defer { connection.close() }
        let actions = try Watchdog.release(selector: selector, settings: WatchdogSettings(config: config), store: store, connection: connection)
        if actions.isEmpty {
            let quarantined = try store.watchdogInstances().filter { $0.status == "quarantined" }.map(\.instance)
            throw fail("no quarantined instance matches '\(selector)'; quarantined now: \(quarantined.isEmpty ? "none" : quarantined.joined(separator: ", "))")
        }
        for case .release(let instance, _, _, let until) in actions {
            print("released \(instance): on probation for \((until - wallClockNanoseconds() + 500_000_000) / 1_000_000_000) s")
        }
    }
}

struct WatchdogStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The watchdog's standings of every instance and its latest events.")

    @Option(help: "How many of the latest events to show.")
    var events = 10

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let (store, _) = try watchdogResources(config)
        let now = wallClockNanoseconds()
        let rows = try store.watchdogInstances()
        func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
        print(rows.isEmpty ? "No instances seen yet." : pad("INSTANCE", 36) + pad("STATUS", 13) + pad("OFFENCES", 10) + pad("SINCE", 10) + "DETAIL")
        for r in rows {
            var detail = r.reason
            if r.status == "quarantined" { detail += "; release in \(max(0, (r.releaseAtNs - now) / 1_000_000_000)) s if its heartbeat is fresh" }
            if r.status == "probation" { detail = "probation ends in \(max(0, (r.probationUntilNs - now) / 1_000_000_000)) s" }
            if r.status == "healthy" { detail = "" }
            print(pad(r.instance, 36) + pad(r.status, 13) + pad(String(r.offences), 10) + pad("\((now - r.sinceNs) / 1_000_000_000)s ago", 10) + detail)
        }
        let latest = try store.watchdogEvents(limit: events)
        if !latest.isEmpty { print("\nLatest events:") }
        for e in latest {
            let when = Date(timeIntervalSince1970: Double(e.tsNs) / 1e9).formatted(.iso8601)
            print("  \(when)  \(e.action) \(e.instance) by \(e.by): \(e.reason)")
        }
    }
}
