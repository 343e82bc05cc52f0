// `ark trace`: one pass hop by hop.

import ARKCore
import ARKState
import ArgumentParser
import Foundation

struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show one pass: verdict, reasons, every hop with its time, decision and execution.",
        discussion: """
            Examples:
              ark trace syn-k2x9-60
              ark trace ark-1732330000123-0 --json
            """)

    @Argument(help: "The trace id.")
    var traceID: String

    @Flag(help: "Print the audited record as JSON.")
    var json = false

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try common.config()
        let store = try openStoreReadOnly(config)
        guard let pass = try store.pass(traceID: traceID) else {
            throw fail("trace \(traceID) is not in \(config.stateDB): still in flight, or unknown")
        }
        if json {
            print(pass.record)
            return
        }
        print("trace \(pass.traceID)  #\(pass.seq)  \(pass.verdict.rawValue.uppercased())  \(String(format: "%.3f", pass.latencyMs)) ms  continuity \(pass.continuityOK ? "ok" : "BROKEN")")
        for r in pass.reasons { print("  reason: \(r)") }
        guard let record = JSONDocument.object(pass.record),
              let event = record["event"] as? [String: Any] else { return }
        let t0 = (event["t0_ns"] as? NSNumber)?.int64Value ?? 0
        print("  signal: \(event["symbol"] ?? "-") price \(event["price"] ?? "-") action \(event["action"] ?? "-") size \(event["position_size_pct"] ?? "-") leverage \(event["leverage"] ?? "-") stop \(event["stop_loss"] ?? "-")")
        for hop in event["hops"] as? [[String: Any]] ?? [] {
            let inNs = (hop["in_ns"] as? NSNumber)?.int64Value ?? 0
            let outNs = (hop["out_ns"] as? NSNumber)?.int64Value ?? 0
            let stage = (hop["stage"] as? String ?? "?").padding(toLength: 9, withPad: " ", startingAt: 0)
            let instance = hop["instance"] as? String ?? "?"
            print("  \(stage) \(instance)  " + String(format: "in +%.3f ms  out +%.3f ms", Double(inNs - t0) / 1e6, Double(outNs - t0) / 1e6))
        }
        if let d = event["decision"] as? [String: Any] {
            print("  decision: approved=\(d["approved"] ?? "?") rules_checked=\(d["rules_checked"] ?? "?") compliance=\(d["compliance_score"] ?? "?") policy \(d["policy_hash"] ?? "?")")
        }
        if let x = event["execution"] as? [String: Any] {
            print("  execution: \(x["status"] ?? "?") \(x["side"] ?? "") \(x["quantity"] ?? "") @ \(x["price"] ?? "") order \(x["order_id"] ?? "-")")
        }
        print("  audit hash \(pass.hash)")
    }
}

/// Opens the state store for reading, or exits naming the problem.
func openStoreReadOnly(_ config: ARKConfig) throws -> StateStore {
    do {
        return try StateStore(path: config.stateDB, readOnly: true)
    } catch {
        throw fail("cannot open the state store \(config.stateDB): \(error). Fix: set ARK_STATE_DB (or use --local)")
    }
}
