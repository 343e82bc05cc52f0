// The optional allow-list of instruments (ARK_INSTRUMENTS_FILE).

import ARKCore
import Graveyard

/// An optional allow-list of instruments for production (`ARK_INSTRUMENTS_FILE`): when it is
/// set, only the instruments it lists trade, each with its class, its own price band, its own
/// minimum notional and, for its first price, a configured reference. Unset (the default),
/// every canonical symbol may trade under the rule file's band and minimum.
///
/// ```json
/// {"instruments": [
///   {"symbol": "AAPL", "class": "equity", "band": 0.05, "min_notional": 500, "reference": 190.0},
///   {"symbol": "BRK.B", "class": "equity"}
/// ]}
/// ```
/// Symbols are read in canonical form (`InstrumentSymbol`), so `brk-b` lists `BRK.B`.
public struct InstrumentList: Sendable, Equatable {
    public struct Instrument: Sendable, Equatable {
        public var symbol: String
        public var assetClass: String
        /// The band's half-width as a fraction of the reference; nil: the rule file's.
        public var band: Double?
        /// The least notional of a trade that opens or adds; nil: the rule file's.
        public var minNotional: Double?
        /// The trusted price of its first quote; nil: the first sane price.
        public var reference: Double?

        public init(symbol: String, assetClass: String, band: Double? = nil, minNotional: Double? = nil, reference: Double? = nil) {
            self.symbol = symbol
            self.assetClass = assetClass
            self.band = band
            self.minNotional = minNotional
            self.reference = reference
        }
    }

    public var instruments: [String: Instrument]

    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public static let classes: Set<String> = ["equity", "etf", "future", "option", "fx", "crypto", "bond", "index"]

