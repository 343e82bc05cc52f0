import ARKCore
import ARKTestSupport
import Foundation
import Graveyard
import Testing

func rules() throws -> RuleSet {
    guard case .intact(let r) = Graveyard.check(directory: Repo.graveyard) else {
        throw TestSetupError("graveyard not intact: \(Graveyard.check(directory: Repo.graveyard).problem ?? "")")
    }
    return r
}

func proposal(action: String? = "buy", symbol: String = "AAPL", price: Double = 100, size: Double? = 0.05, leverage: Double? = 1,
              stop: Double? = 98, rr: Double? = 2, intent: String? = nil) -> Proposal {
    Proposal(symbol: symbol, price: price, action: action, positionSizePct: size, leverage: leverage, stopLoss: stop, riskRewardRatio: rr, intent: intent)
}

func evaluate(_ p: Proposal, book: PortfolioSnapshot = PortfolioSnapshot(equity: 100_000)) throws -> Decision {
    var batch = BatchApprovals()
    return try rules().evaluate(p, book: book, batch: &batch)
}

@Suite struct GraveyardIntegrityTests {
    @Test func pinnedHashMatchesTheFileAndItsSidecar() throws {
        let bytes = [UInt8](FileManager.default.contents(atPath: Repo.graveyard + "/ethics_rules.json")!)
        #expect(SHA256.hexDigest(bytes) == Graveyard.pinnedSHA256)
        let sidecar = try String(contentsOfFile: Repo.graveyard + "/ethics_rules.json.sha256", encoding: .utf8)
        #expect(sidecar.hasPrefix(Graveyard.pinnedSHA256))
        #expect(try rules().hash == Graveyard.pinnedSHA256)
    }

    @Test func everyRuleOfTheDesignIsPresent() throws {
        let ids = Set(try rules().specs.map(\.id))
        for id in ["max_position_size", "max_daily_loss", "max_leverage", "stop_loss_required", "min_risk_reward",
                   "max_concurrent_trades", "blocked_symbols", "manipulative_intent", "graveyard_immutable"] {
            #expect(ids.contains(id), "\(id)")
        }
        #expect(try rules().specs.first { $0.id == "graveyard_immutable" }?.severity == "CRITICAL")
    }

    @Test func aModifiedFileIsDriftAndFailsClosed() throws {
        let dir = try TempDir("ark-graveyard")
        defer { dir.remove() }
        var text = try String(contentsOfFile: Repo.graveyard + "/ethics_rules.json", encoding: .utf8)
        text = text.replacingOccurrences(of: "\"limit\": 2.0", with: "\"limit\": 20.0")
        try text.write(toFile: dir.path + "/ethics_rules.json", atomically: true, encoding: .utf8)
        let integrity = Graveyard.check(directory: dir.path)
        guard case .drifted(let actual, let pinned) = integrity else {
            Issue.record("expected drift, got \(integrity)")
            return
        }
        #expect(actual != pinned && pinned == Graveyard.pinnedSHA256)
        let d = Graveyard.failClosed(integrity.problem!, policyHash: actual)
        #expect(!d.approved && d.violations.first?.severity == .critical && d.policyHash == actual)
        #expect(!Graveyard.check(directory: dir.path + "/missing").isIntact)
    }
}

@Suite struct RuleFileTests {
    func load(_ text: String) -> String? {
        do {
            _ = try RuleSet(json: Array(text.utf8), hash: "test")
            return nil
        } catch {
            return "\(error)"
        }
    }

    let rule = #"{"id": "r", "category": "risk", "severity": "HIGH", "effect": "deny", "check": "max", "field": "leverage", "limit": 2, "message": "m"}"#

