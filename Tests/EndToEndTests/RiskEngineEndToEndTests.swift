import ARKBus
import ARKCore
import ARKRisk
import ARKState
import ARKTestSupport
import Foundation
import Graveyard
import Testing

/// The issue's attacks on the decision, each through the real agents (private redis-server,
/// real SQLite): extreme prices, look-alike symbols and intents, dust, gaps through stops,
/// an unreadable book, and the kill switch with two HRM and two Kenny instances.
extension EndToEnd { @Suite struct RiskEngineEndToEndTests {
    /// A producer's signal, as Python's json.dumps writes it; `fields` are the JSON members
    /// after the trace id (a number as its JSON text, a string quoted).
    static func json(_ traceID: String, _ fields: [(String, String)]) -> String {
        "{\"trace_id\": \"\(traceID)\", " + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }

    /// A compliant buy (or sell) at `price` with its stop 2 % away.
    static func trade(_ traceID: String, _ symbol: String, price: Double, action: String = "buy", size: Double = 0.01, extra: [(String, String)] = []) -> String {
        let stop = action == "buy" ? price * 0.98 : price * 1.02
        return json(traceID, [("symbol", "\"\(symbol)\""), ("price", "\(price)"), ("volume", "100"), ("source", "\"test\""), ("action", "\"\(action)\""),
                              ("position_size_pct", "\(size)"), ("leverage", "1.0"), ("stop_loss", "\(stop)"), ("risk_reward_ratio", "2.0")] + extra)
    }

    static func send(_ f: Pipeline, _ signals: [String]) throws {
        _ = try f.redis.client().pipeline(signals.map { ["XADD", .text(Stage.kyle.inputStream), "*", "event", .text($0)] })
    }

    /// The passes of `traceIDs`, once every one is recorded.
    static func passes(_ f: Pipeline, _ traceIDs: [String], timeout: Double = 60) throws -> [String: StoredPass] {
        var found: [String: StoredPass] = [:]
        _ = waitFor(timeout: timeout, interval: 0.1) {
            found = (try? f.store().passes(traceIDs: traceIDs)) ?? [:]
            return found.count == traceIDs.count
        }
        guard found.count == traceIDs.count else {
            throw TestSetupError("\(traceIDs.count - found.count) of \(traceIDs.count) passes not recorded: \(Set(traceIDs).subtracting(found.keys).sorted().prefix(5))\n\(f.logs())")
        }
        return found
    }

    static func defaultBook(_ f: Pipeline) throws -> PaperBook {
        let books = PortfolioHash.books(try f.redis.client().hashEntries(Streams.portfolio))
        // None yet: nothing has changed it (denials write no book).
        return try books[ShardLayout.defaultAccount]?.get() ?? PaperBook(equity: 100_000, day: PaperBook.utcDay(wallClockNanoseconds()))
    }

    /// Every figure of the stored book is finite and reads back; the audit verifies.
    static func expectSound(_ f: Pipeline, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let book = try defaultBook(f)
        #expect(book.boundsProblem() == nil, sourceLocation: sourceLocation)
        #expect(try PaperBook(json: book.encoded()) == book, sourceLocation: sourceLocation)
        let counts = try f.store().verdictCounts()
        #expect(counts[.deadlettered] == nil && counts[.error] == nil, "\(counts)", sourceLocation: sourceLocation)
        let audit = try f.verifyAudit(f.store())
        #expect(audit.ok, "\(audit)", sourceLocation: sourceLocation)
    }

