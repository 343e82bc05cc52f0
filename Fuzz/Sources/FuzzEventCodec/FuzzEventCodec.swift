import CFuzzerDriver
import ARKCore

/// The stage message codec: whatever decodes re-encodes to bytes that decode to the same
/// encoding, a partial decode reads what a full one does, a splice decodes to the changed
/// event, and the latency arithmetic on the decoded times cannot trap.
@_cdecl("FuzzEventCodec_main")
func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    ark_fuzz_main(argc, argv) { fuzzEventCodec($0, $1) }
}

func fuzzEventCodec(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = try? EventCodec.decodeExecution(bytes)
    var layout = EventLayout()
    guard let event = try? EventCodec.decode(bytes, keeping: .all, layout: &layout) else { return 0 }
    let encoded = EventCodec.encode(event)
    guard let back = try? EventCodec.decode(encoded) else { fatalError("a decoded event re-encodes to bytes that do not decode") }
    precondition(EventCodec.encode(back) == encoded, "encode(decode(encode(e))) differs from encode(e)")
    for h in event.hops { _ = Double(elapsedNanoseconds(from: h.inNs, to: h.outNs)) / 1000 }
    _ = elapsedNanoseconds(from: event.t0Ns, to: wallClockNanoseconds())
    // What a middle stage reads decodes the same values, and its splice (a value set, a hop
    // appended) decodes to the event with those changes, whatever the input's form.
    var partial = EventLayout()
    guard let light = try? EventCodec.decode(bytes, keeping: [], layout: &partial) else { fatalError("decodes in full but not in part") }
    precondition(light.traceID == event.traceID && light.price.bitPattern == event.price.bitPattern && light.action == event.action && partial.hopCount == event.hops.count,
                 "a partial decode read other values")
    let hop = Hop(stage: .aletheia, instance: "fuzz", inNs: 1, outNs: 2)
    let execution = Execution(status: .none, side: "buy")
    let spliced = partial.splice(bytes, setting: [(.execution, EventCodec.encode(execution)), (.leverage, EventCodec.json(1.5))], appending: hop)
    guard let after = try? EventCodec.decode(spliced) else { fatalError("a splice made the event undecodable") }
    var expected = event
    expected.hops.append(hop)
    expected.execution = execution
    expected.leverage = 1.5
    precondition(EventCodec.encode(after) == EventCodec.encode(expected), "the splice did not give the changed event")
    return 0
}
