// The canonical forms rules match: instruments' symbols and phrases of free text.

/// The canonical forms the rules match: an instrument's symbol and a phrase of free text
/// (`intent`, the Graveyard's immutability targets). Both go through the same fold first,
/// so a blocked symbol or a listed phrase cannot pass in look-alike spelling:
///
/// 1. Default-ignorable and format characters are removed (zero-width space and joiners,
///    soft hyphen, bidirectional controls, variation selectors, tags).
/// 2. Compatibility forms become the ASCII they stand for, as Unicode NFKC maps them:
///    full-width forms (`ＡＡＰＬ`), mathematical alphanumerics (`𝐬𝐩𝐨𝐨𝐟`), circled, squared
///    and parenthesised letters, letter-like symbols (`ℍ`), ligatures (`ﬁ`), super- and
///    subscript digits and letters, Latin small capitals.
///
/// A symbol must then be ASCII (a letter from another script is refused, naming it); a
/// phrase is reduced to a *skeleton*: Cyrillic and Greek letters that look Latin are read as
/// the Latin letter, accents are dropped, letters are lower-cased, and every character that is
/// not a letter or a digit (spaces, separators, punctuation) is removed, so `pump-and-dump`,
/// `Pump And Dump` and `p u m p a n d d u m p` are one skeleton, `pumpanddump`.
///
/// NFKC itself lives in ICU (Foundation), which the stages do not link: the fold is ARK's own
/// table of the compatibility blocks above, tested against the cases in `CanonicalTests`.
public enum Canonical {
    /// Whether `u` is removed before anything is matched: default-ignorable code points and
    /// the format category (U+200B…U+200F, U+2060…, U+FEFF, U+00AD, U+FE00…, tags), and
    /// combining marks, which only decorate the letter before them.
    @inlinable
    public static func isIgnorable(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return false }
        let p = u.properties
        if p.isDefaultIgnorableCodePoint { return true }
        switch p.generalCategory {
        case .format, .nonspacingMark, .enclosingMark, .spacingMark: return true
        default: return false
        }
    }

    /// The ASCII a compatibility character stands for (NFKC's mapping for the blocks a
    /// look-alike is drawn from), or nil when `u` is not one.
    public static func compatibilityFold(_ u: Unicode.Scalar) -> String? {
        let v = u.value
        func letter(_ index: UInt32, upper: Bool) -> String {
            String(Unicode.Scalar((upper ? 0x41 : 0x61) + index)!)
        }
        switch v {
        case 0xFF01...0xFF5E: return String(Unicode.Scalar(v - 0xFEE0)!)  // full-width ASCII
        case 0x3000, 0x00A0, 0x2000...0x200A, 0x202F, 0x205F: return " "  // ideographic and other spaces
        case 0x1D400...0x1D6A3:  // mathematical alphanumerics: 13 Latin alphabets of 52 letters
            let i = (v - 0x1D400) % 52
            return letter(i % 26, upper: i < 26)
        case 0x1D6A4: return "i"
        case 0x1D6A5: return "j"
        case 0x1D7CE...0x1D7FF: return String((v - 0x1D7CE) % 10)  // mathematical digits
        case 0x24B6...0x24CF: return letter(v - 0x24B6, upper: true)  // circled capitals
        case 0x24D0...0x24E9: return letter(v - 0x24D0, upper: false)  // circled small
        case 0x249C...0x24B5: return letter(v - 0x249C, upper: false)  // parenthesised small
        case 0x1F110...0x1F129: return letter(v - 0x1F110, upper: true)  // parenthesised capitals
        case 0x1F130...0x1F149: return letter(v - 0x1F130, upper: true)  // squared capitals
        case 0x1F150...0x1F169: return letter(v - 0x1F150, upper: true)  // negative circled
        case 0x1F170...0x1F189: return letter(v - 0x1F170, upper: true)  // negative squared
        case 0x1F1E6...0x1F1FF: return letter(v - 0x1F1E6, upper: true)  // regional indicators
        case 0x2460...0x2468: return String(v - 0x2460 + 1)  // circled digits 1-9
        case 0x24EA: return "0"
        case 0x2070: return "0"
        case 0x00B9: return "1"
        case 0x00B2: return "2"
        case 0x00B3: return "3"
        case 0x2074...0x2079: return String(v - 0x2070)
        case 0x2080...0x2089: return String(v - 0x2080)
        case 0xFB00: return "ff"
        case 0xFB01: return "fi"
        case 0xFB02: return "fl"
        case 0xFB03: return "ffi"
        case 0xFB04: return "ffl"
        case 0xFB05, 0xFB06: return "st"
        default: break
        }
        return letterLike[v]
    }

    /// Letter-like symbols, modifier and sub/superscript letters, Latin small capitals.
    static let letterLike: [UInt32: String] = [
        0x2102: "C", 0x210A: "g", 0x210B: "H", 0x210C: "H", 0x210D: "H", 0x210E: "h", 0x2110: "I", 0x2111: "I",
        0x2112: "L", 0x2113: "l", 0x2115: "N", 0x2119: "P", 0x211A: "Q", 0x211B: "R", 0x211C: "R", 0x211D: "R",
        0x2124: "Z", 0x2128: "Z", 0x212A: "K", 0x212C: "B", 0x212D: "C", 0x212F: "e", 0x2130: "E", 0x2131: "F",
        0x2133: "M", 0x2134: "o", 0x2139: "i", 0x2145: "D", 0x2146: "d", 0x2147: "e", 0x2148: "i", 0x2149: "j",
        0x2071: "i", 0x207F: "n", 0x2090: "a", 0x2091: "e", 0x2092: "o", 0x2093: "x", 0x2095: "h", 0x2096: "k",
        0x2097: "l", 0x2098: "m", 0x2099: "n", 0x209A: "p", 0x209B: "s", 0x209C: "t", 0x00AA: "a", 0x00BA: "o",
        0x1D00: "a", 0x0299: "b", 0x1D04: "c", 0x1D05: "d", 0x1D07: "e", 0xA730: "f", 0x0262: "g", 0x029C: "h",
        0x026A: "i", 0x1D0A: "j", 0x1D0B: "k", 0x029F: "l", 0x1D0D: "m", 0x0274: "n", 0x1D0F: "o", 0x1D18: "p",
        0x0280: "r", 0xA731: "s", 0x1D1B: "t", 0x1D1C: "u", 0x1D20: "v", 0x1D21: "w", 0x028F: "y", 0x1D22: "z",
        0x017F: "s", 0x0131: "i", 0x0237: "j",
    ]

    /// Cyrillic and Greek letters (either case) that look like a Latin letter, as that
    /// letter in lower case: how a phrase's skeleton reads them.
    static let confusables: [UInt32: UInt8] = {
        let pairs: [(UInt32, Character)] = [
            // Cyrillic
            (0x0430, "a"), (0x0410, "a"), (0x0432, "b"), (0x0412, "b"), (0x042C, "b"), (0x044C, "b"), (0x0441, "c"), (0x0421, "c"),
            (0x0501, "d"), (0x0435, "e"), (0x0415, "e"), (0x0450, "e"), (0x0451, "e"), (0x0401, "e"), (0x04BB, "h"), (0x04BA, "h"),
            (0x041D, "h"), (0x043D, "h"), (0x0456, "i"), (0x0406, "i"), (0x0457, "i"), (0x0407, "i"), (0x04C0, "l"), (0x04CF, "l"),
            (0x0458, "j"), (0x0408, "j"), (0x043A, "k"), (0x041A, "k"), (0x043C, "m"), (0x041C, "m"), (0x043E, "o"), (0x041E, "o"),
            (0x0440, "p"), (0x0420, "p"), (0x051B, "q"), (0x051A, "q"), (0x0455, "s"), (0x0405, "s"), (0x0442, "t"), (0x0422, "t"),
            (0x0443, "y"), (0x0423, "y"), (0x04AF, "y"), (0x04AE, "y"), (0x0445, "x"), (0x0425, "x"), (0x051D, "w"), (0x051C, "w"),
            (0x0261, "g"), (0x050D, "g"), (0x050C, "g"), (0x0475, "v"), (0x0474, "v"),
            // Greek
            (0x03B1, "a"), (0x0391, "a"), (0x03B2, "b"), (0x0392, "b"), (0x03F2, "c"), (0x03F9, "c"), (0x03B5, "e"), (0x0395, "e"),
            (0x0396, "z"), (0x03B7, "n"), (0x0397, "h"), (0x03B9, "i"), (0x0399, "i"), (0x03F3, "j"), (0x037F, "j"), (0x03BA, "k"),
            (0x039A, "k"), (0x039C, "m"), (0x03BD, "v"), (0x039D, "n"), (0x03BF, "o"), (0x039F, "o"), (0x03C1, "p"), (0x03A1, "p"),
            (0x03C4, "t"), (0x03A4, "t"), (0x03C5, "u"), (0x03A5, "y"), (0x03C7, "x"), (0x03A7, "x"), (0x03B3, "y"), (0x03C9, "w"),
            (0x03BC, "u"), (0x03C3, "o"), (0x03C2, "s"),
        ]
        var out: [UInt32: UInt8] = [:]
        for (v, c) in pairs { out[v] = c.asciiValue! }
        return out
    }()

    /// The base letter of an accented Latin letter (Latin-1 Supplement and Latin Extended-A,
    /// lower case), so `spóof` reads as `spoof`.
    static let latinBase: [UInt32: UInt8] = {
        var out: [UInt32: UInt8] = [:]
        let groups: [(String, Character)] = [
            ("àáâãäåāăą", "a"), ("çćĉċč", "c"), ("ďđ", "d"), ("èéêëēĕėęě", "e"), ("ĝğġģ", "g"), ("ĥħ", "h"),
            ("ìíîïĩīĭįı", "i"), ("ĵ", "j"), ("ķ", "k"), ("ĺļľŀł", "l"), ("ñńņňŉ", "n"), ("òóôõöøōŏő", "o"),
            ("ŕŗř", "r"), ("śŝşšſ", "s"), ("ţťŧ", "t"), ("ùúûüũūŭůűų", "u"), ("ŵ", "w"), ("ýÿŷ", "y"), ("źżž", "z"),
        ]
        for (letters, base) in groups {
            for u in letters.unicodeScalars { out[u.value] = base.asciiValue! }
        }
        return out
    }()

    /// The writing system of a letter, as far as mixing matters.
    public enum Script: String, Sendable {
        case latin = "Latin", greek = "Greek", cyrillic = "Cyrillic", other = "another script"

        init?(letter u: Unicode.Scalar) {
            let v = u.value
            switch v {
            case 0x41...0x5A, 0x61...0x7A, 0xC0...0x24F, 0x250...0x2AF, 0x1D00...0x1D7F, 0x1E00...0x1EFF, 0xA720...0xA7FF: self = .latin
            case 0x370...0x3FF, 0x1F00...0x1FFF: self = .greek
            case 0x400...0x52F, 0x1C80...0x1C8F, 0x2DE0...0x2DFF, 0xA640...0xA69F: self = .cyrillic
            default:
                guard v >= 0x80, u.properties.isAlphabetic else { return nil }
                self = .other
            }
        }
    }

    /// The scalars of `text` with ignorables removed and compatibility forms folded.
    public static func folded(_ text: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for u in text.unicodeScalars {
            if u.isASCII {
                out.append(u)
            } else if isIgnorable(u) {
                continue
            } else if let f = compatibilityFold(u) {
                out.append(contentsOf: f.unicodeScalars)
            } else {
                out.append(u)
            }
        }
        return out
    }

    /// The scripts the letters of a folded text are written in, in order of first use.
    public static func scripts(_ scalars: [Unicode.Scalar]) -> [Script] {
        var seen: [Script] = []
        for u in scalars {
            guard let s = Script(letter: u), !seen.contains(s) else { continue }
            seen.append(s)
        }
        return seen
    }

    /// A phrase's skeleton (see the type's comment): what the Graveyard's phrase rules match,
    /// in lower-case ASCII and, for letters of other scripts without a Latin look-alike, their
    /// own lower-case UTF-8.
    public static func skeleton(_ text: String) -> [UInt8] {
        skeleton(folded: folded(text))
    }

    /// The skeleton of ASCII text: its letters in lower case and its digits.
    public static func skeleton(ascii utf8: String.UTF8View) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        for b in utf8 {
            switch b {
            case 0x30...0x39, 0x61...0x7A: out.append(b)
            case 0x41...0x5A: out.append(b + 0x20)
            default: continue
            }
        }
        return out
    }

    public static func skeleton(folded scalars: [Unicode.Scalar]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(scalars.count)
        for u in scalars {
            let v = u.value
            if v < 0x80 {
                let b = UInt8(v)
                switch b {
                case 0x30...0x39, 0x61...0x7A: out.append(b)
                case 0x41...0x5A: out.append(b + 0x20)
                default: continue  // spaces, separators, punctuation
                }
            } else if let c = confusables[v] {
                out.append(c)
            } else {
                let lower = u.properties.lowercaseMapping
                let first = lower.unicodeScalars.first ?? u
                if let base = latinBase[first.value] {
                    out.append(base)
                } else if first.properties.isAlphabetic || first.properties.numericType != nil {
                    out.append(contentsOf: lower.utf8)
                }
            }
        }
        return out
    }
}