    /// Denied quotes at 1e300 and 1e308, an approved-looking buy at 1e308, a sell at 5e-324 and
    /// a risk/reward of 1e308: none touches the book, and the compliant buys after them fill.
    @Test func extremeDoublesNeverPoisonTheBook() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        let attacks = [
            Self.json("x-aapl-1e300", [("symbol", "\"AAPL\""), ("price", "1e300"), ("volume", "1"), ("action", "\"buy\""), ("intent", "\"spoof\"")]),
            Self.json("x-msft-1e308", [("symbol", "\"MSFT\""), ("price", "1e308"), ("volume", "1"), ("action", "\"sell\""), ("intent", "\"spoof\"")]),
            Self.trade("x-rr", "NVDA", price: 100, extra: [("risk_reward_ratio", "1e308")]).replacingOccurrences(of: "\"risk_reward_ratio\": 2.0, ", with: ""),
            Self.json("x-buy-1e308", [("symbol", "\"NVDA\""), ("price", "1e308"), ("volume", "1"), ("action", "\"buy\""), ("position_size_pct", "0.01"),
                                      ("leverage", "1"), ("stop_loss", "1"), ("risk_reward_ratio", "2")]),
            Self.json("x-sell-tiny", [("symbol", "\"NVDA\""), ("price", "5e-324"), ("volume", "1"), ("action", "\"sell\""), ("position_size_pct", "0.01"),
                                      ("leverage", "1"), ("stop_loss", "1"), ("risk_reward_ratio", "2")]),
        ]
        try Self.send(f, attacks)
        let denied = try Self.passes(f, ["x-aapl-1e300", "x-msft-1e308", "x-rr", "x-buy-1e308", "x-sell-tiny"])
        for (id, rule) in [("x-aapl-1e300", "max_price"), ("x-msft-1e308", "max_price"), ("x-rr", "max_risk_reward"), ("x-buy-1e308", "max_price")] {
            #expect(denied[id]?.verdict == .denied && denied[id]?.violatedRules.contains(rule) == true, "\(id): \(denied[id]?.reasons ?? [])")
        }
        // 5e-324 reaches Kyle as 0 or a subnormal: refused there (price must be > 0) or by the rule.
        let tiny = try #require(denied["x-sell-tiny"])
        #expect(tiny.verdict == .rejected || tiny.violatedRules.contains("min_price"), "\(tiny.reasons)")
        #expect(try f.store().orderCount() == 0)
        #expect(try Self.defaultBook(f).positions.isEmpty)

        // Ten compliant buys after them, on two symbols, each its own size: all fill.
        var buys: [String] = []
        for i in 0..<10 {
            let symbol = i % 2 == 0 ? "AAPL" : "MSFT"
            let price: Double = i % 2 == 0 ? 190 : 390
            let size = 0.005 + Double(i) * 0.0005
            buys.append(Self.trade("ok-\(i)", symbol, price: price, size: size))
        }
        try Self.send(f, buys)
        let filled = try Self.passes(f, (0..<10).map { "ok-\($0)" })
        #expect(filled.values.allSatisfy { $0.verdict == .approved && $0.orderID != nil }, "\(filled.values.filter { $0.verdict != .approved }.map(\.reasons))")
        let book = try Self.defaultBook(f)
        #expect(book.positions.count == 2 && abs(book.equity - 100_000) < 1e-6, "\(book)")
        try Self.expectSound(f)
    }

