import ARKCore
import ARKRisk
import CFuzzerDriver
import Graveyard

/// The paper book under any sequence of fills, marks and trusted-price judgements, with any
/// doubles (NaN, infinities, subnormals, 1e308): every figure it holds stays finite and in
/// `PaperBook.Bounds`, it reads back exactly, and every execution's figures are finite. The
/// same bytes read as a stored book must either be refused or give a book that holds the same.
@_cdecl("FuzzPaperBook_main")
func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    ark_fuzz_main(argc, argv) { fuzzPaperBook($0, $1) }
}

struct Bytes {
    let data: [UInt8]
    var i = 0
    mutating func byte() -> UInt8? {
        guard i < data.count else { return nil }
        defer { i += 1 }
        return data[i]
    }
    /// Any double: a raw bit pattern, or one of the values that break arithmetic.
    mutating func double() -> Double? {
        guard let kind = byte() else { return nil }
        let special: [Double] = [0, -0.0, .leastNonzeroMagnitude, 1e-300, 1e-6, 1, 100, 1e9, 1e15, 1e300, .greatestFiniteMagnitude, .infinity, -.infinity, .nan, -1]
        if Int(kind) < special.count { return special[Int(kind)] }
        if kind < 128 { return Double(kind) * 1.5 }
        var bits: UInt64 = 0
        for _ in 0..<8 { bits = bits << 8 | UInt64(byte() ?? 0) }
        return Double(bitPattern: bits)
    }
}

func check(_ book: PaperBook, _ x: Execution?) {
    if let problem = book.boundsProblem() { preconditionFailure("the book left its bounds: \(problem)") }
    guard let back = try? PaperBook(json: book.encoded()) else { preconditionFailure("the book does not read back") }
    precondition(back == book, "the book reads back different")
    if let x {
        for v in [x.quantity, x.price, x.notional, x.positionAfter, x.realizedPnl] { precondition(v.isFinite, "an execution figure is \(v)") }
    }
}

func fuzzPaperBook(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let raw = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    // As a stored book: refused, or sound.
    if let stored = try? PaperBook(json: raw) { check(stored, nil) }

    var input = Bytes(data: raw)
    guard let equityKind = input.byte() else { return 0 }
    var book = PaperBook(equity: [1.0, 100_000, 1e12, 1e15][Int(equityKind % 4)], day: "d")
    var references: [String: PriceBand.Reference] = [:]
    let band = PriceBand(fraction: 0.10, confirmations: 3)
    var step = 0
    while let op = input.byte() {
        step += 1
        let symbol = ["A", "B", "C"][Int(op % 3)]
        switch op / 3 % 4 {
        case 0:  // a trusted mark
            guard let price = input.double() else { return 0 }
            if case .trusted = PriceBand.sanity(price) { _ = try? book.mark(symbol, price: price) }
            check(book, nil)
        default:  // a proposal, approved or not, banded or not
            guard let price = input.double(), let size = input.double(), let stop = input.double(), let rr = input.double(), let flags = input.byte() else { return 0 }
            let action = ["buy", "sell", "hold", "short"][Int(flags % 4)]
            var e = Event(traceID: "t\(step)", id: "t", symbol: symbol, price: price, volume: 1, ts: 0, source: "fuzz", t0Ns: 0,
                          action: action, positionSizePct: size, leverage: 1, stopLoss: stop, riskRewardRatio: rr)
            e.decision = Decision(approved: flags & 4 != 0, violations: [], warnings: [], rulesChecked: 1, complianceScore: 1, policyHash: "h", evalNs: 0)
            var reference = references[symbol]
            let x = book.execute(e, orderID: "o\(step)", band: flags & 8 != 0 ? band : nil, reference: &reference)
            if let reference { references[symbol] = reference }
            if x.status == .filled { precondition(PriceBand.saneRange.contains(x.price), "filled at \(x.price)") }
            check(book, x)
        }
    }
    return 0
}
