// `ark trading`: the kill switch.

import ARKBus
import ARKCore
import ARKRisk
import ARKState
import ArgumentParser
import Foundation

struct TradingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trading",
        abstract: "The kill switch: halt, reduce or resume trading, for every account or one; show the states.",
        discussion: """
            HALTED takes no order; REDUCING only orders that reduce a position; ACTIVE trades.
            A change takes effect within one batch in HRM and at Kenny's fill, on every
            instance, and is a leaf of the audit log (who, when, why, from what state).
            Breakers set HALTED themselves (equity at or below zero, the daily loss limit, an
            unreadable book); a daily-loss halt lifts at the next trading day (00:00 UTC).
            Examples:
              ark trading status
              ark trading halt --reason "feed sends bad prices"        every account
              ark trading reduce --account acct-7 --reason "margin call"
              ark trading resume --account acct-7 --reason "reviewed with risk"
            """,
        subcommands: [TradingStatusCommand.self, TradingChangeCommand<Halt>.self, TradingChangeCommand<Reduce>.self, TradingChangeCommand<Resume>.self],
        defaultSubcommand: TradingStatusCommand.self)
}

protocol TradingModeName {
    static var name: String { get }
    static var mode: TradingMode { get }
    static var abstract: String { get }
}

enum Halt: TradingModeName {
    static let name = "halt"
    static let mode = TradingMode.halted
    static let abstract = "HALTED: no order is taken (every account, or --account)."
}

enum Reduce: TradingModeName {
    static let name = "reduce"
    static let mode = TradingMode.reducing
    static let abstract = "REDUCING: only orders that reduce a position are taken."
}

enum Resume: TradingModeName {
    static let name = "resume"
    static let mode = TradingMode.active
    static let abstract = "ACTIVE: trading resumes (the rules and limits still hold)."
}

struct TradingChangeCommand<M: TradingModeName>: ParsableCommand {
    static var configuration: CommandConfiguration { CommandConfiguration(commandName: M.name, abstract: M.abstract) }

    @Option(help: "One account; without it, every account (the global state).")
    var account: String?

    @Option(help: "Why: recorded in the audit log with the change. Required.")
    var reason: String

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let url = try redisURL(config)
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown"
        let scope: TradingScope = account.map { .account($0) } ?? .global
        do {
            for c in try TradingStateStore.set(M.mode, scope: scope, reason: reason, by: "operator:" + user, layout: config.shardLayout, url: url) {
                print("\(c.scope): \(c.from.rawValue) → \(c.mode.rawValue) by \(c.by) (\(c.reason))")
            }
        } catch let e as TradingStateStore.Problem {
            throw fail(e.description, code: 64)
        } catch let e as RedisError {
            throw fail("cannot set the trading state: \(e). Fix: start Redis or set REDIS_URL", code: 69)
        }
    }
}

struct TradingStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Every trading state that is set, on every shard, and the audited changes.")

    @Option(help: "How many of the latest audited changes to show.")
    var changes = 10

    @Flag(help: "JSON instead of text.")
    var json = false

    @OptionGroup var common: CommonOptions

    func run() throws {
        let config = try common.config()
        let url = try redisURL(config)
        let read: [(shard: Shard, states: TradingStates)]
        do {
            read = try TradingStateStore.readAll(layout: config.shardLayout, url: url)
        } catch {
            throw fail("cannot read the trading states: \(error). Fix: start Redis or set REDIS_URL", code: 69)
        }
        var states: [[String: Any]] = []
        for (shard, t) in read {
            for (scope, c) in t.controls.sorted(by: { $0.key.field < $1.key.field }) {
                states.append(["shard": shard.description, "scope": scope.field, "mode": c.mode.rawValue, "from": c.from.rawValue,
                               "by": c.by, "at": iso8601(c.atNs), "reason": c.reason])
            }
            for (scope, problem) in t.unreadable { states.append(["shard": shard.description, "scope": scope.field, "mode": "HALTED", "unreadable": problem]) }
        }
        let recent = (try? StateStore(path: config.stateDB).tradingStateChanges(limit: changes)) ?? []
        if json {
            let doc: [String: Any] = ["states": states, "changes": recent.map { ["scope": $0.scope, "mode": $0.mode, "from": $0.from, "by": $0.by,
                                                                                    "at": iso8601($0.atNs), "reason": $0.reason, "shard": $0.shard] }]
            print(String(decoding: try JSONDocument.data(doc, .pretty), as: UTF8.self), terminator: "")
            return
        }
        let set = states.filter { ($0["mode"] as? String) != "ACTIVE" }
        if set.isEmpty { print("ACTIVE: every account may trade.") }
        for s in set {
            let on = config.shardLayout.isTagged ? " (shard \(s["shard"] ?? ""))" : ""
            if let problem = s["unreadable"] { print("\(s["scope"] ?? "")\(on): HALTED, \(problem)"); continue }
            print("\(s["scope"] ?? "")\(on): \(s["mode"] ?? "") by \(s["by"] ?? "") at \(s["at"] ?? ""): \(s["reason"] ?? "")")
        }
        if !recent.isEmpty { print("\nLatest audited changes:") }
        for c in recent { print("  \(iso8601(c.atNs))  \(c.scope) \(c.from) → \(c.mode) by \(c.by): \(c.reason)") }
    }
}
