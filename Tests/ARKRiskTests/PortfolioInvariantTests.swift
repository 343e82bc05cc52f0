import ARKRisk
import ARKCore
import ARKTestSupport
import Graveyard
import Testing

/// The portfolio invariant under every interleaving a model of the pipeline can produce:
/// several HRM instances judge batches against the book as they last read it (stale by any
/// number of commits), several Kenny instances execute batches under WATCH (a commit whose
/// book changed meanwhile is redone on the new book), batches are redelivered, and bursts of
/// buys and sells on few or many symbols move prices across stops. After every fill the
/// filled book must hold every limit. Each run replays from its seed.
@Suite struct PortfolioInvariantTests {

    static let rules: RuleSet = {
        guard case .intact(let r) = Graveyard.check(directory: Repo.graveyard) else { fatalError("the Graveyard in the repository does not load") }
        return r
    }()

    /// One model run; returns the first breach of the invariant, or nil.
    static func run(seed: UInt64, symbols: Int, checkAtExecution: Bool, steps: Int = 400) -> String? {
        var rng = SplitMix64(seed: seed)
        let names = (0..<symbols).map { "S\($0)" }
        var prices = Dictionary(uniqueKeysWithValues: names.map { ($0, 100.0) })
        var book = PaperBook(equity: 100_000, day: "2026-12-02")
        var version = 0
        var hrmInput: [Event] = []
        var kennyInput: [Event] = []
        var hrmBooks = [(PortfolioSnapshot, Int)](repeating: (book.snapshot, 0), count: 2)
        struct Pending { var batch: [Event]; var version: Int }
        var kennyInFlight: [Pending?] = [nil, nil]
        var orders: Set<String> = []
        var next = 0
        let maxOpen = 5, cap = 0.10

        func limits(_ e: Event) -> (PortfolioSnapshot) -> [Violation] {
            checkAtExecution ? { rules.portfolioViolations(Proposal(e), book: $0) } : { _ in [] }
        }
        for _ in 0..<steps {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...2:  // a burst: mostly buys, some sells, prices moving (sometimes across stops)
                for _ in 0..<Int.random(in: 1...40, using: &rng) {
                    let s = names.randomElement(using: &rng)!
                    prices[s]! *= 1 + Double.random(in: -0.03...0.03, using: &rng)
                    let buy = Double.random(in: 0..<1, using: &rng) < 0.75
                    let p = prices[s]!
                    next += 1
                    hrmInput.append(Event(traceID: "t\(next)", id: "t\(next)", symbol: s, price: p, volume: 1, ts: 0, source: "model", t0Ns: 1,
                                          action: buy ? "buy" : "sell", positionSizePct: Double.random(in: 0.005...0.09, using: &rng), leverage: 1,
                                          stopLoss: buy ? p * 0.98 : p * 1.02, riskRewardRatio: 2))
                }
            case 3:  // an HRM instance reads the book (its snapshot may then go stale)
                let h = Int.random(in: 0..<2, using: &rng)
                hrmBooks[h] = (book.snapshot, version)
            case 4...5:  // an HRM instance judges a batch against the book it last read
                let h = Int.random(in: 0..<2, using: &rng)
                let n = min(hrmInput.count, Int.random(in: 1...64, using: &rng))
                guard n > 0 else { continue }
                var approvals = BatchApprovals()
                for var e in hrmInput.prefix(n) {
                    e.decision = rules.evaluate(Proposal(e), book: hrmBooks[h].0, batch: &approvals)
                    kennyInput.append(e)
                }
                hrmInput.removeFirst(n)
            case 6:  // a Kenny instance reads a batch and the book under WATCH
                let k = Int.random(in: 0..<2, using: &rng)
                guard kennyInFlight[k] == nil, !kennyInput.isEmpty else { continue }
                let n = min(kennyInput.count, Int.random(in: 1...64, using: &rng))
                kennyInFlight[k] = Pending(batch: Array(kennyInput.prefix(n)), version: version)
                kennyInput.removeFirst(n)
            default:  // a Kenny instance commits; EXEC fails if the book changed, and it redoes the batch
                let k = Int.random(in: 0..<2, using: &rng)
                guard let pending = kennyInFlight[k] else { continue }
                kennyInFlight[k] = nil
                guard pending.version == version else {
                    kennyInFlight[k] = Pending(batch: pending.batch, version: version)
                    continue
                }
                var working = book
                var filled: [String] = []
                for e in pending.batch where !orders.contains(e.traceID) && !filled.contains(e.traceID) {
                    // Exposure at the trusted price before the fill: marks move it, fills may not
                    // take it past the cap (a fill that reduces an exposure the market put over
                    // the cap is what REDUCING allows).
                    var marked = working
                    _ = try? marked.mark(e.symbol, price: e.price)
                    let before = abs(marked.snapshot.exposure[e.symbol] ?? 0)
                    let x = working.execute(e, orderID: "o-" + e.traceID, limits: limits(e))
                    guard x.status == .filled else { continue }
                    filled.append(e.traceID)
                    let snap = working.snapshot
                    if snap.openPositions > maxOpen { return "seed \(seed): \(snap.openPositions) positions open after \(e.traceID), the limit is \(maxOpen)" }
                    let exposure = abs(snap.exposure[e.symbol] ?? 0)
                    if exposure > before * (1 + 1e-9) && exposure > cap * snap.equity * (1 + 1e-9) {
                        return "seed \(seed): \(e.symbol) at \(exposure / snap.equity * 100)% of equity after \(e.traceID), the limit is 10%"
                    }
                    if !rules.breaches(of: snap).isEmpty { return "seed \(seed): \(rules.breaches(of: snap)) after \(e.traceID)" }
                }
                book = working
                version += 1
                orders.formUnion(filled)
                // Sometimes the acknowledgement is lost and the batch comes again.
                if Int.random(in: 0..<8, using: &rng) == 0 { kennyInput.insert(contentsOf: pending.batch, at: 0) }
            }
        }
        return nil
    }

    @Test(arguments: [1, 3, 40, 300])
    func everyFillHoldsEveryLimitWithStaleHRMsConcurrentKennysAndRedeliveries(symbols: Int) {
        for seed in UInt64(1)...60 {
            if let breach = Self.run(seed: seed &* 7919 &+ UInt64(symbols), symbols: symbols, checkAtExecution: true) {
                Issue.record("\(breach) (replay: PortfolioInvariantTests.run(seed:symbols: \(symbols), checkAtExecution: true))")
                return
            }
        }
    }

    @Test func withoutTheCheckAtExecutionTheModelFindsABreach() {
        // The model is sharp enough: HRM's own check, with stale books and concurrent Kennys,
        // lets a burst past a limit (as in the issue: 14 % of equity on one symbol).
        let breaches = (UInt64(1)...60).compactMap { Self.run(seed: $0 &* 7919 &+ 1, symbols: 1, checkAtExecution: false) }
        #expect(!breaches.isEmpty)
    }

    @Test func aLimitedFillSaysWhichRuleAndTheBooksFigures() throws {
        var book = PaperBook(equity: 100_000, day: "d")
        let rules = Self.rules
        for i in 0..<3 {
            var e = event("AAPL", price: 100, action: "buy", size: 0.04)
            e.traceID = "t\(i)"
            let x = book.execute(e, orderID: "o\(i)") { rules.portfolioViolations(Proposal(e), book: $0) }
            if i < 2 {
                #expect(x.status == .filled)
            } else {
                #expect(x.status == .limited && x.violations.map(\.rule) == ["max_symbol_exposure"], "\(x)")
                #expect(x.violations[0].message.contains("AAPL exposure would be 12000.0 (12.0% of equity 100000.0), the limit is 10.0%"), "\(x.violations[0].message)")
                // It travels to Aletheia with the execution.
                var out = e
                out.execution = x
                #expect(try EventCodec.decode(EventCodec.encode(out)).execution == x)
            }
        }
        #expect(abs(book.snapshot.exposure["AAPL"]! - 8_000) < 1e-6)
    }
}
