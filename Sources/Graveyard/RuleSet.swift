// The Graveyard's rules and how HRM judges a proposal against them.

import ARKCore

/// What HRM judges: the proposal fields of one event.
public struct Proposal: Sendable, Equatable {
    public var symbol: String
    public var price: Double
    public var action: String?
    public var positionSizePct: Double?
    public var leverage: Double?
    public var stopLoss: Double?
    public var riskRewardRatio: Double?
    public var intent: String?

    public init(symbol: String, price: Double, action: String?, positionSizePct: Double?, leverage: Double?, stopLoss: Double?, riskRewardRatio: Double?, intent: String?) {
        self.symbol = symbol
        self.price = price
        self.action = action
        self.positionSizePct = positionSizePct
        self.leverage = leverage
        self.stopLoss = stopLoss
        self.riskRewardRatio = riskRewardRatio
        self.intent = intent
    }

    public init(_ e: Event) {
        self.init(symbol: e.symbol, price: e.price, action: e.action, positionSizePct: e.positionSizePct, leverage: e.leverage, stopLoss: e.stopLoss, riskRewardRatio: e.riskRewardRatio, intent: e.intent)
    }
}

/// Kenny's book as HRM sees it for the portfolio rules.
public struct PortfolioSnapshot: Sendable, Equatable {
    public var equity: Double
    public var dailyPnl: Double
    /// Signed value at the last trusted price per symbol with an open position (long > 0,
    /// short < 0).
    public var exposure: [String: Double]
    /// Each position's share of equity right after the last fill that opened or added to it.
    public var fillShares: [String: Double]

    public var openPositions: Int { exposure.count }

    public init(equity: Double, dailyPnl: Double = 0, exposure: [String: Double] = [:], fillShares: [String: Double] = [:]) {
        self.equity = equity
        self.dailyPnl = dailyPnl
        self.exposure = exposure
        self.fillShares = fillShares
    }
}

/// Approvals made earlier in the same batch, so a burst cannot slip past a portfolio limit
/// before Kenny's next book update.
public struct BatchApprovals: Sendable {
    public var newPositions: Set<String> = []
    public var addedNotional: [String: Double] = [:]
    public init() {}
}

/// The loaded rules, compiled for evaluation. Pure: no I/O, no clocks.
public struct RuleSet: Sendable, Equatable {
    public let hash: String
    public let specs: [RuleSpec]
    let rules: [CompiledRule]

    enum Check: Equatable, Sendable {
        case max(NumericField, Double)
        case min(NumericField, Double)
        case stopLoss
        case actionOneOf([String])
        case symbolNoneOf([BlockedName])
        case intentNoneOf([Pattern])
        case targetNoneOf([Pattern])
        case maxDailyLoss(Double)
        case maxOpenPositions(Int)
        case maxSymbolExposure(Double)
        /// The notional of a trade that opens or adds, at least this much (dust cannot fill
        /// the position limit).
        case minNotional(Double)
        /// Kenny's check of a fill's price against the instrument's last trusted price
        /// (`PriceBand`); HRM has no reference and leaves it to Kenny.
        case priceBand(PriceBand)

        var isPortfolio: Bool {
            switch self {
            case .maxDailyLoss, .maxOpenPositions, .maxSymbolExposure: true
            default: false
            }
        }

        /// Judged only for a trade that opens or adds to a position: one that reduces a
        /// position only lowers risk.
        var appliesOnlyToAdds: Bool {
            if case .minNotional = self { return true }
            return isPortfolio
        }
    }

    struct CompiledRule: Equatable, Sendable {
        let id: String
        let severity: Severity
        let warnOnly: Bool
        /// Judged for buys and sells only (a hold trades nothing).
        let tradesOnly: Bool
        let field: String
        let message: String
        let check: Check
    }

    public init(json: [UInt8], hash: String) throws {
        let file: RuleFile
        do {
            file = try RuleFile(json: json)
        } catch let e as RuleSetError {
            throw RuleSetError(description: "rule file is not valid: \(e.description)")
        }
        var compiled: [CompiledRule] = []
        var ids = Set<String>()
        for spec in file.rules {
            guard ids.insert(spec.id).inserted else { throw RuleSetError(description: "rule \(spec.id) appears twice") }
            guard let severity = Severity(rawValue: spec.severity) else {
                throw RuleSetError(description: "rule \(spec.id): unknown severity \(spec.severity)")
            }
            guard spec.effect == "deny" || spec.effect == "warn" else {
                throw RuleSetError(description: "rule \(spec.id): effect must be deny or warn")
            }
            guard spec.appliesTo == nil || spec.appliesTo == "trades" else {
                throw RuleSetError(description: "rule \(spec.id): applies_to must be \"trades\" or absent")
            }
            compiled.append(CompiledRule(id: spec.id, severity: severity, warnOnly: spec.effect == "warn", tradesOnly: spec.appliesTo == "trades",
                                         field: spec.field, message: spec.message, check: try Self.compile(spec)))
        }
        self.hash = hash
        self.specs = file.rules
        self.rules = compiled
    }

