import ARKBus
import ARKCore
import ARKRisk
import ARKState
import ARKTestSupport
import Foundation
import Testing

/// The book against the audit, through the real agents (private redis-server, real SQLite):
/// a trace is decided once, whatever comes back under its id.
extension EndToEnd { @Suite struct LedgerTests {
    typealias R = RiskEngineEndToEndTests

    /// A trace denied once (leverage 50) sent again with leverage 1, and a trace refused at
    /// execution (an erroneous price) sent again at a sane price, both straight into Kyle's
    /// stream: each keeps its first outcome, neither fills, and the book holds only what the
    /// audit explains.
    @Test func aTraceRefusedOnceNeverFillsLater() throws {
        let f = try PipelineFixture()
        defer { f.shutdown() }
        try f.startAll()
        try R.send(f, [R.trade("ref", "AAPL", price: 100), R.trade("lev", "AAPL", price: 100, size: 0.011).replacingOccurrences(of: "\"leverage\": 1.0", with: "\"leverage\": 50.0")])
        _ = try R.passes(f, ["ref", "lev"])
        try R.send(f, [R.trade("band", "AAPL", price: 100_000, size: 0.012)])
        let first = try R.passes(f, ["band"])
        #expect(first["band"]?.verdict == .denied && first["band"]?.violatedRules == ["price_band"], "\(first["band"]?.reasons ?? [])")
        // Both come back, fixed, then a marker whose pass says the two were handled.
        try R.send(f, [R.trade("lev", "AAPL", price: 100, size: 0.013), R.trade("band", "AAPL", price: 100, size: 0.014), R.trade("marker", "AAPL", price: 100, size: 0.015)])
        let got = try R.passes(f, ["ref", "lev", "band", "marker"])
        #expect(got["lev"]?.verdict == .denied && got["lev"]?.violatedRules.contains("max_leverage") == true, "\(got["lev"]?.reasons ?? [])")
        #expect(got["band"]?.verdict == .denied && got["band"]?.violatedRules == ["price_band"])
        #expect(got["ref"]?.orderID != nil && got["marker"]?.orderID != nil)
        #expect(got["lev"]?.orderID == nil && got["band"]?.orderID == nil)
        #expect(try f.store().orderCount() == 2)
        // The book holds the two fills and nothing else: 0.01 + 0.015 of equity at 100.
        let book = try R.defaultBook(f)
        let q = try #require(book.positions["AAPL"]?.quantity)
        #expect(abs(q - 25) < 0.01, "\(q)")
        #expect(try f.tracesFilledTwice().isEmpty)
    }

    /// Through the API: the same trace id with other content is 409 naming the first outcome;
    /// the same content (other key order and spacing) is an idempotent 202; in a batch the
    /// conflicting item alone is refused.
    @Test func theAPIRefusesATraceIDHeldWithOtherContent() async throws {
        let f = try await APIFixture()
        defer { f.shutdown() }
        let token = await f.token("ledger-producer")
        let denied = f.signal("api-lev").replacingOccurrences(of: "\"leverage\":1.0", with: "\"leverage\":50.0")
        #expect(try await f.call("POST", "/v1/signals", token: token, body: Array(denied.utf8)).status == 202)
        #expect(try await f.recordedTrace("api-lev", token: token)?["verdict"] as? String == "denied")
        let fixed = f.signal("api-lev")
        let conflict = try await f.call("POST", "/v1/signals", token: token, body: Array(fixed.utf8))
        let error = conflict.json?["error"] as? [String: Any]
        #expect(conflict.status == 409 && error?["code"] as? String == "trace_conflict", "\(conflict.text)")
        #expect((error?["message"] as? String)?.contains("its first outcome: denied") == true, "\(conflict.text)")
        // The same signal, its members reordered and spaced: the same content.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(denied.utf8)) as? [String: Any])
        let respelled = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        let again = try await f.call("POST", "/v1/signals", token: token, body: Array(respelled))
        #expect(again.status == 202, "\(again.text)")
        // A batch: a new trace and the conflicting one.
        let batch = "[" + f.signal("api-new") + "," + fixed + "]"
        let mixed = try await f.call("POST", "/v1/signals", token: token, body: Array(batch.utf8))
        #expect(mixed.status == 202 && mixed.json?["accepted"] as? Int == 1 && mixed.json?["conflicts"] as? Int == 1, "\(mixed.text)")
        let items = mixed.json?["signals"] as? [[String: Any]] ?? []
        #expect(items.map { $0["status"] as? String } == ["accepted", "conflict"], "\(mixed.text)")
        #expect(try await f.recordedTrace("api-new", token: token)?["verdict"] as? String == "approved")
        let store = try StateStore(path: f.statePath)
        #expect(try store.pass(traceID: "api-lev")?.verdict == .denied)
        #expect(try store.orderCount() == 1)
    }
} }
