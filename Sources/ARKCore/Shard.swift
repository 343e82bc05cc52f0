// Shards of the pipeline: every per-shard key, and which shard owns an account.

/// One slice of the pipeline: its five streams, dead letters, canary streams, paper book,
/// orders and poison records. On Redis Cluster every key of a shard carries the shard's hash
/// tag (`ark:{s3}:kyle`), so they share one slot: a stage's batch commits in one transaction
/// and its blocking read stays on one node. A shard owns whole accounts (`ShardLayout`), so
/// no risk check spans shards.
///
/// The default pipeline (one node, ARK_SHARDS unset) is the one untagged shard with DESIGN
/// §2's names (`ark:kyle`).
public struct Shard: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let index: Int
    /// False only for the default shard with today's untagged names.
    public let tagged: Bool

    public static let untagged = Shard(index: 0, tagged: false)
    public static func tagged(_ index: Int) -> Shard { Shard(index: index, tagged: true) }

    private init(index: Int, tagged: Bool) {
        self.index = index
        self.tagged = tagged
    }

    /// `ark:` or `ark:{sN}:`: every key of the shard starts with it.
    public var keyPrefix: String { tagged ? "ark:{s\(index)}:" : "ark:" }
    /// A key in the shard's slot, to find the node that serves it.
    public var slotKey: String { keyPrefix }
    public var slot: Int { ClusterSlot.of(slotKey) }

    public func stream(_ stage: Stage, on track: Track = .baseline) -> String {
        keyPrefix + (track == .canary ? "canary:" : "") + stage.rawValue.lowercased()
    }

    public var deadLetter: String { keyPrefix + "deadletter" }
    /// For each of the shard's internal streams (field: its name), how many more events than
    /// entries it holds unsettled: +n−1 for an envelope of n written, −1 for each of its events
    /// settled and +1 when it is acknowledged, in the commits that do so. The entries' backlog
    /// plus this is the stream's backlog in events; where every entry is one event it never moves.
    public var backlogEvents: String { keyPrefix + "backlog" }
    /// Kenny's paper book, read by HRM for the portfolio rules.
    public var portfolio: String { keyPrefix + "portfolio" }
    /// Trading states (ACTIVE, REDUCING, HALTED): `global` (written to every shard) and
    /// `account:<name>`, each the JSON of a `TradingControl`. HRM and Kenny read it every batch.
    public var trading: String { keyPrefix + "trading" }
    /// Each instrument's last trusted price and the quotes counted towards moving its band
    /// (`PriceBand.Reference.stored`), kept by Kenny.
    public var marks: String { keyPrefix + "marks" }
    /// The marker that the shard's books are the audit's (`LedgerBooks`): gone with a Redis
    /// that lost its data, and Kenny fills nothing until the books are restored.
    public var ledger: String { keyPrefix + "ledger" }
    /// Kenny's orders by trace id (a hash per day): the idempotency record.
    public var orders: String { keyPrefix + "orders" }
    /// The producers' trace ids the API's intake holds, with their content digests: one hash per
    /// UTC day (yyyy-MM-dd), so `POST /v1/signals` can tell a retry from other content.
    public func intake(day: String) -> String { keyPrefix + "intake:" + day }
    public func inFlight(group: String) -> String { keyPrefix + "inflight:" + group }
    public func deaths(group: String) -> String { keyPrefix + "deaths:" + group }

    /// The shard a stream name belongs to (the untagged one for today's names).
    public init?(stream: String) {
        guard stream.hasPrefix("ark:{s") else {
            guard stream.hasPrefix("ark:") else { return nil }
            self = .untagged
            return
        }
        let rest = stream.dropFirst("ark:{s".count)
        guard let close = rest.firstIndex(of: "}"), let n = Int(rest[..<close]), n >= 0 else { return nil }
        self = .tagged(n)
    }

    /// What an instance name of this shard ends with: `@s3` (nothing for the untagged shard).
    public var instanceSuffix: String { tagged ? "@s\(index)" : "" }

    /// The name of the instance of `stage` that process `pid` on `host` runs for this shard
    /// (`InstanceName`): `Kenny-host-1234@s2`.
    public func instanceName(stage: Stage, host: String, pid: Int32) -> String {
        InstanceName(stage: stage, host: host, pid: pid, shard: self).description
    }

    /// The shard an instance serves, from its name (untagged for a name `InstanceName` cannot read).
    public init(instance: String) {
        self = InstanceName(parsing: instance)?.shard ?? .untagged
    }

    /// `s3`, or `default` for the untagged shard: how logs, health and metrics name it.
    public var description: String { tagged ? "s\(index)" : "default" }

    public static func < (a: Shard, b: Shard) -> Bool { a.index < b.index }
}

/// How many shards the pipeline has and which one owns an account. ARK_SHARDS unset: the one
/// untagged shard. ARK_SHARDS=N (required on a cluster, any N ≥ 1): N tagged shards.
public struct ShardLayout: Sendable, Equatable {
    public let shards: [Shard]

    public static let single = ShardLayout(count: nil)

    public init(count: Int?) {
        if let count { shards = (0..<max(1, count)).map(Shard.tagged) } else { shards = [.untagged] }
    }

    public var isTagged: Bool { shards.first?.tagged ?? false }

    /// The account a signal belongs to when it names none.
    public static let defaultAccount = "default"

    /// The shard that owns `account`: a stable hash (FNV-1a, 64 bits), so an account's
    /// signals always meet the same paper book. Changing ARK_SHARDS moves accounts: drain
    /// first (docs/scale-out.md).
    public func shard(forAccount account: String) -> Shard {
        guard shards.count > 1 else { return shards[0] }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in account.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return shards[Int(h % UInt64(shards.count))]
    }
}

extension ShardLayout {
    /// The `account` a signal names at its top level (a string of at most 128 bytes), else
    /// `default`: what routes it. A payload that is not a JSON object routes as `default`;
    /// Kyle rejects it there with its reason.
    public static func account(ofSignal payload: [UInt8]) -> String {
        payload.withUnsafeBufferPointer { buf in
            var r = JSONReader(buf)
            do {
                try r.beginObject()
                var first = true
                while let key = try r.nextKey(first: first) {
                    first = false
                    if r.matches(key, "account"), try r.peekKind() == .string {
                        let account = try r.readString()
                        return account.isEmpty || account.utf8.count > 128 ? defaultAccount : account
                    }
                    try r.skipValue()
                }
            } catch {}
            return defaultAccount
        }
    }

    /// The shard of each payload, with the payloads' indices, in shard order.
    public func route(_ payloads: [[UInt8]]) -> [(shard: Shard, indices: [Int])] {
        guard shards.count > 1 else { return [(shards[0], Array(payloads.indices))] }
        var by: [Shard: [Int]] = [:]
        for (i, p) in payloads.enumerated() { by[shard(forAccount: Self.account(ofSignal: p)), default: []].append(i) }
        return by.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}