    /// A proposal's number a rule bounds. A plain switch: reading through a key path went
    /// through the runtime's generic projection on every rule of every proposal.
    enum NumericField: Equatable, Sendable {
        case price, positionSizePct, leverage, stopLoss, riskRewardRatio

        init?(_ name: String) {
            switch name {
            case "price": self = .price
            case "position_size_pct": self = .positionSizePct
            case "leverage": self = .leverage
            case "stop_loss": self = .stopLoss
            case "risk_reward_ratio": self = .riskRewardRatio
            default: return nil
            }
        }

        func value(in p: Proposal) -> Double? {
            switch self {
            case .price: p.price
            case .positionSizePct: p.positionSizePct
            case .leverage: p.leverage
            case .stopLoss: p.stopLoss
            case .riskRewardRatio: p.riskRewardRatio
            }
        }
    }

    static func compile(_ spec: RuleSpec) throws -> Check {
        func limit() throws -> Double {
            guard let l = spec.limit, l.isFinite else { throw RuleSetError(description: "rule \(spec.id): needs a finite limit") }
            return l
        }
        func values() throws -> [String] {
            guard let v = spec.values, !v.isEmpty else { throw RuleSetError(description: "rule \(spec.id): needs values") }
            return v.map { $0.lowercased() }
        }
        switch spec.check {
        case "max", "min":
            guard let path = NumericField(spec.field) else { throw RuleSetError(description: "rule \(spec.id): unknown field \(spec.field)") }
            return spec.check == "max" ? .max(path, try limit()) : .min(path, try limit())
        case "stop_loss": return .stopLoss
        case "one_of": return .actionOneOf(try values())
        case "none_of":
            return .symbolNoneOf(try values().map { name in
                do throws(InstrumentSymbol.Problem) {
                    return BlockedName(try InstrumentSymbol(name).text)
                } catch {
                    throw RuleSetError(description: "rule \(spec.id): '\(name)' is not an instrument symbol: \(error.description)")
                }
            })
        case "intent_none_of": return .intentNoneOf(try values().map(Pattern.init))
        case "target_none_of": return .targetNoneOf(try values().map(Pattern.init))
        case "max_daily_loss": return .maxDailyLoss(try limit())
        case "max_open_positions":
            guard let n = Int(exactly: try limit()), n >= 0 else { throw RuleSetError(description: "rule \(spec.id): max_open_positions needs a whole number >= 0") }
            return .maxOpenPositions(n)
        case "max_symbol_exposure": return .maxSymbolExposure(try limit())
        case "min_notional":
            let l = try limit()
            guard l >= 0 else { throw RuleSetError(description: "rule \(spec.id): min_notional needs a limit >= 0") }
            return .minNotional(l)
        case "price_band":
            let l = try limit()
            guard l > 0 && l < 1 else { throw RuleSetError(description: "rule \(spec.id): price_band needs a limit between 0 and 1 (a fraction of the reference)") }
            guard let n = spec.confirmations, n >= 2 else { throw RuleSetError(description: "rule \(spec.id): price_band needs confirmations >= 2") }
            return .priceBand(PriceBand(fraction: l, confirmations: n))
        default: throw RuleSetError(description: "rule \(spec.id): unknown check \(spec.check)")
        }
    }

