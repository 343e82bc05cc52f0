// Trusted prices: each instrument's reference and the band a signal's price must fall in.

import ARKCore

/// Trusted prices: a price may move the book (fill a trade, mark a position, trigger a stop)
/// only inside its instrument's band around the last trusted price, the *reference*. Pure:
/// Kenny keeps each instrument's reference in Redis (`ark:marks`) and judges every approved
/// price here before it touches the book.
///
/// - Any price outside `saneRange` is erroneous, whatever the reference.
/// - An instrument's first price is trusted when it is inside `saneRange`: it becomes the
///   reference.
/// - A price within `fraction` of the reference is trusted and becomes the reference.
/// - A price outside the band is erroneous: refused, naming the band and the reference. It is
///   remembered as a *candidate*; when `confirmations` such prices in a row agree with each
///   other (each within the band of the first), the last of them is trusted and the band
///   moves to it. So a genuine move (a gap on news) trades from its third quote on, while a
///   single fat-fingered or hostile price never marks the book.
/// - A denied proposal's price never marks the book, but inside the band it moves the
///   reference (`follows`), so the band keeps up with a market the account is not trading.
public struct PriceBand: Sendable, Equatable {
    /// The band's half-width as a fraction of the reference (0.10: ±10 %).
    public var fraction: Double
    /// Consistent quotes outside the band that move it.
    public var confirmations: Int

    /// Every price ARK trades at lies here (a millionth to a billion per unit): outside it, a
    /// price is erroneous for any instrument, first price included.
    public static let saneRange: ClosedRange<Double> = 1e-6...1e9

    public init(fraction: Double, confirmations: Int) {
        self.fraction = fraction
        self.confirmations = confirmations
    }

    /// An instrument's trusted price and the out-of-band quotes counted towards moving it.
    public struct Reference: Sendable, Equatable {
        public var price: Double
        public var candidate: Double?
        public var count: Int

        public init(price: Double, candidate: Double? = nil, count: Int = 0) {
            self.price = price
            self.candidate = candidate
            self.count = count
        }

        /// `price` or `price|candidate|count`, as kept in `ark:marks`.
        public var stored: String {
            guard let candidate, count > 0 else { return price.description }
            return "\(price)|\(candidate)|\(count)"
        }

        public init?(stored: String) {
            let parts = stored.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 1 || parts.count == 3, let p = Double(parts[0]), PriceBand.saneRange.contains(p) else { return nil }
            price = p
            candidate = nil
            count = 0
            if parts.count == 3 {
                guard let c = Double(parts[1]), PriceBand.saneRange.contains(c), let n = Int(parts[2]), n >= 1 else { return nil }
                candidate = c
                count = n
            }
        }
    }

    public enum Verdict: Sendable, Equatable {
        /// The price may move the book; the reference becomes this.
        case trusted(Reference)
        /// The price is refused (`reason`); the reference keeps its price, with the candidate
        /// count as it now stands (nil: leave it as it was).
        case erroneous(reason: String, reference: Reference?)
    }

    /// A price judged without a reference: only the sane range.
    public static func sanity(_ price: Double) -> Verdict {
        guard price.isFinite, saneRange.contains(price) else {
            return .erroneous(reason: "the price \(price) is outside the sane range \(saneRange.lowerBound)…\(saneRange.upperBound)", reference: nil)
        }
        return .trusted(Reference(price: price))
    }

    public func judge(_ price: Double, reference: Reference?) -> Verdict {
        let sane = Self.sanity(price)
        guard case .trusted = sane, let reference else { return sane }
        if within(price, of: reference.price) { return .trusted(Reference(price: price)) }
        var next = reference
        if let c = reference.candidate, within(price, of: c) {
            next.count += 1
        } else {
            next.candidate = price
            next.count = 1
        }
        if next.count >= confirmations { return .trusted(Reference(price: price)) }
        let low = reference.price * (1 - fraction), high = reference.price * (1 + fraction)
        return .erroneous(
            reason: "the price \(price) is outside the ±\(RuleSet.percent(fraction)) band \(low)…\(high) around the last trusted price \(reference.price): an erroneous price (\(next.count) of \(confirmations) consistent quotes that would move the band)",
            reference: next)
    }

    /// Whether a price the book does not take (a denied proposal's) still moves the reference:
    /// only inside the band of an existing one. The market goes on while an account is at its
    /// limits, and a reference left behind would make the next approved price look erroneous;
    /// but such a price never sets a first reference nor counts towards moving the band.
    public func follows(_ price: Double, reference: Reference) -> Bool {
        price.isFinite && Self.saneRange.contains(price) && within(price, of: reference.price)
    }

    func within(_ price: Double, of reference: Double) -> Bool {
        abs(price - reference) <= fraction * reference * (1 + 1e-12)
    }
}

extension RuleSet {
    /// The price band of the rule file, nil when it has none.
    public var priceBand: (rule: String, severity: Severity, band: PriceBand)? {
        for r in rules {
            if case .priceBand(let band) = r.check { return (r.id, r.severity, band) }
        }
        return nil
    }
}
