import CFuzzerDriver
import ARKCore

/// The stage message codec: whatever decodes re-encodes to bytes that decode to the same
/// encoding, a hop appended in place decodes with one hop more, and the latency arithmetic
/// on the decoded times cannot trap.
@_cdecl("FuzzEventCodec_main")
func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    ark_fuzz_main(argc, argv) { fuzzEventCodec($0, $1) }
}

func fuzzEventCodec(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = try? EventCodec.decodeExecution(bytes)
    guard let (event, hopsClose) = try? EventCodec.decodeLocatingHops(bytes) else { return 0 }
    let encoded = EventCodec.encode(event)
    guard let back = try? EventCodec.decode(encoded) else { fatalError("a decoded event re-encodes to bytes that do not decode") }
    precondition(EventCodec.encode(back) == encoded, "encode(decode(encode(e))) differs from encode(e)")
    for h in event.hops { _ = Double(elapsedNanoseconds(from: h.inNs, to: h.outNs)) / 1000 }
    _ = elapsedNanoseconds(from: event.t0Ns, to: wallClockNanoseconds())
    if let hopsClose {
        let hop = Hop(stage: .aletheia, instance: "fuzz", inNs: 1, outNs: 2)
        let appended = EventCodec.appendingHop(hop, to: bytes, hopsClose: hopsClose, hadHops: !event.hops.isEmpty)
        guard let withHop = try? EventCodec.decode(appended) else { fatalError("a hop appended in place made the event undecodable") }
        precondition(withHop.hops.count == event.hops.count + 1, "the appended hop is not in the hops")
    }
    return 0
}
