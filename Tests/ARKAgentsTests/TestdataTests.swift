import ARKAgents
import ARKCore
import ARKTestSupport
import Foundation
import Graveyard
import Testing

struct KyleCase: Sendable, CustomTestStringConvertible {
    var name: String
    var payload: [UInt8]
    var expect: String
    var note: String
    var testDescription: String { name }

    static func load() throws -> [KyleCase] {
        let text = try String(contentsOfFile: Repo.testdata + "/kyle_inputs.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return KyleCase(name: o["name"] as! String, payload: [UInt8](Data(base64Encoded: o["event_b64"] as! String)!),
                            expect: o["expect"] as! String, note: o["note"] as? String ?? "")
        }
    }
}

/// Every case from the real Python producers (Tests/Data, from shared/testdata): Kyle's validation, Joey's
/// proposal and HRM's rules against an empty book give the expected outcome.
@Suite struct ProducerTestdataTests {
    static let cases: [KyleCase] = (try? KyleCase.load()) ?? []

    @Test func allCasesLoaded() throws {
        // Loaded again so a missing or unreadable file fails here with its error.
        #expect(try KyleCase.load().count >= 37)
    }

    @Test(arguments: cases)
    func producerCase(_ c: KyleCase) throws {
        let outcome = SignalValidator(maxPayloadBytes: 65_536).validate(c.payload, fallbackTraceID: "ark-1-0", nowNs: 1_000)
        let options = c.expect.replacingOccurrences(of: "_or_", with: "|").split(separator: "|").map(String.init)
        var matched: [String] = []
        for option in options {
            var o = option
            if o.hasPrefix("reject:") == false && o.hasPrefix("accept") == false { o = "reject:" + o }  // "reject:parse_or_accept"
            if o.hasPrefix("reject:") {
                let field = String(o.dropFirst("reject:".count))
                if case .rejected(let reasons) = outcome, reasons.contains(where: { $0.hasPrefix(field + ":") }) { matched.append(option) }
            } else if case .accepted(var e) = outcome {
                var joey = JoeyScorer()
                joey.propose(&e)
                var batch = BatchApprovals()
                let r = try #require({ if case .intact(let r) = Graveyard.check(directory: Repo.graveyard) { return r }; return nil }())
                let d = r.evaluate(Proposal(e), book: PortfolioSnapshot(equity: 100_000), batch: &batch)
                switch o {
                case "accept": matched.append(option)
                case "accept:denied": if !d.approved { matched.append(option) }
                case "accept:approved": if d.approved && d.warnings.isEmpty { matched.append(option) }
                case "accept:approved_with_warning": if d.approved && !d.warnings.isEmpty { matched.append(option) }
                default: Issue.record("unknown expectation \(o)")
                }
                if c.name == "python_default" { #expect(e.symbol == "AAPL" && e.price == 190.25 && e.traceID == "ark-1-0") }
            }
        }
        #expect(!matched.isEmpty, "\(c.name) (\(c.note)): expected \(c.expect), got \(outcome)")
        // Every rejection says what is wrong, by field or kind.
        for reason in outcome.reasons {
            #expect(reason.contains(": "), "\(reason)")
        }
    }
}
