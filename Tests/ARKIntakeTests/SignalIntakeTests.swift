import ARKCore
import ARKIntake
import Foundation
import Testing

@Suite struct SignalIntakeTests {
    let intake = SignalIntake(maxSignalBytes: 65_536, maxBatch: 3)

    @Test func splitsObjectsAndArraysIntoTheirOwnBytes() throws {
        let single = try intake.split(Array(#"  {"symbol":"AAPL","price":1,"volume":2} "#.utf8))
        #expect(single.single && single.items == [Array(#"{"symbol":"AAPL","price":1,"volume":2}"#.utf8)])
        let batch = try intake.split(Array(#"[ {"a":[1,{"b":"]"}]} , 7,"x" ]"#.utf8))
        #expect(!batch.single)
        #expect(batch.items.map { String(decoding: $0, as: UTF8.self) } == [#"{"a":[1,{"b":"]"}]}"#, "7", #""x""#])
    }

    @Test func refusesWhatIsNotASignalBatch() {
        func code(_ body: String) -> String? {
            do { _ = try intake.split(Array(body.utf8)); return nil } catch { return error.code }
        }
        #expect(code("[]") == "empty_batch")
        #expect(code("[{},{},{},{}]") == "batch_too_large")
        #expect(code("42") == "not_a_signal")
        #expect(code("{\"a\":") == "invalid_json")
        #expect(code("{} {}") == "invalid_json")
        #expect(code("") == "invalid_json")
        let small = SignalIntake(maxSignalBytes: 300, maxBatch: 3)
        let big = "{\"symbol\":\"AAPL\",\"pad\":\"" + String(repeating: "x", count: 300) + "\"}"
        for body in [big, "[{}," + big + "]"] {
            do { _ = try small.split(Array(body.utf8)); Issue.record("an oversized signal was let through") } catch {
                #expect(error.status == 413 && error.code == "signal_too_large")
            }
        }
    }

    @Test func resultsNameTheTraceKyleWillRecord() {
        let items = [Array(#"{"trace_id":"t-1","symbol":"AAPL","price":10,"volume":1}"#.utf8),
                     Array(#"{"symbol":"AAPL","price":10,"volume":1}"#.utf8),
                     Array(#"{"trace_id":"t-3","symbol":"AAPL","price":-1,"volume":1}"#.utf8)]
        let r = intake.results(intake.check(items, nowNs: 0), queuedTraceIDs: ["ark-1-0", "ark-1-1", "ark-1-2"])
        #expect(r.map(\.traceID) == ["t-1", "ark-1-1", "ark-1-2"])
        #expect(r.map(\.accepted) == [true, true, false])
        #expect(r[2].reasons.first?.hasPrefix("price:") == true)
    }
}