    /// Judges one proposal against every rule. Portfolio rules apply to trades that open or
    /// add to a position; a trade that reduces a position only lowers risk. An approval that
    /// opens or adds is recorded in `batch`.
    public func evaluate(_ p: Proposal, book: PortfolioSnapshot, batch: inout BatchApprovals) -> Decision {
        let start = monotonicNanoseconds()
        var violations: [Violation] = []
        var warnings: [Violation] = []
        var checked = 0

        let action = p.action ?? ""
        let held = book.exposure[p.symbol] ?? 0
        let adds = (action == "buy" && held >= 0) || (action == "sell" && held <= 0)
        let notional = (p.positionSizePct ?? 0) * book.equity
        let opensNew = adds && held == 0 && !batch.newPositions.contains(p.symbol)

        let trades = action == "buy" || action == "sell"
        for rule in rules {
            if rule.check.appliesOnlyToAdds && !adds { continue }
            if rule.tradesOnly && !trades { continue }
            if case .priceBand = rule.check { continue }
            checked += 1
            guard let failure = Self.failure(of: rule, p, book: book, batch: batch, held: held, notional: notional, opensNew: opensNew) else {
                continue
            }
            if rule.warnOnly { warnings.append(failure) } else { violations.append(failure) }
        }
        let approved = violations.isEmpty
        if approved && adds {
            if opensNew { batch.newPositions.insert(p.symbol) }
            batch.addedNotional[p.symbol, default: 0] += notional
        }
        let score = checked == 0 ? 0 : max(0, (Double(checked) - Double(violations.count) - 0.5 * Double(warnings.count)) / Double(checked))
        return Decision(approved: approved, violations: violations, warnings: warnings, rulesChecked: checked,
                        complianceScore: score, policyHash: hash, evalNs: monotonicNanoseconds() - start)
    }

    /// The portfolio rules a fill of `p` would break against `book` as it is now: Kenny's
    /// check at execution, inside the transaction that commits the fill, so the limits hold
    /// on the filled book whatever HRM saw (a stale book, other HRM instances, approvals in
    /// flight, redeliveries). A trade that only reduces a position breaks none.
    public func portfolioViolations(_ p: Proposal, book: PortfolioSnapshot) -> [Violation] {
        let action = p.action ?? ""
        let held = book.exposure[p.symbol] ?? 0
        let adds = (action == "buy" && held >= 0) || (action == "sell" && held <= 0)
        guard adds else { return [] }
        let notional = (p.positionSizePct ?? 0) * book.equity
        let empty = BatchApprovals()
        return rules.filter { $0.check.appliesOnlyToAdds && !$0.warnOnly }.compactMap {
            Self.failure(of: $0, p, book: book, batch: empty, held: held, notional: notional, opensNew: held == 0)
        }
    }

    /// The daily loss limit (`max_daily_loss`) as a fraction of equity, nil when there is none.
    public var dailyLossLimit: Double? {
        for r in rules {
            if case .maxDailyLoss(let l) = r.check, !r.warnOnly { return l }
        }
        return nil
    }

    /// The portfolio limits `book` breaks now (the invariant every test and the synthetic
    /// loop check): more open positions than allowed, or a position that a fill took over its
    /// exposure cap (its share of equity right after the fill that last opened or added to it).
    /// A position that later marks or losses elsewhere put over the cap is no breach: the
    /// market moved, and the symbol is REDUCING (only orders that reduce it are taken). Daily
    /// loss is a gate on new risk too, checked on fills, not here.
    public func breaches(of book: PortfolioSnapshot) -> [String] {
        var out: [String] = []
        for rule in rules where rule.check.isPortfolio && !rule.warnOnly {
            switch rule.check {
            case .maxOpenPositions(let limit) where book.openPositions > limit:
                out.append("\(rule.id): \(book.openPositions) positions open, the limit is \(limit)")
            case .maxSymbolExposure(let limit):
                for (symbol, share) in book.fillShares.sorted(by: { $0.key < $1.key }) where share > limit * (1 + 1e-9) {
                    out.append("\(rule.id): a fill took \(symbol) to \(Self.percent(share)) of equity, the limit is \(Self.percent(limit))")
                }
            default: continue
            }
        }
        return out
    }