/// An instrument's symbol in canonical form: ASCII upper case, its parts joined by `.`, a
/// venue suffix or prefix (`.US`, `:NYSE`, `NASDAQ:`) removed, so `aapl`, `AAPL.US`,
/// `NASDAQ:AAPL` and `ＡＡＰＬ` are one instrument, `AAPL`, and `BRK-B`, `BRK/B` and `brk.b` are
/// `BRK.B`. The blocked list matches the whole symbol with its separators removed and each of
/// its parts (`BLOCKED/USD` is blocked), see `InstrumentSymbol.matches`.
public struct InstrumentSymbol: Sendable, Equatable, CustomStringConvertible {
    public let text: String

    public var description: String { text }

    /// The venues whose code is dropped from a symbol as a suffix (`AAPL.US`, `AAPL:NYSE`) or
    /// a prefix (`NYSE:AAPL`): they name where an instrument trades, not which it is.
    public static let venues: Set<String> = [
        "US", "NYSE", "NASDAQ", "NSDQ", "NAS", "NMS", "XNYS", "XNAS", "ARCA", "NYSEARCA", "PCX", "AMEX", "XASE",
        "NYSEAMERICAN", "BATS", "BZX", "CBOE", "EDGX", "EDGA", "IEX", "IEXG", "OTC", "OTCMKTS", "PINK", "SMART", "CONSOLIDATED",
    ]
    public static let separators: Set<Unicode.Scalar> = [".", "-", "/", "_", ":", "^", "=", " "]
    public static let maxLength = 16

    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public init(_ raw: String) throws(Problem) {
        // Each part with the separator written before it (nil for the first).
        var parts: [(before: Unicode.Scalar?, text: String)] = []
        var current = ""
        var pending: Unicode.Scalar?
        for u in Canonical.folded(raw) {
            if u.value < 0x20 || u.value == 0x7F { throw Problem(description: "contains a control character") }
            if Self.separators.contains(u) || (!u.isASCII && u.properties.isWhitespace) {
                if !current.isEmpty {
                    parts.append((pending, current))
                    current = ""
                }
                pending = u
                continue
            }
            guard u.isASCII else {
                let code = "U+" + String(u.value, radix: 16, uppercase: true)
                throw Problem(description: "'\(Character(u))' (\(code)\(u.properties.name.map { " " + $0 } ?? "")) is not an ASCII letter or digit: a symbol in another script is refused, its letters can look Latin")
            }
            switch u {
            case "A"..."Z", "0"..."9": current.unicodeScalars.append(u)
            case "a"..."z": current.unicodeScalars.append(Unicode.Scalar(u.value - 0x20)!)
            default: throw Problem(description: "only letters, digits and . - / _ : ^ = are allowed")
            }
        }
        if !current.isEmpty { parts.append((pending, current)) }
        guard !parts.isEmpty else { throw Problem(description: "empty after trimming whitespace and separators") }
        // A venue prefix is written with ':' (NYSE:AAPL); a suffix with '.', ':' or a space.
        if parts.count > 1, Self.venues.contains(parts[0].text), parts[1].before == ":" {
            parts.removeFirst()
        }
        if parts.count > 1, let last = parts.last, Self.venues.contains(last.text), last.before == "." || last.before == ":" || last.before == " " {
            parts.removeLast()
        }
        let text = parts.map(\.text).joined(separator: ".")
        guard text.utf8.count <= Self.maxLength else {
            throw Problem(description: "\(text.utf8.count) characters, the limit is \(Self.maxLength)")
        }
        self.text = text
    }

    /// Whether this symbol is the instrument `name` (itself canonical) or has it as a part:
    /// `B.L.O.C.K.E.D` and `BLOCKED.USD` match `BLOCKED`.
    public func matches(_ name: String) -> Bool {
        if text == name { return true }
        let bare = name.replacing(".", with: "")
        let parts = text.split(separator: ".")
        if parts.joined() == bare { return true }
        return parts.contains { $0 == bare }
    }
}