    @Test func theShippedFileLoadsEveryRuleWithItsFields() throws {
        let bytes = [UInt8](FileManager.default.contents(atPath: Repo.graveyard + "/ethics_rules.json")!)
        let set = try RuleSet(json: bytes, hash: "h")
        let leverage = try #require(set.specs.first { $0.id == "max_leverage" })
        #expect([leverage.category, leverage.severity, leverage.effect, leverage.check, leverage.field, leverage.message]
                == ["risk", "CRITICAL", "deny", "max", "leverage", "leverage must not exceed 2.0"])
        #expect(leverage.limit == 2.0 && leverage.values == nil)
        #expect(set.specs.contains { ($0.values?.count ?? 0) > 1 })
    }

    @Test func unknownKeysAreIgnoredAndAnEscapedKeyStillCounts() {
        #expect(load(#"{"name": "n", "version": 1, "notice": {"x": [1]}, "rules": [\#(rule)]}"#) == nil)
        #expect(load(#"{"n\u0061me": "n", "version": 1, "rules": []}"#) == nil)
    }

    @Test(arguments: [
        (#"{"version": 1, "rules": []}"#, "missing key 'name'"),
        (#"{"name": "n", "version": 1.5, "rules": []}"#, "'version' must be an integer"),
        (#"{"name": "n", "version": "1", "rules": []}"#, "'version' must be an integer"),
        (#"{"name": 1, "version": 1, "rules": []}"#, "'name' must be a string"),
        (#"{"name": "n", "version": 1, "rules": {}}"#, "'rules' must be an array of rules"),
        (#"{"name": "n", "version": 1, "rules": [[]]}"#, "rules[0] must be an object"),
        (#"{"name": "n", "version": 1, "rules": [{"id": "r"}]}"#, "rules[0]: missing key 'category'"),
        (#"{"name": "n", "version": 1, "rules": [{"id": 7}]}"#, "rules[0]: 'id' must be a string"),
        (#"{"name": "n", "version": 1, "rules": [{"id": "r", "limit": "2"}]}"#, "rules[0]: 'limit' must be a number"),
        (#"{"name": "n", "version": 1, "rules": [{"id": "r", "values": ["a", 1]}]}"#, "rules[0]: 'values' must be an array of strings"),
        (#"{"name": "n", "version": 1, "rules": [] "#, "not JSON: unexpected end of input inside an object"),
    ])
    func aBadFileNamesWhatIsWrong(text: String, expected: String) {
        let error = load(text)
        #expect(error?.hasPrefix("rule file is not valid: " + expected) == true, "\(error ?? "loaded")")
    }

    @Test func theSecondRuleIsNamedByItsIndex() {
        let broken = rule.replacingOccurrences(of: #""message": "m""#, with: #""msg": "m""#)
        #expect(load(#"{"name": "n", "version": 1, "rules": [\#(rule), \#(broken)]}"#) == "rule file is not valid: rules[1]: missing key 'message'")
        #expect(load(#"{"name": "n", "version": 1, "rules": [\#(rule), \#(rule)]}"#) == "rule r appears twice")
    }
}

@Suite struct RuleTests {
    @Test func aCompliantProposalIsApprovedWithItsPolicyHash() throws {
        let d = try evaluate(proposal())
        #expect(d.approved && d.violations.isEmpty && d.warnings.isEmpty)
        #expect(d.policyHash == Graveyard.pinnedSHA256 && d.complianceScore == 1 && d.rulesChecked == 18)
        // The price band is Kenny's to judge (it holds the trusted prices): HRM leaves it out.
        #expect(try rules().specs.count == 19 && rules().priceBand?.band == PriceBand(fraction: 0.10, confirmations: 3))
    }

    @Test(arguments: [(0.09, true), (0.10, true), (0.1000001, false), (0.25, false)])
    func maxPositionSize(size: Double, approved: Bool) throws {
        let d = try evaluate(proposal(size: size))
        #expect(d.approved == approved)
        // Over 10% of equity also exceeds the per-symbol exposure limit for a new position.
        if !approved { #expect(d.violations.map(\.rule) == ["max_position_size", "max_symbol_exposure"] && d.violations[0].severity == .critical) }
    }

    @Test(arguments: [(1.99, true), (2.0, true), (2.0000001, false), (3, false)])
    func maxLeverage(leverage: Double, approved: Bool) throws {
        let d = try evaluate(proposal(leverage: leverage))
        #expect(d.approved == approved)
        if !approved { #expect(d.violations.map(\.rule) == ["max_leverage"] && d.violations[0].value == leverage) }
    }

    @Test(arguments: [(1.51, false), (1.5, false), (1.49, true), (1.2, true)])
    func minRiskRewardIsAWarning(rr: Double, warned: Bool) throws {
        let d = try evaluate(proposal(rr: rr))
        #expect(d.approved)
        #expect(d.warnings.map(\.rule) == (warned ? ["min_risk_reward"] : []))
        #expect(d.complianceScore < 1 || !warned)
    }

    @Test func stopLossRequiredOnTheProtectiveSide() throws {
        #expect(try evaluate(proposal(stop: nil)).violations.map(\.rule) == ["stop_loss_required"])
        #expect(try evaluate(proposal(stop: 100)).violations.map(\.rule) == ["stop_loss_required"])
        #expect(try evaluate(proposal(stop: 99.99)).approved)
        #expect(try evaluate(proposal(action: "sell", stop: 98)).violations.map(\.rule) == ["stop_loss_required"])
        #expect(try evaluate(proposal(action: "sell", stop: 102)).approved)
        #expect(try evaluate(proposal(stop: -1)).violations.map(\.rule) == ["stop_loss_required"])
        #expect(try evaluate(proposal(action: "hold", stop: nil)).violations.map(\.rule) == ["stop_loss_required"])
    }

    @Test func missingOrNonFiniteFieldsFailClosed() throws {
        #expect(try evaluate(proposal(size: nil)).violations.map(\.rule) == ["max_position_size", "min_position_size", "min_position_notional"])
        #expect(try evaluate(proposal(leverage: nil)).violations.map(\.rule) == ["max_leverage", "min_leverage"])
        #expect(try evaluate(proposal(leverage: .nan)).violations.map(\.rule) == ["max_leverage", "min_leverage"])
        #expect(try evaluate(proposal(size: .infinity)).violations.map(\.rule).contains("max_position_size"))
        #expect(try evaluate(proposal(stop: .nan)).violations.map(\.rule) == ["stop_loss_required"])
        #expect(try evaluate(proposal(action: nil)).violations.map(\.rule).contains("known_action"))
        #expect(try evaluate(proposal(action: "short_everything")).violations.map(\.rule) == ["known_action"])
    }

    @Test func blockedSymbolsManipulationAndTheGraveyardItself() throws {
        #expect(try evaluate(proposal(symbol: "BLOCKED")).violations.map(\.rule) == ["blocked_symbols"])
        #expect(try evaluate(proposal(intent: "Spoofing the book")).violations.map(\.rule) == ["manipulative_intent"])
        #expect(try evaluate(proposal(intent: "pump and dump")).violations.map(\.rule) == ["manipulative_intent"])
        #expect(try evaluate(proposal(intent: "hedge earnings risk")).approved)
        let g = try evaluate(proposal(action: "modify_graveyard"))
        #expect(g.violations.contains { $0.rule == "graveyard_immutable" && $0.severity == .critical })
        #expect(try evaluate(proposal(intent: "please disable HRM for this one")).violations.map(\.rule) == ["graveyard_immutable"])
    }

    /// The inputs the issue found approved: each is a rule of its own now.
    @Test func boundedInputsAreRules() throws {
        #expect(try evaluate(proposal(leverage: -100)).violations.map(\.rule) == ["min_leverage"])
        #expect(try evaluate(proposal(leverage: 0)).violations.map(\.rule) == ["min_leverage"])
        #expect(try evaluate(proposal(leverage: 1)).approved)
        // Dust: a size of 1e-300 of equity is under the minimum size and notional.
        #expect(try evaluate(proposal(size: 1e-300)).violations.map(\.rule) == ["min_position_size", "min_position_notional"])
        #expect(try evaluate(proposal(size: 0.0005)).violations.map(\.rule) == ["min_position_notional"])  // 50 of 100,000
        #expect(try evaluate(proposal(size: 0.001)).approved)  // 100
        #expect(try evaluate(proposal(rr: 1e308)).violations.map(\.rule) == ["max_risk_reward"])
        #expect(try evaluate(proposal(rr: -2)).violations.map(\.rule) == ["risk_reward_floor"])
        #expect(try evaluate(proposal(rr: 100)).approved)
        #expect(try evaluate(proposal(price: 1e308, stop: 1)).violations.map(\.rule) == ["max_price"])
        #expect(try evaluate(proposal(action: "sell", price: .leastNonzeroMagnitude, stop: 1)).violations.map(\.rule) == ["min_price"])
        // A hold trades nothing: the trade sizing rules leave it alone.
        #expect(try evaluate(proposal(action: "hold", size: 0, leverage: 0, stop: 98)).approved)
        // The minimum notional is of the equity at hand: with less equity, a larger share.
        #expect(try evaluate(proposal(size: 0.001), book: PortfolioSnapshot(equity: 50_000)).violations.map(\.rule) == ["min_position_notional"])
    }

    /// The issue's variants of a blocked symbol and of listed intents, all caught.
    @Test func blockedInstrumentsMatchTheirCanonicalRoot() throws {
        for symbol in ["BLOCKED", "BLOCKED.US", "HALTED:NYSE", "NYSE:HALTED", "blocked", "B.L.O.C.K.E.D", "BLOCKED/USD", "SANCTIONED-A",
                       "_BLOCKED_", "BLOCKED^", "=HALTED", "BLOCKED.XNYS", "H-A-L-T-E-D", "ＢＬＯＣＫＥＤ", "BLO\u{200B}CKED"] {
            #expect(try evaluate(proposal(symbol: symbol)).violations.map(\.rule) == ["blocked_symbols"], "\(symbol)")
        }
        // A symbol in another script cannot be an instrument: refused by the same rule.
        let cyrillic = try evaluate(proposal(symbol: "BLOCKЕD"))
        #expect(cyrillic.violations.map(\.rule) == ["blocked_symbols"] && cyrillic.violations[0].message.contains("CYRILLIC CAPITAL LETTER IE"), "\(cyrillic.violations)")
        for symbol in ["AAPL", "BLOCKEDCO", "UNBLOCKED", "BRK.B"] {
            #expect(try evaluate(proposal(symbol: symbol)).approved, "\(symbol)")
        }
    }

    @Test func listedIntentsMatchInEveryVariant() throws {
        for intent in ["spoof", "pump-and-dump", "Pump And Dump", "wash-trade", "WASH_TRADE", "washtrade", "sp\u{200D}oof", "ѕрооf",
                       "ｓｐｏｏｆ", "s p o o f", "s.p.o.o.f", "𝐬𝐩𝐨𝐨𝐟", "spóof", "SPOOF!!", "front-running the order", "p-u-m-p a-n-d d-u-m-p",
                       "layer\u{00AD}ing", "ⓢⓟⓞⓞⓕ", "corner-the-market", "marking the close? no: mark the close"] {
            let d = try evaluate(proposal(intent: intent))
            #expect(d.violations.map(\.rule) == ["manipulative_intent"], "\(intent): \(d.violations)")
        }
        // Text that mixes scripts is refused whatever it says (a look-alike letter hides a phrase).
        let mixed = try evaluate(proposal(intent: "hedge еarnings"))  // Cyrillic е
        #expect(mixed.violations.map(\.rule) == ["manipulative_intent"] && mixed.violations[0].message.contains("mixes scripts (Latin, Cyrillic)"), "\(mixed.violations)")
        for intent in ["hedge earnings risk", "rebalance", "Ребалансировка портфеля", "決算前のヘッジ"] {
            #expect(try evaluate(proposal(intent: intent)).approved, "\(intent)")
        }
        // The Graveyard's own targets the same way, in the action or the intent.
        for intent in ["Disable-HRM now", "by\u{200B}pass_hrm", "ｍｏｄｉｆｙ ｇｒａｖｅｙａｒｄ"] {
            #expect(try evaluate(proposal(intent: intent)).violations.map(\.rule) == ["graveyard_immutable"], "\(intent)")
        }
    }

    @Test func anExposureTheMarketPutOverTheLimitIsReducing() throws {
        // Equity fell to 60,000 and AAPL is valued at 9,000 (15 %): no add, any reduction.
        let book = PortfolioSnapshot(equity: 60_000, exposure: ["AAPL": 9_000])
        let add = try evaluate(proposal(size: 0.01), book: book)
        #expect(add.violations.map(\.rule) == ["max_symbol_exposure"] && add.violations[0].message.contains("AAPL is REDUCING"), "\(add.violations)")
        #expect(try evaluate(proposal(action: "sell", size: 0.01, stop: 102), book: book).approved)
    }

    @Test func dailyLossLimitAtUnderAndOver() throws {
        let under = PortfolioSnapshot(equity: 100_000, dailyPnl: -4_999)
        let at = PortfolioSnapshot(equity: 100_000, dailyPnl: -5_000)
        #expect(try evaluate(proposal(), book: under).approved)
        let d = try evaluate(proposal(), book: at)
        #expect(d.violations.map(\.rule) == ["max_daily_loss"] && d.violations[0].message.contains("book:"))
        // Reducing an open position is still allowed past the limit.
        let reducing = PortfolioSnapshot(equity: 100_000, dailyPnl: -6_000, exposure: ["AAPL": 5_000])
        #expect(try evaluate(proposal(action: "sell", stop: 102), book: reducing).approved)
    }

    @Test func concurrentTradesCountOpenPositionsAndThisBatch() throws {
        let four = PortfolioSnapshot(equity: 100_000, exposure: ["A": 1, "B": 1, "C": 1, "D": 1])
        let r = try rules()
        var batch = BatchApprovals()
        #expect(r.evaluate(proposal(symbol: "E"), book: four, batch: &batch).approved)  // 5th position
        let sixth = r.evaluate(proposal(symbol: "F"), book: four, batch: &batch)
        #expect(sixth.violations.map(\.rule) == ["max_concurrent_trades"])
        #expect(sixth.violations[0].message.contains("4 positions open and 1 approved in this batch"))
        // Adding to an already open position is not a new trade.
        #expect(r.evaluate(proposal(symbol: "A"), book: four, batch: &batch).approved)
    }

    @Test func exposurePerSymbolIncludesTheBatch() throws {
        let r = try rules()
        var batch = BatchApprovals()
        let book = PortfolioSnapshot(equity: 100_000, exposure: ["AAPL": 4_000])
        #expect(r.evaluate(proposal(size: 0.05), book: book, batch: &batch).approved)  // 9%
        #expect(r.evaluate(proposal(size: 0.01), book: book, batch: &batch).approved)  // 10%
        #expect(r.evaluate(proposal(size: 0.01), book: book, batch: &batch).violations.map(\.rule) == ["max_symbol_exposure"])
    }
}
