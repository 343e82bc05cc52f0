import CFuzzerDriver
import ARKCore

/// Kyle's validator on the real clock, as Kyle and the API run it: any bytes are accepted
/// or rejected with reasons, never a trap; an accepted signal is plausible and travels as a
/// stage message; a rejection's record travels too.
@_cdecl("FuzzSignalValidator_main")
func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    ark_fuzz_main(argc, argv) { fuzzSignalValidator($0, $1) }
}

func fuzzSignalValidator(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let now = wallClockNanoseconds()
    var event: Event
    switch SignalValidator(maxPayloadBytes: 4096).validate(bytes, fallbackTraceID: "ark-1-0", nowNs: now) {
    case .accepted(let e):
        precondition(e.price.isFinite && e.price > 0 && e.volume.isFinite && e.volume >= 0, "an implausible signal was accepted")
        precondition(plausibleNanoseconds.contains(e.t0Ns), "t0_ns \(e.t0Ns) out of range was accepted")
        precondition(!e.symbol.isEmpty && !e.traceID.isEmpty, "a signal without symbol or trace id was accepted")
        event = e
    case .rejected(let reasons):
        precondition(!reasons.isEmpty, "rejected without a reason")
        event = Event(traceID: "ark-1-0", id: "ark-1-0", symbol: "", price: 0, volume: 0, ts: 0, source: "unknown", t0Ns: now)
        event.rejection = SignalValidator.rejection(reasons, payload: bytes)
    }
    event.hops.append(Hop(stage: .kyle, instance: "fuzz", inNs: now, outNs: wallClockNanoseconds()))
    guard let back = try? EventCodec.decode(EventCodec.encode(event)) else { fatalError("Kyle's output does not decode") }
    _ = Double(elapsedNanoseconds(from: back.t0Ns, to: wallClockNanoseconds())) / 1e6
    return 0
}
