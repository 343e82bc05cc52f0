// The names of stage instances, built and read in one place.

/// The name of one stage instance, `<Stage>-<host>-<pid>` and `@s<N>` after it for a tagged
/// shard (docs/architecture.md §2): its consumer name in Redis, its heartbeat's field, what the
/// watchdog quarantines and the canary's tripwire compares. The one place such names are
/// built and read.
public struct InstanceName: Hashable, Sendable, CustomStringConvertible {
    public var stage: Stage
    public var host: String
    public var pid: Int32
    public var shard: Shard

    public init(stage: Stage, host: String, pid: Int32, shard: Shard = .untagged) {
        self.stage = stage
        self.host = host
        self.pid = pid
        self.shard = shard
    }

    public var description: String {
        "\(stage.rawValue)-\(host)-\(pid)" + shard.instanceSuffix
    }

    /// Reads a name built by `description`; nil for any other (a consumer named by hand, a
    /// pid that is not a positive number, an unknown stage). A host may itself hold dashes.
    public init?(parsing name: String) {
        var rest = Substring(name)
        var shard = Shard.untagged
        if let at = rest.lastIndex(of: "@") {
            let tag = rest[rest.index(after: at)...]
            guard tag.first == "s", let n = Int(tag.dropFirst()), n >= 0, String(n) == tag.dropFirst() else { return nil }
            shard = .tagged(n)
            rest = rest[..<at]
        }
        guard let firstDash = rest.firstIndex(of: "-"), let lastDash = rest.lastIndex(of: "-"), firstDash < lastDash,
              let stage = Stage(rawValue: String(rest[..<firstDash])),
              let pid = Int32(rest[rest.index(after: lastDash)...]), pid > 0, String(pid) == rest[rest.index(after: lastDash)...] else { return nil }
        let host = rest[rest.index(after: firstDash)..<lastDash]
        guard !host.isEmpty else { return nil }
        self.init(stage: stage, host: String(host), pid: pid, shard: shard)
    }
}