    /// Look-alike symbols and intents, negative leverage and dust are denied by their rules;
    /// the position limit stays free for real trades.
    @Test func lookAlikesNegativeLeverageAndDustAreDenied() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        var signals: [String] = []
        var expected: [String: String] = [:]
        for (i, symbol) in ["BLOCKED.US", "HALTED:NYSE", "NYSE:HALTED", "B.L.O.C.K.E.D", "BLOCKED/USD", "blocked", "SANCTIONED-A", "_BLOCKED_", "BLOCKED^",
                            "=HALTED", "BLOCKED.XNYS", "H-A-L-T-E-D", "ＢＬＯＣＫＥＤ"].enumerated() {
            signals.append(Self.trade("sym-\(i)", symbol, price: 50))
            expected["sym-\(i)"] = "blocked_symbols"
        }
        for (i, intent) in ["pump-and-dump", "wash-trade", "sp\u{200D}oof", "ѕрооf", "ｓｐｏｏｆ", "s p o o f", "Front-Run the client", "SPOOFING",
                            "𝐬𝐩𝐨𝐨𝐟", "layer\u{00AD}ing", "corner the-market"].enumerated() {
            signals.append(Self.trade("int-\(i)", "AAPL", price: 190, extra: [("intent", "\"\(intent)\"")]))
            expected["int-\(i)"] = "manipulative_intent"
        }
        signals.append(Self.trade("lev-neg", "AAPL", price: 190).replacingOccurrences(of: "\"leverage\": 1.0", with: "\"leverage\": -100"))
        expected["lev-neg"] = "min_leverage"
        for i in 0..<5 {
            signals.append(Self.trade("dust-\(i)", "D\(i)", price: 10, size: 1e-300))
            expected["dust-\(i)"] = "min_position_size"
        }
        try Self.send(f, signals)
        let got = try Self.passes(f, Array(expected.keys))
        for (id, rule) in expected.sorted(by: { $0.key < $1.key }) {
            let p = try #require(got[id])
            // A Cyrillic-only symbol never gets this far: Kyle refuses it by name.
            #expect(p.verdict == .denied && p.violatedRules.contains(rule), "\(id): \(p.verdict) \(p.reasons)")
        }
        #expect(try f.store().orderCount() == 0)
        // Five real buys take the five positions the dust could not.
        try Self.send(f, (0..<5).map { Self.trade("real-\($0)", "R\($0)", price: 20 + Double($0)) })
        let real = try Self.passes(f, (0..<5).map { "real-\($0)" })
        #expect(real.values.allSatisfy { $0.verdict == .approved }, "\(real.values.map(\.reasons))")
        #expect(try Self.defaultBook(f).positions.count == 5)
        // A symbol in another script is refused by Kyle, naming the letter.
        // (A rejected signal's pass is named after its entry: Kyle trusts nothing it sent.)
        try Self.send(f, [Self.trade("cyr", "АAPL", price: 190).replacingOccurrences(of: "АAPL", with: "\\u0410APL")])
        var rejected: [String: [String]] = [:]
        #expect(waitFor(timeout: 30) { rejected = (try? f.store().rejections()) ?? [:]; return !rejected.isEmpty })
        #expect(rejected.values.contains { $0.contains { $0.contains("symbol: 'А' (U+410 CYRILLIC CAPITAL LETTER A) is not an ASCII letter or digit") } }, "\(rejected)")
        try Self.expectSound(f)
    }

    /// A price a thousand times the last is refused and marks nothing; a gap the market really
    /// made trades from its third consistent quote. Four positions gapping through their stops
    /// trip the daily loss breaker (HALTED, audited); after an operator resumes, the fifth
    /// position, now over its share of the smaller equity, is REDUCING: a buy is denied, a sell fills.
    @Test func erroneousPricesGapsBreakersAndReducing() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        // Five positions at 9 % of equity each.
        let symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "META"]
        try Self.send(f, symbols.enumerated().map { Self.trade("open-\($0.offset)", $0.element, price: 100, size: 0.09) })
        let opened = try Self.passes(f, symbols.indices.map { "open-\($0)" })
        #expect(opened.values.allSatisfy { $0.verdict == .approved }, "\(opened.values.map(\.reasons))")

        // A quote a thousand times the last, approved by HRM (a hold), is refused by Kenny.
        let hold = { (id: String, symbol: String, price: Double) in
            Self.json(id, [("symbol", "\"\(symbol)\""), ("price", "\(price)"), ("volume", "1"), ("action", "\"hold\""), ("stop_loss", "\(price * 0.98)")])
        }
        try Self.send(f, [hold("fat", "AAPL", 100_000)])
        let fat = try #require(try Self.passes(f, ["fat"])["fat"])
        #expect(fat.verdict == .denied && fat.violatedRules == ["price_band"] && fat.reasons[0].contains("around the last trusted price 100.0"), "\(fat.reasons)")
        #expect(try Self.defaultBook(f).positions["AAPL"]?.mark == 100)

        // Four symbols gap down 30 %: refused twice, trusted the third time, stops hit.
        var gaps: [String] = []
        for (i, s) in symbols.dropFirst().enumerated() {
            for q in 0..<3 { gaps.append(hold("gap-\(i)-\(q)", s, 70 + Double(q) * 0.1)) }
        }
        for g in gaps { try Self.send(f, [g]) }
        let gapped = try Self.passes(f, (0..<4).flatMap { i in (0..<3).map { "gap-\(i)-\($0)" } })
        for i in 0..<4 {
            #expect(gapped["gap-\(i)-0"]?.violatedRules == ["price_band"] && gapped["gap-\(i)-1"]?.violatedRules == ["price_band"])
            #expect(gapped["gap-\(i)-2"]?.verdict == .approved, "\(gapped["gap-\(i)-2"]?.reasons ?? [])")
        }
        var book = try Self.defaultBook(f)
        #expect(book.positions.keys.sorted() == ["AAPL"] && book.equity < 90_000, "\(book)")

        // The daily loss (about 10.8 %) tripped the breaker: HALTED, audited, on /healthz.
        let states = try TradingStateStore.read(try f.redis.client(), shard: .untagged)
        let halt = try #require(states.controls[.account("default")])
        #expect(halt.mode == .halted && halt.by == "breaker:max_daily_loss", "\(halt)")
        try Self.send(f, [Self.trade("halted-sell", "AAPL", price: 100, action: "sell", size: 0.01)])
        #expect(try Self.passes(f, ["halted-sell"])["halted-sell"]?.violatedRules.first == "trading_state")

        // An operator resumes; AAPL (9,000 of about 89,000) is over 10 %: REDUCING.
        let resume = try runCommand(Repo.arkBinary, ["trading", "resume", "--account", "default", "--reason", "losses reviewed"], environment: f.environment)
        #expect(resume.code == 0 && resume.output.contains("HALTED → ACTIVE"), "\(resume.output)")
        try Self.send(f, [Self.trade("add-aapl", "AAPL", price: 100, size: 0.005)])
        let add = try #require(try Self.passes(f, ["add-aapl"])["add-aapl"])
        #expect(add.verdict == .denied && add.reasons.contains { $0.contains("AAPL is REDUCING") }, "\(add.reasons)")
        try Self.send(f, [Self.trade("cut-aapl", "AAPL", price: 100, action: "sell", size: 0.02)])
        #expect(try Self.passes(f, ["cut-aapl"])["cut-aapl"]?.verdict == .approved)
        book = try Self.defaultBook(f)
        #expect(book.boundsProblem() == nil && abs(book.snapshot.exposure["AAPL"] ?? 0) < 0.10 * book.equity, "\(book)")

        // Every state change is a leaf: the breaker's and the operator's, verified.
        let changes = try f.store().tradingStateChanges(limit: 10)
        #expect(changes.map(\.by).sorted() == ["breaker:max_daily_loss", "operator:" + (ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown")].sorted(), "\(changes)")
        try Self.expectSound(f)
    }

    /// A book no release could have written halts its account's fills by a breaker (nothing
    /// dead-lettered, the book left as found, /healthz unhealthy) until an operator repairs it
    /// and resumes.
    @Test func anUnreadableBookHaltsFillsWithAnAlarm() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        let c = try f.redis.client()
        _ = try c.command(["HSET", .text(Streams.portfolio), "book", #"{"dailyPnl":0,"day":"2026-12-01","equity":"lots","positions":{}}"#])
        try Self.send(f, (0..<3).map { Self.trade("u-\($0)", "AAPL", price: 190, size: 0.01 + Double($0) * 0.001) })
        let got = try Self.passes(f, (0..<3).map { "u-\($0)" })
        // HRM fails closed on the book it cannot read; none reaches a fill.
        #expect(got.values.allSatisfy { $0.verdict == .denied }, "\(got.values.map(\.reasons))")
        #expect(try f.store().verdictCounts()[.deadlettered] == nil)
        #expect(try c.command(["HGET", .text(Streams.portfolio), "book"]).string?.contains("lots") == true, "the book is left as found")
        let health = try runCommand(Repo.arkBinary, ["health"], environment: f.environment)
        #expect(health.code == 1 && health.output.contains("the book of account default is unreadable"), "\(health.output)")

        // Kenny, reached by an approval HRM made before the book broke, refuses and halts.
        var e = Event(traceID: "late", id: "late", symbol: "AAPL", price: 190, volume: 1, ts: 0, source: "test", t0Ns: wallClockNanoseconds(),
                      action: "buy", positionSizePct: 0.01, leverage: 1, stopLoss: 186, riskRewardRatio: 2)
        e.hops = [Hop(stage: .kyle, instance: "k", inNs: e.t0Ns, outNs: e.t0Ns + 1), Hop(stage: .joey, instance: "j", inNs: e.t0Ns + 2, outNs: e.t0Ns + 3),
                  Hop(stage: .hrm, instance: "h", inNs: e.t0Ns + 4, outNs: e.t0Ns + 5)]
        e.decision = Decision(approved: true, violations: [], warnings: [], rulesChecked: 18, complianceScore: 1, policyHash: Graveyard.pinnedSHA256, evalNs: 1)
        _ = try c.command(["XADD", .text(Stage.kenny.inputStream), "*", "event", .bytes(EventCodec.encode(e))])
        let late = try #require(try Self.passes(f, ["late"])["late"])
        #expect(late.verdict == .denied && late.violatedRules == ["book_unreadable"], "\(late.reasons)")
        let halt = try #require(try TradingStateStore.read(c, shard: .untagged).controls[.account("default")])
        #expect(halt.mode == .halted && halt.by == "breaker:book_unreadable")

        // The operator removes the bad book (RUNBOOK) and resumes: trading goes on.
        _ = try c.command(["HDEL", .text(Streams.portfolio), "book"])
        #expect(try runCommand(Repo.arkBinary, ["trading", "resume", "--account", "default", "--reason", "book restored"], environment: f.environment).code == 0)
        try Self.send(f, [Self.trade("after", "AAPL", price: 190)])
        #expect(try Self.passes(f, ["after"])["after"]?.verdict == .approved)
        try Self.expectSound(f)
    }

    /// The throttles as shipped: an order like one filled a moment ago is duplicative, and a
    /// symbol takes 20 fills a second at most; each refusal names its throttle.
    @Test func duplicativeOrdersAndThrottlesAreRefusedByName() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        f.extraEnvironment = ["ARK_DUPLICATE_WINDOW_MS": "1000", "ARK_MAX_ORDERS_PER_SECOND": "100", "ARK_MAX_SYMBOL_ORDERS_PER_SECOND": "20"]
        try f.startAll()
        try Self.send(f, [Self.trade("first", "AAPL", price: 190), Self.trade("again", "AAPL", price: 190)])
        let pair = try Self.passes(f, ["first", "again"])
        #expect(pair["first"]?.verdict == .approved)
        #expect(pair["again"]?.violatedRules == ["duplicate_order"] && pair["again"]?.reasons.first?.contains("first filled the same order") == true, "\(pair["again"]?.reasons ?? [])")
        // 25 buys of one symbol at once, each its own size: 20 fill, 5 are throttled.
        try Self.send(f, (0..<25).map { Self.trade("burst-\($0)", "MSFT", price: 400, size: 0.001 + Double($0) * 0.0001) })
        let burst = try Self.passes(f, (0..<25).map { "burst-\($0)" })
        let throttled = burst.values.filter { $0.violatedRules == ["max_symbol_orders_per_second"] }
        #expect(burst.values.filter { $0.verdict == .approved }.count == 20 && throttled.count == 5, "\(burst.values.map(\.reasons))")
        #expect(throttled.first?.reasons.first?.contains("20 orders filled in MSFT in the last second, the limit is 20 (ARK_MAX_SYMBOL_ORDERS_PER_SECOND)") == true)
        try Self.expectSound(f)
    }

    /// With an allow-list of instruments only they trade, each with its own minimum and band;
    /// `ark config validate` names what is wrong with a bad list.
    @Test func anAllowListOfInstrumentsIsHeldByHRMAndKenny() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        let file = f.dir.path + "/instruments.json"
        try #"{"instruments": [{"symbol": "AAPL.US", "class": "equity", "band": 0.05, "min_notional": 500, "reference": 190}]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        f.extraEnvironment = ["ARK_INSTRUMENTS_FILE": file]
        try f.startAll()
        try Self.send(f, [Self.trade("listed", "aapl", price: 191), Self.trade("unlisted", "MSFT", price: 400),
                          Self.trade("small", "AAPL", price: 191, size: 0.004), Self.trade("gap", "AAPL", price: 205, size: 0.011)])
        let got = try Self.passes(f, ["listed", "unlisted", "small", "gap"])
        #expect(got["listed"]?.verdict == .approved, "\(got["listed"]?.reasons ?? [])")
        #expect(got["unlisted"]?.violatedRules.first == "instrument_not_listed", "\(got["unlisted"]?.reasons ?? [])")
        #expect(got["small"]?.violatedRules.first == "min_position_notional", "\(got["small"]?.reasons ?? [])")
        #expect(got["gap"]?.violatedRules == ["price_band"] && got["gap"]?.reasons.first?.contains("±5.0% band") == true, "\(got["gap"]?.reasons ?? [])")
        try #"{"instruments": [{"symbol": "AAPL", "band": 2}]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let check = try runCommand(Repo.arkBinary, ["config", "validate"], environment: f.environment)
        #expect(check.output.contains("ARK_INSTRUMENTS_FILE") && check.output.contains("band 2.0 must be between 0 and 1"), "\(check.output)")
        try Self.expectSound(f)
    }

    /// The kill switch with two HRM and two Kenny instances under steady traffic: no order
    /// fills after `ark trading halt` returns, every later approval is refused naming the
    /// state, and both changes verify in the audit.
    @Test func theKillSwitchStopsEveryOpeningWithinOneBatch() async throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAllWithTwoHRMsAndTwoKennys()
        // Buys and sells in turn on two symbols, tiny sizes: the limits never stop them.
        func flow(_ prefix: String, _ n: Int) async throws {
            for i in 0..<n {
                try Self.send(f, [Self.trade("\(prefix)-\(i)", i % 4 < 2 ? "AAPL" : "MSFT", price: 100, action: i % 2 == 0 ? "buy" : "sell", size: 0.001)])
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        try await flow("before", 200)
        let halt = try runCommand(Repo.arkBinary, ["trading", "halt", "--reason", "kill switch drill"], environment: f.environment)
        let haltedAt = wallClockNanoseconds()
        #expect(halt.code == 0, "\(halt.output)")
        try await flow("during", 200)
        let during = try Self.passes(f, (0..<200).map { "during-\($0)" })
        #expect(during.values.allSatisfy { $0.verdict == .denied && $0.violatedRules.first == "trading_state" }, "\(during.values.filter { $0.verdict != .denied }.map(\.traceID))")
        // No order of any trace was filled by a Kenny batch that ended after the halt.
        let late = try runCommand("/usr/bin/sqlite3", [f.statePath, "SELECT COUNT(*) FROM orders WHERE ts_ns > \(haltedAt)"])
        #expect(late.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(late.output)")
        let before = try Self.passes(f, (0..<200).map { "before-\($0)" })
        #expect(before.values.filter { $0.verdict == .approved }.count > 100, "traffic before the halt fills")

        #expect(try runCommand(Repo.arkBinary, ["trading", "resume", "--reason", "drill over"], environment: f.environment).code == 0)
        try await flow("after", 20)
        let after = try Self.passes(f, (0..<20).map { "after-\($0)" })
        #expect(after.values.allSatisfy { $0.verdict == .approved }, "\(after.values.map(\.reasons))")
        let changes = try f.store().tradingStateChanges(limit: 10)
        #expect(changes.map(\.mode) == ["ACTIVE", "HALTED"] && changes.map(\.scope) == ["global", "global"])
        let status = try runCommand(Repo.arkBinary, ["trading", "status"], environment: f.environment)
        #expect(status.output.contains("ACTIVE: every account may trade") && status.output.contains("global HALTED → ACTIVE"), "\(status.output)")
        let verify = try runCommand(Repo.arkBinary, ["verify-audit"], environment: f.environment)
        #expect(verify.code == 0, "\(verify.output)")
        try Self.expectSound(f)
    }
} }
