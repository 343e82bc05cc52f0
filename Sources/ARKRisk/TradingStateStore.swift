// Where trading states live and how a change is made and audited.

import ARKBus
import ARKCore

/// Where trading states live and how a change is made: the state in the shard's trading hash
/// (`Shard.trading`) and, in the same transaction, a `control` entry on the shard's Aletheia
/// stream, which Aletheia records as a leaf of the audit log. So a state that took effect is
/// always audited, and an audited change always took effect.
public enum TradingStateStore {
    /// The field a control entry carries its `TradingControl` JSON in (no `event`).
    public static let controlField = "control"

    /// The commands that set `control` in `shard`, for a MULTI … EXEC.
    public static func commands(_ control: TradingControl, shard: Shard) -> [[RedisArg]] {
        let json = control.json
        return [
            ["HSET", .text(shard.trading), .text(control.scope.field), .bytes(json)],
            ["XADD", .text(shard.stream(.aletheia)), "*", .text(controlField), .bytes(json)],
        ]
    }

    /// Every trading state of `shard`.
    public static func read(_ connection: RedisConnection, shard: Shard) throws(RedisError) -> TradingStates {
        TradingStates(entries: try connection.hashEntries(shard.trading))
    }

    /// Every shard's trading states, each read on the node that serves it.
    public static func readAll(layout: ShardLayout, url: RedisURL) throws -> [(shard: Shard, states: TradingStates)] {
        var out: [(shard: Shard, states: TradingStates)] = []
        for shard in layout.shards {
            let connection = RedisConnection(url: url, commandTimeout: .seconds(5), slotKey: shard.tagged ? shard.slotKey : nil)
            defer { connection.close() }
            try connection.connect()
            out.append((shard, try read(connection, shard: shard)))
        }
        return out
    }

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Sets `mode` for `scope` as an operator asks: the global state in every shard (each on
    /// its own node), an account's in the shard that owns it. Each shard's change is read and
    /// written under `WATCH`, so `from` is the state it really replaced. Returns what was set.
    public static func set(_ mode: TradingMode, scope: TradingScope, reason: String, by: String, layout: ShardLayout,
                           url: RedisURL, nowNs: Int64 = wallClockNanoseconds()) throws -> [TradingControl] {
        let reason = reason.trimmed()
        guard reason.unicodeScalars.contains(where: { !$0.properties.isWhitespace && !(0x1C...0x1F).contains($0.value) }) else {
            throw Problem(description: "a reason is required: it is audited with the change")
        }
        guard reason.unicodeScalars.count <= 512 else { throw Problem(description: "the reason is \(reason.unicodeScalars.count) characters, the limit is 512") }
        if case .account(let a) = scope, SignalValidator.tokenProblem(a, max: SignalValidator.maxAccountLength) != nil || a.isEmpty {
            throw Problem(description: "'\(a)' is not an account name (letters, digits and - _ . : up to \(SignalValidator.maxAccountLength) bytes)")
        }
        let shards: [Shard]
        switch scope {
        case .global: shards = layout.shards
        case .account(let a): shards = [layout.shard(forAccount: a)]
        }
        var done: [TradingControl] = []
        for shard in shards {
            let connection = RedisConnection(url: url, slotKey: shard.tagged ? shard.slotKey : nil)
            defer { connection.close() }
            try connection.connect()
            var set: TradingControl?
            for _ in 0..<20 {
                let replies = try connection.pipeline([["WATCH", .text(shard.trading)], ["HGET", .text(shard.trading), .text(scope.field)]])
                if case .error(let e) = replies[1] { throw RedisError.server(e) }
                var from = TradingMode.active
                if case .bulk(let bytes) = replies[1] { from = (try? TradingControl(json: bytes))?.mode ?? .halted }
                let control = TradingControl(scope: scope, mode: mode, from: from, reason: reason, by: by, atNs: nowNs)
                let exec = try connection.pipeline([["MULTI"]] + commands(control, shard: shard) + [["EXEC"]])
                if case .error(let e) = exec.last { throw RedisError.server(e) }
                if exec.last?.array != nil {
                    set = control
                    break
                }
            }
            guard let set else { throw Problem(description: "the trading state of shard \(shard) kept changing under WATCH") }
            done.append(set)
        }
        return done
    }
}

/// What an operator sends to change a trading state through the API or the console:
/// `{"reason": "…", "account": "…"}` (no account: every account). Anything else is refused,
/// naming what is wrong.
public struct TradingChangeRequest: Sendable, Equatable {
    public var account: String?
    public var reason: String

    public static let maxBytes = 4096

    public static func parse(_ body: [UInt8]) throws(TradingStateStore.Problem) -> TradingChangeRequest {
        guard body.count <= maxBytes else { throw TradingStateStore.Problem(description: "the body is over \(maxBytes) bytes") }
        let shape = "send a JSON object {\"reason\": \"why\", \"account\": \"name\"} (account optional: without it, every account)"
        do {
            return try body.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                guard try r.peekKind() == .object else { throw TradingStateStore.Problem(description: "the body is not a JSON object: \(shape)") }
                var account: String?, reason: String?
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    let key = try r.string(k)
                    switch key {
                    case "reason", "account":
                        guard try r.peekKind() == .string else { throw TradingStateStore.Problem(description: "\(key) must be a string: \(shape)") }
                        if key == "reason" { reason = try r.readString() } else { account = try r.readString() }
                    default:
                        throw TradingStateStore.Problem(description: "unknown key '\(key.prefix(64))': \(shape)")
                    }
                }
                try r.end()
                // Blank as JSON Schema's `\S` sees it: Unicode white space and the separators U+1C…U+1F.
                guard let reason, reason.unicodeScalars.contains(where: { !$0.properties.isWhitespace && !(0x1C...0x1F).contains($0.value) }) else { throw TradingStateStore.Problem(description: "reason is required (it is audited with the change): \(shape)") }
                return TradingChangeRequest(account: account, reason: reason)
            }
        } catch let e as TradingStateStore.Problem {
            throw e
        } catch {
            throw TradingStateStore.Problem(description: "the body is not JSON (\(error)): \(shape)")
        }
    }
}

extension TradingControl {
    /// How the API and the console show a state.
    public var fields: [(String, String)] {
        [("scope", scope.field), ("mode", mode.rawValue), ("from", from.rawValue), ("reason", reason), ("by", by), ("at", iso8601(atNs))]
    }
}