    // swiftlint:disable:next function_parameter_count
    static func failure(of rule: CompiledRule, _ p: Proposal, book: PortfolioSnapshot, batch: BatchApprovals, held: Double, notional: Double, opensNew: Bool) -> Violation? {
        func fail(_ detail: String, value: Double? = nil, limit: Double? = nil) -> Violation {
            Violation(rule: rule.id, severity: rule.severity, message: "\(rule.message): \(detail)", field: rule.field, value: value, limit: limit)
        }
        switch rule.check {
        case .max(let field, let limit):
            guard let v = field.value(in: p) else { return fail("\(rule.field) is missing (fail closed)", limit: limit) }
            guard v.isFinite else { return fail("\(rule.field) is not a finite number (fail closed)", limit: limit) }
            return v > limit ? fail("\(rule.field) is \(v), the limit is \(limit)", value: v, limit: limit) : nil
        case .min(let field, let limit):
            guard let v = field.value(in: p) else { return fail("\(rule.field) is missing", limit: limit) }
            guard v.isFinite else { return fail("\(rule.field) is not a finite number", limit: limit) }
            return v < limit ? fail("\(rule.field) is \(v), the minimum is \(limit)", value: v, limit: limit) : nil
        case .stopLoss:
            guard let stop = p.stopLoss else { return fail("no stop_loss") }
            guard stop.isFinite, stop > 0 else { return fail("stop_loss \(stop) is not a positive price", value: stop) }
            if p.action == "buy" && stop >= p.price { return fail("stop_loss \(stop) is not below the price \(p.price) of a buy", value: stop, limit: p.price) }
            if p.action == "sell" && stop <= p.price { return fail("stop_loss \(stop) is not above the price \(p.price) of a sell", value: stop, limit: p.price) }
            return nil
        case .actionOneOf(let allowed):
            guard let a = p.action else { return fail("no action") }
            return allowed.contains(a) ? nil : fail("action '\(a)' is not one of \(allowed.joined(separator: ", "))")
        case .symbolNoneOf(let blocked):
            // Kyle sends the canonical symbol, matched as it is; anything else is read again
            // first, so a proposal from anywhere is held to the same form (one that cannot be
            // read is refused).
            if BlockedName.isCanonical(p.symbol) {
                guard let hit = blocked.first(where: { $0.matches(canonical: p.symbol) }) else { return nil }
                return fail(p.symbol == hit.text ? "\(hit.text) is blocked" : "\(p.symbol) is the blocked instrument \(hit.text)")
            }
            let symbol: InstrumentSymbol
            do throws(InstrumentSymbol.Problem) {
                symbol = try InstrumentSymbol(p.symbol)
            } catch {
                return fail("symbol '\(p.symbol)' is not an instrument: \(error.description) (fail closed)")
            }
            guard let hit = blocked.first(where: { $0.matches(canonical: symbol.text) }) else { return nil }
            return fail("\(p.symbol) is the blocked instrument \(hit.text)")
        case .intentNoneOf(let patterns):
            guard let intent = Phrase(p.intent) else { return nil }
            if let scripts = intent.mixedScripts {
                return fail("intent '\(p.intent ?? "")' mixes scripts (\(scripts.map(\.rawValue).joined(separator: ", "))): refused, fail closed")
            }
            guard let hit = Pattern.firstMatch(patterns, inSkeleton: intent.skeleton) else { return nil }
            return fail("intent '\(p.intent ?? "")' matches '\(hit.text)'")
        case .targetNoneOf(let patterns):
            // Text mixing scripts is the intent rule's to refuse (and an action must be one of
            // a few plain words); here only what the skeletons say.
            for text in [p.action, p.intent] {
                guard let phrase = Phrase(text) else { continue }
                if let hit = Pattern.firstMatch(patterns, inSkeleton: phrase.skeleton) { return fail("the proposal targets '\(hit.text)'") }
            }
            return nil
        case .maxDailyLoss(let limit):
            guard book.equity > 0 else { return fail("equity is \(book.equity) (fail closed)") }
            let loss = -book.dailyPnl / book.equity
            return loss >= limit - 1e-12
                ? fail("book: daily P&L \(book.dailyPnl) is \(Self.percent(loss)) of equity \(book.equity), the limit is \(Self.percent(limit))", value: -loss, limit: limit)
                : nil
        case .maxOpenPositions(let limit):
            guard opensNew else { return nil }
            let open = book.openPositions + batch.newPositions.count
            return open >= limit
                ? fail("book: \(book.openPositions) positions open and \(batch.newPositions.count) approved in this batch, the limit is \(limit)", value: Double(open), limit: Double(limit))
                : nil
        case .maxSymbolExposure(let limit):
            guard book.equity > 0 else { return fail("equity is \(book.equity) (fail closed)") }
            let existing = abs(held) + (batch.addedNotional[p.symbol] ?? 0)
            let after = existing + notional
            let cap = limit * book.equity
            if abs(held) > cap * (1 + 1e-9) {
                // Over the limit already (equity fell or the price moved): the symbol is
                // REDUCING until it is back under, and only orders that reduce it are taken.
                return fail("book: \(p.symbol) is REDUCING: its exposure \(abs(held)) at the last trusted price is \(Self.percent(abs(held) / book.equity)) of equity \(book.equity), over the limit of \(Self.percent(limit)); only orders that reduce it are taken", value: abs(held) / book.equity, limit: limit)
            }
            return after > cap * (1 + 1e-9)
                ? fail("book: \(p.symbol) exposure would be \(after) (\(Self.percent(after / book.equity)) of equity \(book.equity)), the limit is \(Self.percent(limit))", value: after / book.equity, limit: limit)
                : nil
        case .minNotional(let limit):
            guard notional.isFinite, notional >= limit else {
                return fail("the trade's notional \(notional) (\(p.positionSizePct ?? 0) of equity \(book.equity)) is under the minimum \(limit)", value: notional, limit: limit)
            }
            return nil
        case .priceBand:
            return nil  // judged by Kenny against the trusted reference (`PriceBand.judge`)
        }
    }

