import ARKBus
import ARKCore
import ARKState
import ARKTestSupport
import Foundation
import Graveyard
import ARKRisk
import Testing

/// The portfolio invariant with the processes operators run: two HRM and two Kenny
/// instances sharing their groups, and bursts of compliant buys far past every limit, on
/// one symbol and on hundreds. Afterwards the book Kenny keeps and the orders Aletheia
/// recorded are checked against every limit (DESIGN §3).
extension EndToEnd { @Suite struct PortfolioLimitTests {
    static let rules: RuleSet = {
        guard case .intact(let r) = Graveyard.check(directory: Repo.graveyard) else { fatalError("the Graveyard in the repository does not load") }
        return r
    }()

    /// Compliant buys at 1 % of equity each, as a Python producer writes them.
    func buys(_ f: Pipeline, _ count: Int, symbols: [String], prefix: String) throws {
        let c = try f.redis.client()
        for chunk in stride(from: 0, to: count, by: 500) {
            _ = try c.pipeline((chunk..<min(count, chunk + 500)).map { i in
                let json = "{\"trace_id\": \"\(prefix)-\(i)\", \"symbol\": \"\(symbols[i % symbols.count])\", \"price\": 100.0, \"volume\": 100, \"source\": \"burst\", "
                    + "\"action\": \"buy\", \"position_size_pct\": 0.01, \"leverage\": 1.0, \"stop_loss\": 95.0, \"risk_reward_ratio\": 2.0}"
                return ["XADD", .text(Stage.kyle.inputStream), "*", "event", .text(json)]
            })
        }
    }

    func book(_ f: Pipeline) throws -> PortfolioSnapshot {
        let books = PortfolioHash.books(try f.redis.client().hashEntries(Streams.portfolio))
        return try #require(books[ShardLayout.defaultAccount]).get().snapshot
    }

    /// Net notional per symbol from the recorded orders.
    func recordedExposure(_ f: Pipeline) throws -> [String: Double] {
        let r = try runCommand("/usr/bin/sqlite3", [f.statePath, "SELECT symbol, SUM(CASE side WHEN 'buy' THEN notional ELSE -notional END) FROM orders GROUP BY symbol"])
        var out: [String: Double] = [:]
        for line in r.output.split(separator: "\n") {
            let parts = line.split(separator: "|")
            if parts.count == 2, let v = Double(parts[1]) { out[String(parts[0])] = v }
        }
        return out
    }

    @Test func twoHRMsAndTwoKennysHoldEveryLimitUnderBurstsOnOneSymbolAndOnHundreds() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAllWithTwoHRMsAndTwoKennys()
        func recorded() -> Int { (try? f.store().passCount()) ?? 0 }

        // 3,000 buys of one symbol at 1 % each: 10 fit under the 10 % exposure limit.
        try buys(f, 3000, symbols: ["AAPL"], prefix: "one")
        #expect(waitFor(timeout: 120) { recorded() == 3000 }, "\(recorded()) recorded\n\(f.logs())")
        var snapshot = try book(f)
        #expect(Self.rules.breaches(of: snapshot) == [], "\(snapshot)")
        #expect(abs(snapshot.exposure["AAPL"] ?? 0) <= 0.10 * snapshot.equity * (1 + 1e-9), "\(snapshot)")
        #expect(try f.store().orderCount() == 10)
        var counts = try f.store().verdictCounts()
        #expect(counts[.approved] == 10 && counts[.denied] == 2990, "\(counts)")

        // 2,000 more over 400 symbols: at most 5 positions open, whoever approved them.
        try buys(f, 2000, symbols: (0..<400).map { "SYM\($0)" }, prefix: "many")
        #expect(waitFor(timeout: 120) { recorded() == 5000 }, "\(recorded()) recorded\n\(f.logs())")
        snapshot = try book(f)
        #expect(Self.rules.breaches(of: snapshot) == [], "\(snapshot)")
        #expect(snapshot.openPositions <= 5, "\(snapshot)")
        let exposure = try recordedExposure(f)
        #expect(exposure.count <= 5 && exposure.values.allSatisfy { abs($0) <= 0.10 * snapshot.equity * (1 + 1e-9) }, "\(exposure)")
        counts = try f.store().verdictCounts()
        #expect(counts[.error] == nil && counts[.deadlettered] == nil, "\(counts)")
        // Every denial names a portfolio rule and the book's figures; some came from Kenny, at
        // execution, where HRM's book was stale.
        let portfolio = Set(Self.rules.specs.filter { $0.category == "portfolio" }.map(\.id))
        let atExecution = try runCommand("/usr/bin/sqlite3", [f.statePath, "SELECT COUNT(*) FROM passes WHERE verdict = 'denied' AND record LIKE '%(at execution, Kenny)%'"])
        let byKenny = Int(atExecution.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        let sample = try #require(try f.store().pass(traceID: "many-1999"))
        #expect(sample.verdict == .denied && Set(sample.violatedRules).isSubset(of: portfolio) && sample.reasons.joined().contains("book:"), "\(sample.reasons)")
        print("two HRM + two Kenny: 5,000 buys, \(try f.store().orderCount()) filled, \(counts[.denied] ?? 0) denied for a limit (\(byKenny) at execution by Kenny); book \(snapshot.openPositions) open, AAPL \(String(format: "%.1f", 100 * abs(snapshot.exposure["AAPL"] ?? 0) / snapshot.equity)) %")
        #expect(try f.tracesFilledTwice() == [])
    }
} }
