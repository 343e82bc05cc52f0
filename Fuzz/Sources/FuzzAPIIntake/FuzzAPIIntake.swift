import CFuzzerDriver
import ARKCore
import ARKIntake

/// The API's reading of what clients send, on the real clock: a `POST /v1/signals` body
/// (split into items, each judged as Kyle will, its content digested and routed by its
/// account), and the same bytes as the trace id of a
/// path and as the `limit`/`since` of the decisions query.
@_cdecl("FuzzAPIIntake_main")
func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    ark_fuzz_main(argc, argv) { fuzzAPIIntake($0, $1) }
}

func fuzzAPIIntake(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let intake = SignalIntake(maxSignalBytes: 4096, maxBatch: 50)
    if let (items, _) = try? intake.split(bytes) {
        precondition(!items.isEmpty && items.count <= 50, "a split gave \(items.count) items")
        let checked = intake.check(items, nowNs: wallClockNanoseconds())
        let results = intake.results(checked, queuedTraceIDs: items.indices.map { "ark-1-\($0)" })
        precondition(results.count == items.count && results.allSatisfy { $0.accepted == $0.reasons.isEmpty }, "results do not match the items")
        // A claimed trace's content digest: the canonical form is a fixed point, so a
        // producer's retry of the canonical bytes is the same content.
        for (item, c) in zip(items, checked) {
            guard let canonical = ContentDigest.canonical(item) else {
                precondition(c.claim == nil, "a claim without a digest")
                continue
            }
            precondition(ContentDigest.canonical(canonical) == canonical, "the canonical form of an item is not canonical")
        }
        // The account each item is routed by, and its shard.
        let layout = ShardLayout(count: 7)
        for item in items {
            let account = ShardLayout.account(ofSignal: item)
            precondition(!account.isEmpty && account.utf8.count <= 128, "account '\(account)' out of bounds")
            precondition(layout.shards.contains(layout.shard(forAccount: account)), "no shard for '\(account)'")
        }
    }
    let text = String(decoding: bytes, as: UTF8.self)
    if let id = SignalValidator.traceID(fromPath: text) { precondition(!id.isEmpty && id.utf8.count <= SignalValidator.maxIDLength, "a bad trace id passed") }
    let parts = text.split(separator: "&", maxSplits: 1, omittingEmptySubsequences: false)
    if let page = try? APIQuery.decisionsPage(limit: parts.first.map(String.init), since: parts.count > 1 ? String(parts[1]) : nil) {
        precondition((1...APIQuery.maxPage).contains(page.limit), "limit \(page.limit) out of range")
    }
    return 0
}
