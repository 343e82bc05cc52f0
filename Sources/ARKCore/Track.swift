// Tracks (baseline, canary) and the canary route that splits traces between them.

/// Which deployment a process or a trace belongs to during a canary rollout. The baseline is
/// the release in service; the canary is the release on trial, with its own agents and its
/// own streams, so a trace routed to it stays on it from Kyle to Aletheia.
public enum Track: String, Sendable, CaseIterable {
    case baseline
    case canary

    /// The track a stream belongs to, from its name: `ark:canary:kyle`, `ark:{s3}:canary:kyle`
    /// are the canary's (see `Shard.stream`).
    public init(stream: String) {
        let shard = Shard(stream: stream) ?? .untagged
        self = stream.hasPrefix(shard.keyPrefix + "canary:") ? .canary : .baseline
    }
}

extension Stage {
    /// The stream this stage consumes on `track`, on the default untagged shard.
    public func inputStream(on track: Track) -> String {
        Shard.untagged.stream(self, on: track)
    }
}

/// How the baseline Kyle splits incoming signals: a stable share of trace ids, by hash, goes
/// to the canary. Kept in Redis (`Streams.canaryRoute`) by the canary controller; the version
/// grows with every change, and each routing Kyle acknowledges the version it applies in
/// `Streams.canaryRouteSeen`, so a rollback knows when no more signals go to the canary.
public struct CanaryRoute: Sendable, Equatable {
    /// Share of traces for the canary, 0...100.
    public var percent: Double
    public var version: Int64
    /// The canary run this route belongs to ("" when none).
    public var runID: String

    public init(percent: Double, version: Int64, runID: String) {
        self.percent = percent
        self.version = version
        self.runID = runID
    }

    public static let off = CanaryRoute(percent: 0, version: 0, runID: "")

    /// Reads the hash fields Redis returned (missing or malformed: no canary).
    public init(fields: [String: String]) {
        let p = Double(fields["percent"] ?? "") ?? 0
        percent = p.isFinite ? min(100, max(0, p)) : 0
        version = Int64(fields["version"] ?? "") ?? 0
        runID = fields["run_id"] ?? ""
    }

    public var fields: [(String, String)] {
        [("percent", String(percent)), ("version", String(version)), ("run_id", runID)]
    }

    /// Whether `traceID` goes to the canary: its bucket (0..<10,000, from a 64-bit FNV-1a
    /// hash) is below the share. The same trace id always lands in the same bucket, so a
    /// step from 10 % to 25 % keeps every trace that was on the canary there.
    public func routesToCanary(_ traceID: String) -> Bool {
        guard percent > 0 else { return false }
        return Double(Self.bucket(traceID)) < percent * 100
    }

    public static func bucket(_ traceID: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in traceID.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return Int(h % 10_000)
    }
}
