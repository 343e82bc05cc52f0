import ARKCore
import ARKRisk
import ARKTestSupport
import Graveyard
import Testing

/// The optional allow-list of instruments: read strictly, in canonical symbols, and applied by
/// Kenny with each instrument's own band, minimum and first reference.
@Suite struct InstrumentListTests {
    static let file = #"{"instruments": [{"symbol": "aapl.us", "class": "equity", "band": 0.05, "min_notional": 500, "reference": 190.0}, {"symbol": "BRK-B"}]}"#

    @Test func aListReadsInCanonicalSymbols() throws {
        let l = try InstrumentList(json: Array(Self.file.utf8))
        #expect(l.instruments.keys.sorted() == ["AAPL", "BRK.B"])
        #expect(l.instruments["AAPL"] == InstrumentList.Instrument(symbol: "AAPL", assetClass: "equity", band: 0.05, minNotional: 500, reference: 190))
        #expect(l.instruments["BRK.B"]?.assetClass == "equity" && l.instruments["BRK.B"]?.band == nil)
        #expect(l.violation(symbol: "AAPL") == nil && l.violation(symbol: "MSFT")?.rule == "instrument_not_listed")
    }

    @Test(arguments: [
        (#"[]"#, "not a JSON object"),
        (#"{}"#, "missing key 'instruments'"),
        (#"{"instruments": []}"#, "is empty"),
        (#"{"instruments": [{"class": "equity"}]}"#, "'symbol' is required"),
        (#"{"instruments": [{"symbol": "AAPL"}, {"symbol": "aapl"}]}"#, "AAPL is listed twice"),
        (#"{"instruments": [{"symbol": "АAPL"}]}"#, "CYRILLIC CAPITAL LETTER A"),
        (#"{"instruments": [{"symbol": "AAPL", "band": 1.5}]}"#, "band 1.5 must be between 0 and 1"),
        (#"{"instruments": [{"symbol": "AAPL", "reference": 1e300}]}"#, "outside the sane range"),
        (#"{"instruments": [{"symbol": "AAPL", "class": "stock"}]}"#, "class 'stock' is not one of"),
        (#"{"instruments": [{"symbol": "AAPL", "bands": 0.1}]}"#, "unknown key 'bands'"),
        (#"{"instruments": [{"symbol": "AAPL", "min_notional": -1}]}"#, "must be >= 0"),
        (#"{"instruments": [{"symbol": "AAPL"}"#, "not JSON"),
    ])
    func aBadListNamesWhatIsWrong(text: String, why: String) {
        do {
            _ = try InstrumentList(json: Array(text.utf8))
            Issue.record("read \(text)")
        } catch {
            #expect(error.description.contains(why), "\(error.description)")
        }
    }

    @Test func anUnreadableFileRefusesEveryTradeAndNoFileIsTheOpenSet() {
        #expect(InstrumentPolicy(file: "") == .open && InstrumentPolicy.open.violation(symbol: "ANY") == nil)
        let missing = InstrumentPolicy(file: "/nonexistent/instruments.json")
        #expect(missing.violation(symbol: "AAPL")?.message.contains("fail closed: the instrument list cannot be read") == true)
    }

    @Test func kennyAppliesEachInstrumentsOwnBandMinimumAndFirstReference() throws {
        let list = try InstrumentList(json: Array(Self.file.utf8))
        let settings = ExecutionDesk.Settings(startingEquity: 100_000, band: PriceBand(fraction: 0.10, confirmations: 3), throttles: .off,
                                              dailyLossLimit: nil, instruments: .listed(list))
        var d = ExecutionDesk(settings: settings, today: "d", nowNs: 1, books: [:], references: [:], trading: TradingStates())
        func order(_ id: String, _ symbol: String, _ price: Double, size: Double = 0.01) -> Event {
            var e = event(symbol, price: price, action: "buy", size: size)
            e.traceID = id
            return e
        }
        // Not listed: refused before anything.
        #expect(d.execute(order("m", "MSFT", 400), orderID: "o") { _ in [] }.violations.map(\.rule) == ["instrument_not_listed"])
        // AAPL's first price is judged against its configured reference, with its own 5 % band.
        let far = d.execute(order("a1", "AAPL", 200.5), orderID: "o") { _ in [] }
        #expect(far.violations.map(\.rule) == ["price_band"] && far.violations[0].message.contains("±5.0% band") && far.violations[0].message.contains("190.0"), "\(far)")
        // Its own minimum notional: 0.4 % of 100,000 is 400, under 500.
        #expect(d.execute(order("a2", "AAPL", 195, size: 0.004), orderID: "o") { _ in [] }.violations.map(\.rule) == ["min_position_notional"])
        #expect(d.execute(order("a3", "AAPL", 195), orderID: "o") { _ in [] }.status == .filled)
        // BRK.B has no band of its own: the rule file's 10 %; no reference: its first sane price.
        #expect(d.execute(order("b1", "BRK.B", 480), orderID: "o") { _ in [] }.status == .filled)
        #expect(d.execute(order("b2", "BRK.B", 520, size: 0.011), orderID: "o") { _ in [] }.status == .filled)
    }
}
