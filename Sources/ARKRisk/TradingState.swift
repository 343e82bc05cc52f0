// Trading states (active, reducing, halted) and what each lets through.

import ARKCore

/// Trading states, as a risk engine has them (NautilusTrader's `TradingState`; the FIA's kill
/// switch): ACTIVE trades; REDUCING takes only orders that reduce a position; HALTED takes no
/// order. One state for the whole pipeline (`global`) and one per account; the stricter one
/// governs. Operators set them (`ark trading`, the API, the console); breakers set HALTED by
/// themselves (equity at or below zero, an unreadable book). Each change is an audited leaf.
public enum TradingMode: String, Sendable, CaseIterable, Comparable {
    case active = "ACTIVE", reducing = "REDUCING", halted = "HALTED"

    var rank: Int {
        switch self {
        case .active: 0
        case .reducing: 1
        case .halted: 2
        }
    }

    public static func < (a: TradingMode, b: TradingMode) -> Bool { a.rank < b.rank }

    /// 0 active, 1 reducing, 2 halted: the gauge's value.
    public var gaugeValue: Int { rank }
}

/// What a trading state applies to.
public enum TradingScope: Sendable, Hashable, CustomStringConvertible {
    case global
    case account(String)

    /// The field of the shard's trading hash (`Shard.trading`) that holds it.
    public var field: String {
        switch self {
        case .global: "global"
        case .account(let a): "account:" + a
        }
    }

    public init?(field: String) {
        if field == "global" { self = .global; return }
        guard field.hasPrefix("account:"), field.utf8.count > 8 else { return nil }
        self = .account(String(field.dropFirst(8)))
    }

    public var description: String {
        switch self {
        case .global: "global"
        case .account(let a): "account \(a)"
        }
    }
}

/// One trading state as set: the mode, why, who, when, and the mode it replaced. Kept as JSON
/// in the field of its scope; the same text is the audited leaf of the change.
public struct TradingControl: Sendable, Equatable {
    public var scope: TradingScope
    public var mode: TradingMode
    public var from: TradingMode
    public var reason: String
    /// `operator:<user>`, `api:<subject>`, `console:<subject>` or `breaker:<rule>`.
    public var by: String
    public var atNs: Int64

    public init(scope: TradingScope, mode: TradingMode, from: TradingMode, reason: String, by: String, atNs: Int64) {
        self.scope = scope
        self.mode = mode
        self.from = from
        self.reason = reason
        self.by = by
        self.atNs = atNs
    }

    /// Set by a breaker, not a person: needs an operator (health says unhealthy).
    public var byBreaker: Bool { by.hasPrefix("breaker:") }

    public var json: [UInt8] {
        var w = JSONWriter(capacity: 160 + reason.utf8.count)
        w.beginObject()
        w.key("scope"); w.string(scope.field)
        w.key("mode"); w.string(mode.rawValue)
        w.key("from"); w.string(from.rawValue)
        w.key("reason"); w.string(reason)
        w.key("by"); w.string(by)
        w.key("at_ns"); w.int(atNs)
        w.endObject()
        return w.bytes
    }

    public struct Unreadable: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(json bytes: [UInt8]) throws(Unreadable) {
        do {
            self = try bytes.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                var scope: TradingScope?, mode: TradingMode?, from: TradingMode?, reason: String?, by: String?, at: Int64?
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    if r.matches(k, "scope") { scope = TradingScope(field: try r.readString()) }
                    else if r.matches(k, "mode") { mode = TradingMode(rawValue: try r.readString()) }
                    else if r.matches(k, "from") { from = TradingMode(rawValue: try r.readString()) }
                    else if r.matches(k, "reason") { reason = try r.readString() }
                    else if r.matches(k, "by") { by = try r.readString() }
                    else if r.matches(k, "at_ns") { at = try r.readNumber().integer }
                    else { try r.skipValue() }
                }
                try r.end()
                guard let scope, let mode, let from, let reason, let by, let at else {
                    throw Unreadable(description: "scope, mode (ACTIVE, REDUCING or HALTED), from, reason, by and at_ns are required")
                }
                return TradingControl(scope: scope, mode: mode, from: from, reason: reason, by: by, atNs: at)
            }
        } catch let e as Unreadable {
            throw e
        } catch {
            throw Unreadable(description: "\(error)")
        }
    }
}

/// The trading states of one shard's hash, as HRM and Kenny read them.
public struct TradingStates: Sendable, Equatable {
    public var controls: [TradingScope: TradingControl] = [:]
    /// Fields that cannot be read, with why: each halts its scope (fail closed).
    public var unreadable: [TradingScope: String] = [:]

    public init() {}

    public init(entries: [(field: String, value: [UInt8])]) {
        for (field, value) in entries {
            guard let scope = TradingScope(field: field) else { continue }
            do {
                controls[scope] = try TradingControl(json: value)
            } catch {
                unreadable[scope] = "\(field) is unreadable (\(error.description))"
            }
        }
    }

    public func mode(of scope: TradingScope) -> TradingMode {
        unreadable[scope] != nil ? .halted : controls[scope]?.mode ?? .active
    }

    /// Why `account` may not trade as asked: nil when it may. HALTED refuses every buy and
    /// sell; REDUCING every one that opens or adds to a position (`adds`). A hold trades nothing
    /// and is never refused.
    public func violation(account: String, trades: Bool, adds: Bool) -> Violation? {
        guard trades else { return nil }
        for scope in [TradingScope.global, .account(account)] {
            let mode = mode(of: scope)
            guard mode == .halted || (mode == .reducing && adds) else { continue }
            let why: String
            if let problem = unreadable[scope] {
                why = "its trading state \(problem): fail closed"
            } else if let c = controls[scope] {
                why = "set by \(c.by) at \(iso8601(c.atNs)): \(c.reason)"
            } else {
                why = ""
            }
            let what = mode == .halted ? "no order is taken" : "only orders that reduce a position are taken"
            let resume = scope == .global ? "ark trading resume --reason …" : "ark trading resume --account \(account) --reason …"
            return Violation(rule: "trading_state", severity: .critical,
                             message: "trading is \(mode.rawValue) (\(scope)), \(what); \(why) (resume: \(resume))")
        }
        return nil
    }
}
