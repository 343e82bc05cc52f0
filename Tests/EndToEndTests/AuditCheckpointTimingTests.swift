import ARKCore
import ARKTestSupport
import Foundation
import Testing

/// docs/audit.md promises that a record waits at most ARK_AUDIT_CHECKPOINT_MS for a signed head, busy
/// or idle. With a real clock and an idle pipeline: single signals at uneven gaps, each
/// record's commit (`done_ns`) against the time of the first checkpoint that covers it.
extension EndToEnd { @Suite struct AuditCheckpointTimingTests {
    @Test func aGrownHeadIsSignedWithinTheCheckpointIntervalWhileIdle() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        f.extraEnvironment["ARK_AUDIT_CHECKPOINT_MS"] = "1000"
        try f.startAll()
        let redis = try f.redis.client()
        var lags: [Int64] = []
        for (i, gap) in [0.3, 1.7, 0.9, 2.3, 0.1, 1.2, 0.6, 1.9].enumerated() {
            try await Task.sleep(for: .seconds(gap))
            let signal = #"{"trace_id":"idle-\#(i)","symbol":"AAPL","price":101.5,"volume":100,"source":"timing","action":"buy","position_size_pct":0.001,"leverage":1,"stop_loss":99,"risk_reward_ratio":2}"#
            _ = try redis.command(["XADD", .text(Stage.kyle.inputStream), "*", "event", .text(signal)])
            var lag: Int64?
            let deadline = monotonicNanoseconds() + 10_000_000_000
            while lag == nil, monotonicNanoseconds() < deadline {
                try await Task.sleep(for: .milliseconds(50))
                lag = try? Self.lag(f.statePath, trace: "idle-\(i)")
            }
            lags.append(try #require(lag, "idle-\(i) was not signed within 10 s"))
        }
        print("idle records waited \(lags.map { "\($0 / 1_000_000) ms" }.joined(separator: ", ")) for a signed head (ARK_AUDIT_CHECKPOINT_MS=1000)")
        for lag in lags { #expect(lag <= 1_000_000_000, "a record waited \(lag / 1_000_000) ms for a signed head") }
    }

    /// Nanoseconds from the pass's commit to the first checkpoint covering its leaf.
    static func lag(_ db: String, trace: String) throws -> Int64? {
        let r = try runCommand("/usr/bin/sqlite3", [db, """
            SELECT c.time_ns - p.done_ns FROM passes p JOIN audit_checkpoints c ON c.size > p.leaf
            WHERE p.trace_id = '\(trace)' ORDER BY c.id LIMIT 1
            """])
        return Int64(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
} }