    /// A listed phrase, searched for by its skeleton (`Canonical.skeleton`) in the skeleton of
    /// free text: separators, case, look-alike letters, accents, full-width and zero-width
    /// characters cannot hide it. A byte search over UTF-8, so the hot path needs no Foundation.
    struct Pattern: Equatable, Sendable {
        let text: String
        let bytes: [UInt8]

        init(_ text: String) {
            self.text = text.lowercased()
            self.bytes = Canonical.skeleton(text)
        }

        static func firstMatch(_ patterns: [Pattern], inSkeleton hay: [UInt8]) -> Pattern? {
            guard !hay.isEmpty else { return nil }
            return patterns.first { $0.occurs(in: hay) }
        }

        func occurs(in hay: [UInt8]) -> Bool {
            guard !bytes.isEmpty, hay.count >= bytes.count else { return false }
            let first = bytes[0]
            var i = 0
            let last = hay.count - bytes.count
            while i <= last {
                if hay[i] == first {
                    var k = 1
                    while k < bytes.count && hay[i + k] == bytes[k] { k += 1 }
                    if k == bytes.count { return true }
                }
                i += 1
            }
            return false
        }
    }

    /// A blocked instrument, matched without allocating against a canonical symbol: the whole
    /// symbol with its separators removed, or any of its parts (`InstrumentSymbol.matches`).
    struct BlockedName: Equatable, Sendable {
        let text: String
        let bare: [UInt8]

        init(_ canonical: String) {
            text = canonical
            bare = canonical.utf8.filter { $0 != UInt8(ascii: ".") }
        }

        /// Whether `s` is already in canonical form: parts of A-Z and 0-9 joined by single dots.
        static func isCanonical(_ s: String) -> Bool {
            var previousDot = true
            var n = 0
            for b in s.utf8 {
                n += 1
                switch b {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): previousDot = false
                case UInt8(ascii: "."):
                    if previousDot { return false }
                    previousDot = true
                default: return false
                }
            }
            return n > 0 && n <= InstrumentSymbol.maxLength && !previousDot
        }

        func matches(canonical symbol: String) -> Bool {
            // The whole symbol without its dots.
            var i = 0, whole = true
            for b in symbol.utf8 where b != UInt8(ascii: ".") {
                if i >= bare.count || bare[i] != b { whole = false; break }
                i += 1
            }
            if whole && i == bare.count { return true }
            // Any part.
            for part in symbol.utf8.split(separator: UInt8(ascii: ".")) where part.elementsEqual(bare) { return true }
            return false
        }
    }

    /// Free text as the phrase rules read it: its skeleton, and the scripts its letters mix
    /// (more than one is refused: fail closed, a look-alike letter is how a phrase hides).
    struct Phrase {
        let skeleton: [UInt8]
        let mixedScripts: [Canonical.Script]?

        init?(_ text: String?) {
            guard let text, !text.isEmpty else { return nil }
            // Plain ASCII (an action, most intents): one script at most, nothing to fold.
            if text.utf8.allSatisfy({ $0 < 0x80 }) {
                mixedScripts = nil
                skeleton = Canonical.skeleton(ascii: text.utf8)
                return
            }
            let folded = Canonical.folded(text)
            let scripts = Canonical.scripts(folded)
            mixedScripts = scripts.count > 1 ? scripts : nil
            skeleton = Canonical.skeleton(folded: folded)
        }
    }

    public static func percent(_ x: Double) -> String {
        let p = (x * 10_000).rounded() / 100
        return "\(p)%"
    }
}
