// One entry of the quarantine list: an instance's stage, reason and time.

/// One field of `ark:quarantine`: why an instance is out of rotation. Written by the
/// watchdog, read by every agent's heartbeat.
public struct QuarantineEntry: Sendable, Equatable {
    public var stage: Stage
    public var reason: String
    public var sinceNs: Int64

    public init(stage: Stage, reason: String, sinceNs: Int64) {
        self.stage = stage
        self.reason = reason
        self.sinceNs = sinceNs
    }

    public init?(json bytes: [UInt8]) {
        guard let o = JSONScalars(bytes), let name = o.string("stage"), let stage = Stage(name: name) else { return nil }
        self.init(stage: stage, reason: o.string("reason") ?? "", sinceNs: o.int64("since_ns") ?? 0)
    }

    public var json: [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.key("stage"); w.string(stage.rawValue)
        w.key("reason"); w.string(reason)
        w.key("since_ns"); w.int(sinceNs)
        w.endObject()
        return w.bytes
    }
}