    public init(json bytes: [UInt8]) throws(Problem) {
        var out: [String: Instrument] = [:]
        do {
            try bytes.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                guard try r.peekKind() == .object else { throw Problem(description: "the file is not a JSON object {\"instruments\": [...]}") }
                try r.beginObject()
                var first = true, found = false
                while let k = try r.nextKey(first: first) {
                    first = false
                    guard r.matches(k, "instruments") else { try r.skipValue(); continue }
                    found = true
                    guard try r.peekKind() == .array else { throw Problem(description: "'instruments' must be an array") }
                    try r.beginArray()
                    var index = 0
                    while try r.nextElement(first: index == 0) {
                        let i = try Self.instrument(&r, index: index)
                        guard out[i.symbol] == nil else { throw Problem(description: "instruments[\(index)]: \(i.symbol) is listed twice") }
                        out[i.symbol] = i
                        index += 1
                    }
                }
                try r.end()
                guard found else { throw Problem(description: "missing key 'instruments'") }
            }
        } catch let e as Problem {
            throw e
        } catch {
            throw Problem(description: "not JSON: \(error)")
        }
        guard !out.isEmpty else { throw Problem(description: "'instruments' is empty: no instrument could trade (unset ARK_INSTRUMENTS_FILE for the open set)") }
        instruments = out
    }

    private static func instrument(_ r: inout JSONReader, index: Int) throws -> Instrument {
        guard try r.peekKind() == .object else { throw Problem(description: "instruments[\(index)] must be an object") }
        var symbol: String?, assetClass: String?, band: Double?, minNotional: Double?, reference: Double?
        try r.beginObject()
        var first = true
        while let k = try r.nextKey(first: first) {
            first = false
            let key = try r.string(k)
            func number() throws -> Double {
                guard try r.peekKind() == .number else { throw Problem(description: "instruments[\(index)].\(key) must be a number") }
                let v = try r.readNumber().value
                guard v.isFinite else { throw Problem(description: "instruments[\(index)].\(key) must be finite") }
                return v
            }
            switch key {
            case "symbol", "class":
                guard try r.peekKind() == .string else { throw Problem(description: "instruments[\(index)].\(key) must be a string") }
                if key == "symbol" { symbol = try r.readString() } else { assetClass = try r.readString() }
            case "band": band = try number()
            case "min_notional": minNotional = try number()
            case "reference": reference = try number()
            default: throw Problem(description: "instruments[\(index)]: unknown key '\(key.prefix(64))' (symbol, class, band, min_notional, reference)")
            }
        }
        guard let raw = symbol else { throw Problem(description: "instruments[\(index)]: 'symbol' is required") }
        let canonical: String
        do throws(InstrumentSymbol.Problem) {
            canonical = try InstrumentSymbol(raw).text
        } catch {
            throw Problem(description: "instruments[\(index)]: symbol '\(raw)': \(error.description)")
        }
        let cls = assetClass ?? "equity"
        guard classes.contains(cls) else { throw Problem(description: "instruments[\(index)]: class '\(cls)' is not one of \(classes.sorted().joined(separator: ", "))") }
        if let band, !(band > 0 && band < 1) { throw Problem(description: "instruments[\(index)]: band \(band) must be between 0 and 1 (a fraction of the reference)") }
        if let minNotional, minNotional < 0 { throw Problem(description: "instruments[\(index)]: min_notional \(minNotional) must be >= 0") }
        if let reference, !PriceBand.saneRange.contains(reference) {
            throw Problem(description: "instruments[\(index)]: reference \(reference) is outside the sane range \(PriceBand.saneRange.lowerBound)…\(PriceBand.saneRange.upperBound)")
        }
        return Instrument(symbol: canonical, assetClass: cls, band: band, minNotional: minNotional, reference: reference)
    }

    /// Reads the file at `path`.
    public init(path: String) throws(Problem) {
        let bytes: [UInt8]
        do {
            bytes = try readFileBytes(path)
        } catch {
            throw Problem(description: "\(path): \(error)")
        }
        do {
            try self.init(json: bytes)
        } catch {
            throw Problem(description: "\(path): \(error.description)")
        }
    }

    /// Why `symbol` may not trade, or nil: it is listed.
    public func violation(symbol: String) -> Violation? {
        guard instruments[symbol] == nil else { return nil }
        return Violation(rule: "instrument_not_listed", severity: .critical,
                         message: "\(symbol) is not an instrument of ARK_INSTRUMENTS_FILE: only listed instruments trade")
    }

    /// Why a trade of `notional` that opens or adds in `symbol` is under the instrument's own
    /// minimum, or nil.
    public func minNotionalViolation(symbol: String, notional: Double) -> Violation? {
        guard let min = instruments[symbol]?.minNotional, !(notional >= min) else { return nil }
        return Violation(rule: "min_position_notional", severity: .high,
                         message: "the trade's notional \(notional) is under \(symbol)'s minimum \(min) (ARK_INSTRUMENTS_FILE)", field: "position_notional", value: notional, limit: min)
    }
}

/// How the allow-list is read by a stage: nil file, the open set; a file that cannot be read,
/// every trade refused with why (fail closed).
public enum InstrumentPolicy: Sendable, Equatable {
    case open
    case listed(InstrumentList)
    case unreadable(String)

    public init(file: String) {
        guard !file.isEmpty else { self = .open; return }
        do throws(InstrumentList.Problem) {
            self = .listed(try InstrumentList(path: file))
        } catch {
            self = .unreadable(error.description)
        }
    }

    /// Why a buy or sell of `symbol` is refused by the list, or nil.
    public func violation(symbol: String) -> Violation? {
        switch self {
        case .open: nil
        case .listed(let l): l.violation(symbol: symbol)
        case .unreadable(let why):
            Violation(rule: "instrument_not_listed", severity: .critical, message: "fail closed: the instrument list cannot be read: \(why)")
        }
    }

    /// The band for `symbol`: the instrument's own, else the rule file's.
    public func band(for symbol: String, default band: PriceBand?) -> PriceBand? {
        guard case .listed(let l) = self, let own = l.instruments[symbol]?.band, let band else { return band }
        return PriceBand(fraction: own, confirmations: band.confirmations)
    }

    /// The configured reference of an instrument's first price.
    public func firstReference(for symbol: String) -> PriceBand.Reference? {
        guard case .listed(let l) = self, let p = l.instruments[symbol]?.reference else { return nil }
        return PriceBand.Reference(price: p)
    }

    public func minNotionalViolation(symbol: String, notional: Double) -> Violation? {
        guard case .listed(let l) = self else { return nil }
        return l.minNotionalViolation(symbol: symbol, notional: notional)
    }
}
