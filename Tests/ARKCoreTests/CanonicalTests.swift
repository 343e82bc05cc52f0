import ARKCore
import Testing

/// The normalisation the rules match on (Canonical, InstrumentSymbol), as a table: each look-
/// alike a producer or an attacker may send, and what it must read as.
@Suite struct CanonicalTests {
    @Test(arguments: [
        ("AAPL", "AAPL"), (" aapl ", "AAPL"), ("aapl", "AAPL"),
        // venues dropped as a suffix (. : space) or a prefix (:)
        ("AAPL.US", "AAPL"), ("AAPL:NYSE", "AAPL"), ("NASDAQ:AAPL", "AAPL"), ("aapl.xnas", "AAPL"), ("AAPL US", "AAPL"),
        // separators are one: the parts joined by '.'
        ("BRK.B", "BRK.B"), ("BRK-B", "BRK.B"), ("BRK/B", "BRK.B"), ("brk_b", "BRK.B"), ("BRK.B.US", "BRK.B"),
        ("^GSPC", "GSPC"), ("ES=F", "ES.F"), ("BTC/USD", "BTC.USD"),
        // a venue alone or in the middle is a name
        ("US", "US"), ("US.AAPL", "US.AAPL"),
        // full-width, zero-width, circled, mathematical: NFKC's ASCII
        ("ＡＡＰＬ", "AAPL"), ("AA\u{200B}PL", "AAPL"), ("A\u{200D}APL\u{FEFF}", "AAPL"), ("ⒶⒶⓅⓁ", "AAPL"), ("𝐀𝐀𝐏𝐋", "AAPL"),
        ("AAPL\u{00AD}", "AAPL"), ("\u{3000}AAPL", "AAPL"),
    ])
    func symbolsHaveOneCanonicalForm(raw: String, canonical: String) throws {
        #expect(try InstrumentSymbol(raw).text == canonical)
    }

    @Test(arguments: [
        ("АAPL", "CYRILLIC CAPITAL LETTER A"), ("AΑPL", "GREEK CAPITAL LETTER ALPHA"), ("AAPL€", "EURO SIGN"),
        ("AA\u{0000}PL", "control character"), ("   ", "empty"), ("...", "empty"), ("AAPL!", "only letters, digits"),
        ("ABCDEFGHIJKLMNOPQ", "17 characters, the limit is 16"),
    ])
    func whatCannotBeAnInstrumentIsRefusedNamingWhy(raw: String, why: String) {
        do {
            let s = try InstrumentSymbol(raw)
            Issue.record("read \(raw) as \(s)")
        } catch {
            #expect(error.description.contains(why), "\(error.description)")
        }
    }

    @Test func aBlockedNameMatchesTheWholeSymbolOrAPart() throws {
        for raw in ["BLOCKED", "B.L.O.C.K.E.D", "BLOCKED/USD", "X:BLOCKED", "BLOCKED.A"] {
            #expect(try InstrumentSymbol(raw).matches("BLOCKED"), "\(raw)")
        }
        for raw in ["BLOCKEDCO", "UNBLOCKED", "BLOCKE.D.X"] {
            #expect(try !InstrumentSymbol(raw).matches("BLOCKED"), "\(raw)")
        }
    }

    @Test(arguments: [
        ("spoof", "spoof"), ("S P O O F", "spoof"), ("sp\u{200D}oof", "spoof"), ("ｓｐｏｏｆ", "spoof"), ("ѕрооf", "spoof"),
        ("ЅΡΟΟF", "spoof"), ("spóöf", "spoof"), ("pump-and_dump!", "pumpanddump"), ("𝓌𝒶𝓈𝒽 𝓉𝓇𝒶𝒹𝑒", "washtrade"), ("ﬁnance", "finance"),
        ("Wash—Trade", "washtrade"), ("x²", "x2"), ("Ⓢⓟⓞⓞⓕ", "spoof"),
    ])
    func phrasesHaveOneSkeleton(text: String, skeleton: String) {
        #expect(String(decoding: Canonical.skeleton(text), as: UTF8.self) == skeleton)
    }

    @Test func scriptsAreCountedOnLettersOnly() {
        #expect(Canonical.scripts(Canonical.folded("spoof 123 !")) == [.latin])
        #expect(Canonical.scripts(Canonical.folded("ѕрооf")) == [.cyrillic, .latin])
        #expect(Canonical.scripts(Canonical.folded("ｓｐｏｏｆ")) == [.latin])
        #expect(Canonical.scripts(Canonical.folded("Ребалансировка")) == [.cyrillic])
        #expect(Canonical.scripts(Canonical.folded("AAPL を買う")) == [.latin, .other])
    }
}
