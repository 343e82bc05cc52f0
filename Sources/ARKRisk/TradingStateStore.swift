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

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Sets `mode` for `scope` as an operator asks: the global state in every shard (each on
    /// its own node), an account's in the shard that owns it. Each shard's change is read and
    /// written under `WATCH`, so `from` is the state it really replaced. Returns what was set.
    public static func set(_ mode: TradingMode, scope: TradingScope, reason: String, by: String, layout: ShardLayout,
                           url: RedisURL, nowNs: Int64 = wallClockNanoseconds()) throws -> [TradingControl] {
        let reason = reason.trimmed()
        guard !reason.isEmpty else { throw Problem(description: "a reason is required: it is audited with the change") }
        guard reason.utf8.count <= 512 else { throw Problem(description: "the reason is \(reason.utf8.count) bytes, the limit is 512") }
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
