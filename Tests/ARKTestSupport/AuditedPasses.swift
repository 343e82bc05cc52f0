import ARKCore
import ARKStoreWriter

/// A pass as the pipeline records it, for suites that write the store without the pipeline:
/// its event carries HRM's decision and, with `order`, Kenny's fill, and every column is read
/// from that event (`PassRecord(auditing:)`), so the store verifies as a real one does.
public func auditedPass(_ id: String, verdict: Verdict = .approved, t0Ns: Int64, doneNs: Int64, hrmEvalUs: Double? = 3.5,
                        order: Bool = false, symbol: String = "AAPL", source: String = "test") -> PassRecord {
    var e = Event(traceID: id, id: id, symbol: symbol, price: 100, volume: 1, ts: Double(t0Ns) / 1e9, source: source, t0Ns: t0Ns,
                  action: "buy", positionSizePct: 0.01, leverage: 1, stopLoss: 98, riskRewardRatio: 2)
    let reasons: [String]
    switch verdict {
    case .denied: reasons = ["max_leverage [CRITICAL]: x"]
    case .error: reasons = ["continuity: missing hops: Kenny"]
    case .rejected: reasons = ["price: missing"]
    case .deadlettered: reasons = ["dead-lettered from ark:joey (Joey): test"]
    case .approved: reasons = []
    }
    if let hrmEvalUs, verdict != .rejected {
        e.decision = Decision(approved: verdict == .approved, violations: [], warnings: [], rulesChecked: 11, complianceScore: 1, policyHash: "h",
                              evalNs: Int64(hrmEvalUs * 1000))
    }
    if order {
        e.execution = Execution(status: .filled, orderID: "ord-" + id, side: "buy", quantity: 1, price: 100, notional: 100, positionAfter: 1)
    }
    return PassRecord(auditing: e, verdict: verdict, reasons: reasons, t0Ns: t0Ns, doneNs: doneNs)
}

/// The order of an `auditedPass(_:order: true)`.
public func auditedOrder(_ pass: PassRecord) -> OrderRecord? {
    (try? EventCodec.decode(pass.event)).flatMap { OrderRecord(filled: $0, tsNs: pass.doneNs) }
}
