// An agent instance's heartbeat, the one type its writer and every reader use.

/// An agent instance's heartbeat: the one type every reader and the writer of the
/// `ark:heartbeats` hash share (agents publish it, the watchdog, the metrics server and
/// Aletheia's copy into the store read it).
public struct HeartbeatRecord: Sendable, Equatable {
    public var instance: String
    public var stage: String
    public var host: String
    public var pid: Int
    public var processed: Int
    public var failed: Int
    public var pending: Int
    public var p50Ms: Double
    public var p95Ms: Double
    public var tsNs: Int64
    /// The watchdog took this instance out of rotation.
    public var quarantined: Bool
    /// Batches handled and batches that failed (threw, nothing acknowledged), since start.
    public var batchesOK: Int
    public var batchesFailed: Int
    /// Batches failed in a row, now.
    public var consecutiveFailures: Int
    /// Age of the batch in progress (0 when idle): a batch that never ends shows here.
    public var busyMs: Double
    /// The output stream whose unread backlog is over ARK_STREAM_MAXLEN, while the instance
    /// takes no input because of it (back-pressure); nil when it flows.
    public var backpressure: String? = nil

    public init(instance: String, stage: String, host: String, pid: Int, processed: Int, failed: Int, pending: Int, p50Ms: Double, p95Ms: Double, tsNs: Int64,
                quarantined: Bool = false, batchesOK: Int = 0, batchesFailed: Int = 0, consecutiveFailures: Int = 0, busyMs: Double = 0) {
        self.instance = instance
        self.stage = stage
        self.host = host
        self.pid = pid
        self.processed = processed
        self.failed = failed
        self.pending = pending
        self.p50Ms = p50Ms
        self.p95Ms = p95Ms
        self.tsNs = tsNs
        self.quarantined = quarantined
        self.batchesOK = batchesOK
        self.batchesFailed = batchesFailed
        self.consecutiveFailures = consecutiveFailures
        self.busyMs = busyMs
    }

    /// The JSON an agent publishes in `ark:heartbeats` (its field: the instance).
    public var json: [UInt8] {
        var w = JSONWriter(capacity: 320)
        w.beginObject()
        w.key("instance"); w.string(instance)
        w.key("stage"); w.string(stage)
        w.key("host"); w.string(host)
        w.key("pid"); w.int(Int64(pid))
        w.key("processed"); w.int(Int64(processed))
        w.key("failed"); w.int(Int64(failed))
        w.key("pending"); w.int(Int64(pending))
        w.key("p50_ms"); w.double(p50Ms)
        w.key("p95_ms"); w.double(p95Ms)
        w.key("batches_ok"); w.int(Int64(batchesOK))
        w.key("batches_failed"); w.int(Int64(batchesFailed))
        w.key("consecutive_failures"); w.int(Int64(consecutiveFailures))
        w.key("busy_ms"); w.double(busyMs)
        w.key("quarantined"); w.bool(quarantined)
        if let backpressure { w.key("backpressure"); w.string(backpressure) }
        w.key("ts_ns"); w.int(tsNs)
        w.endObject()
        return w.bytes
    }

    /// Reads the JSON an agent publishes; nil when it is not a heartbeat.
    public init?(json bytes: [UInt8]) {
        // A beat without a plausible time is no evidence of life (and would trap the
        // watchdog's arithmetic on ages).
        guard let o = JSONScalars(bytes), let instance = o.string("instance"), let stage = o.string("stage"),
              let tsNs = o.int64("ts_ns"), plausibleNanoseconds.contains(tsNs) else { return nil }
        func int(_ k: String) -> Int { o.int(k) ?? 0 }
        func double(_ k: String) -> Double { o.double(k) ?? 0 }
        self.init(instance: instance, stage: stage, host: o.string("host") ?? "", pid: int("pid"), processed: int("processed"),
                  failed: int("failed"), pending: int("pending"), p50Ms: double("p50_ms"), p95Ms: double("p95_ms"),
                  tsNs: tsNs, quarantined: o.bool("quarantined") ?? false,
                  batchesOK: int("batches_ok"), batchesFailed: int("batches_failed"), consecutiveFailures: int("consecutive_failures"),
                  busyMs: double("busy_ms"))
        backpressure = o.string("backpressure")
    }

    public func ageSeconds(nowNs: Int64) -> Double { Double(elapsedNanoseconds(from: tsNs, to: nowNs)) / 1e9 }

    /// A heartbeat older than this (five missed beats) means the instance is hung, stopped or
    /// cut off: the default of WATCHDOG_HEARTBEAT_TIMEOUT_MS, which the monitoring uses when set.
    public static let staleAfterSeconds = 5.0

    /// Taking work: a fresh heartbeat and not quarantined.
    public func isLive(nowNs: Int64, staleAfterSeconds: Double = HeartbeatRecord.staleAfterSeconds) -> Bool {
        !quarantined && ageSeconds(nowNs: nowNs) <= staleAfterSeconds
    }
}

