import ARKBus
import ARKCore
import ARKRisk
import ARKState
import ARKStoreWriter
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
        let f = try Pipeline()
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
        try Self.expectReconciled(f)
    }

    /// `ark reconcile` exits 0: every book equals the audit's fold.
    static func expectReconciled(_ f: Pipeline, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try runCommand(Repo.arkBinary, ["reconcile"], environment: f.environment)
        #expect(r.code == 0 && r.output.contains("0 differences"), "\(r.output)", sourceLocation: sourceLocation)
    }

    /// Compliant trades on two accounts and three symbols, alternating sides.
    static func trades(_ prefix: String, _ n: Int, from: Int = 0) -> [String] {
        (from..<(from + n)).map { i in
            let symbol = ["AAPL", "MSFT", "NVDA"][i % 3]
            let price = [190.0, 410.0, 120.0][i % 3] * (1 + Double(i % 7) / 1000)
            let account = i % 2 == 0 ? [] : [("account", "\"acct-2\"")]
            return R.trade("\(prefix)-\(i)", symbol, price: price, action: i % 5 == 4 ? "sell" : "buy", size: 0.01 + Double(i) / 10_000, extra: account)
        }
    }

    /// The stock Debian redis-server (no append-only file) killed with -9 mid-stream and
    /// started again empty: the books come back from the audit before anything fills (Kenny
    /// restores them, or Aletheia within a second), equal to the books before the kill, and
    /// the trading after it reconciles with 0 differences.
    @Test func aRedisWithoutPersistenceKilledMidStreamGetsItsBooksBackFromTheAudit() throws {
        let f = try Pipeline(.single(persistent: false))
        defer { f.shutdown() }
        try f.startAll()
        let first = Self.trades("a", 60)
        try R.send(f, Array(first.prefix(30)))
        _ = try R.passes(f, (0..<30).map { "a-\($0)" })
        try R.send(f, Array(first.suffix(30)))
        usleep(30_000)
        f.redis.kill9()
        // What was audited before the kill is what the books must come back as.
        let audited = try f.store().passes(traceIDs: (0..<60).map { "a-\($0)" }).count
        try f.redis.start()
        // The pipeline's groups went with Redis: the agents make them again.
        #expect(waitFor(timeout: 30, interval: 0.1) { (try? f.redis.client().command(["EXISTS", .text(Shard.untagged.ledger)]).integer) == 1 }, "\(f.logs())")
        try Self.expectReconciled(f)
        let books = PortfolioHash.books(try f.redis.client().hashEntries(Streams.portfolio))
        #expect(try books["default"]?.get().seq ?? 0 > 5 && books["acct-2"]?.get().seq ?? 0 > 5, "\(books.keys.sorted()) after \(audited) audited passes")
        // Trading goes on from the restored books.
        try R.send(f, Self.trades("b", 20))
        let after = try R.passes(f, (0..<20).map { "b-\($0)" })
        // The restored books hold their positions: some of these meet the exposure limit,
        // which an empty book would not; none is refused for want of a proven book.
        #expect(after.values.filter { $0.orderID != nil }.count >= 10, "\(after.values.map(\.reasons))")
        #expect(after.values.allSatisfy { $0.orderID != nil || $0.violatedRules == ["max_symbol_exposure"] }, "\(after.values.map(\.reasons))")
        try Self.expectReconciled(f)
    }

    /// A book changed by hand (its sequence number as it was): `ark reconcile` names each
    /// difference and exits 1, `/healthz` says so; `ark book rebuild` makes it the audit's again.
    @Test func reconcileNamesEachDifferenceAndRebuildRepairsThem() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        try R.send(f, Self.trades("r", 30))
        _ = try R.passes(f, (0..<30).map { "r-\($0)" })
        try Self.expectReconciled(f)
        let c = try f.redis.client()
        var books = PortfolioHash.books(try c.hashEntries(Streams.portfolio))
        var changed = try #require(try books["default"]?.get())
        let symbol = try #require(changed.positions.keys.sorted().first)
        changed.positions[symbol]!.quantity *= 2
        var richer = try #require(try books["acct-2"]?.get())
        richer.balance += 1_000
        _ = try c.command(["HSET", .text(Streams.portfolio), "book", .bytes(changed.encoded()), "book:acct-2", .bytes(richer.encoded())])
        var r = try runCommand(Repo.arkBinary, ["reconcile", "--wait", "1"], environment: f.environment)
        #expect(r.code == 1 && r.output.contains("\(symbol) quantity: the book says") && r.output.contains("balance (realised equity): the book says"), "\(r.output)")
        r = try runCommand(Repo.arkBinary, ["reconcile", "--account", "acct-2", "--json", "--wait", "1"], environment: f.environment)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any])
        #expect((doc["accounts"] as? [[String: Any]])?.map { $0["account"] as? String } == ["acct-2"] && (doc["differences"] as? Int ?? 0) >= 1, "\(r.output)")
        // The metrics server's periodic reconciliation says the same (ark health computes it).
        var health = try runCommand(Repo.arkBinary, ["health"], environment: f.environment)
        #expect(health.code == 1 && health.output.contains("2 book(s) differ from the audit") && health.output.contains("ark book rebuild"), "\(health.output)")
        r = try runCommand(Repo.arkBinary, ["book", "rebuild"], environment: f.environment)
        #expect(r.code == 0 && r.output.contains("rebuilt 2 book(s)"), "\(r.output)")
        try Self.expectReconciled(f)
        health = try runCommand(Repo.arkBinary, ["health"], environment: f.environment)
        #expect(health.output.contains("✓ ledger") && health.output.contains("every book equals the audit (2 accounts"), "\(health.output)")
        books = PortfolioHash.books(try c.hashEntries(Streams.portfolio))
        #expect(try books["default"]?.get().positions[symbol]?.quantity == changed.positions[symbol]!.quantity / 2)
        // Trading goes on from the rebuilt books, and still reconciles.
        try R.send(f, Self.trades("s", 10))
        _ = try R.passes(f, (0..<10).map { "s-\($0)" })
        try Self.expectReconciled(f)
    }

    /// A failover that lost a window of book writes, as Kenny finds it: a book a few
    /// executions behind the audit, and one gone. The next trade is never filled against it:
    /// the book is restored from the audit first (by Kenny, or Aletheia within seconds), and
    /// the books reconcile without an operator.
    @Test func aBookBehindTheAuditIsRestoredBeforeItFillsAgain() throws {
        let f = try Pipeline()
        defer { f.shutdown() }
        try f.startAll()
        try R.send(f, Self.trades("w", 30))
        _ = try R.passes(f, (0..<30).map { "w-\($0)" })
        let c = try f.redis.client()
        let books = PortfolioHash.books(try c.hashEntries(Streams.portfolio))
        var behind = try #require(try books["default"]?.get())
        let audited = behind.seq
        // Two executions lost: an earlier state of the book (replayed from the audit).
        let store = try f.store()
        var fold = LedgerFold(startingEquity: 100_000)
        var events: [Event] = []
        try AuditReader(path: f.statePath).sequencedEvents { _, e in events.append(e) }
        for e in events where e.account == "default" && (e.execution?.seq ?? 0) <= audited - 2 { fold.add(e) }
        behind = try #require(fold.books["default"])
        #expect(try behind.seq == audited - 2 && store.orderCount() > 0)
        _ = try c.command(["HSET", .text(Streams.portfolio), "book", .bytes(behind.encoded())])
        _ = try c.command(["HDEL", .text(Streams.portfolio), "book:acct-2"])
        try R.send(f, Self.trades("x", 6, from: 30))
        let after = try R.passes(f, (30..<36).map { "x-\($0)" })
        // Kenny has the store at hand: it restores the books itself, refusing nothing.
        #expect(after.values.allSatisfy { !$0.violatedRules.contains("ledger_unproven") } && after.values.contains { $0.orderID != nil }, "\(after.values.map(\.reasons))")
        // No execution was decided twice with one sequence number: the fold has no problem.
        #expect(waitFor(timeout: 15, interval: 0.5) { (try? runCommand(Repo.arkBinary, ["reconcile", "--wait", "2"], environment: f.environment).code) == 0 },
                "\((try? runCommand(Repo.arkBinary, ["reconcile"], environment: f.environment).output) ?? "")")
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
