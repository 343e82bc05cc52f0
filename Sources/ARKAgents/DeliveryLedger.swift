// An agent's count of attempts and deaths per entry, deciding which entries are handled and which
// dead-lettered.

import ARKBus

/// An agent's count of failed attempts and suspect deaths per entry, and the sorting of each
/// batch by it into entries to handle and entries to dead-letter: pure, so every rule of
/// poison isolation (docs/architecture.md §4) is a unit test.
struct DeliveryLedger {
    let maxDeliveries: Int
    /// This shard's dead letter stream: its entries are recorded as they are, never re-lettered.
    let deadLetterStream: String
    /// Failed attempts per entry id, in case Redis's delivery count is not raised by re-reads
    /// of our own pending entries.
    private(set) var attempts: [String: Int] = [:]
    /// Deaths counted against entries taken over as suspects (`SuspectEntry`), by id.
    private(set) var deaths: [String: Int] = [:]
    /// Past this many tracked entries the attempt counts are dropped (Redis's delivery counts
    /// still bound the retries): memory stays bounded whatever fails.
    static let attemptsCap = 100_000

    init(maxDeliveries: Int, deadLetterStream: String) {
        self.maxDeliveries = maxDeliveries
        self.deadLetterStream = deadLetterStream
    }

    /// What to do with a batch just read: `handle` to the processor, `poison` to the dead
    /// letters. Each entry's `deliveries` is raised to what this ledger knows.
    func sort(_ entries: [StreamEntry]) -> (handle: [StreamEntry], poison: [DeadLetter]) {
        var handle: [StreamEntry] = []
        handle.reserveCapacity(entries.count)
        var poison: [DeadLetter] = []
        // Both maps are empty unless a batch failed or entries were taken over: then no
        // entry's id is hashed.
        let anyAttempts = !attempts.isEmpty, anyDeaths = !deaths.isEmpty
        for var e in entries {
            let key = anyAttempts || anyDeaths ? e.key : ""
            let attempted = (anyAttempts ? attempts[key] ?? 0 : 0) + 1
            // Redis counts deliveries of an entry, which an envelope's events share: an event's
            // own count is its failed attempts here, and the deaths charged to it alone.
            e.deliveries = e.envelope == nil ? max(e.deliveries, attempted) : attempted
            let died = anyDeaths ? deaths[key] ?? 0 : 0
            let exhausted = e.deliveries > maxDeliveries || died >= maxDeliveries
            if e.stream == deadLetterStream && exhausted {
                e.recordRaw = true  // a dead letter is never re-lettered: recorded as it is
                handle.append(e)
            } else if exhausted {
                let limit = "(ARK_MAX_DELIVERIES=\(maxDeliveries))"
                let why = died > 0 ? "the process handling it alone died or hung \(died) times" : nil
                let reason: String
                if let slot = e.envelope {
                    // One event of an envelope: the rest of it goes on.
                    reason = "event \(slot.index + 1) of the \(slot.count) of its entry: " + (why ?? "failed \(e.deliveries - 1) times") + " \(limit)"
                } else {
                    reason = "delivered \(e.deliveries) times \(limit) without being processed" + (why.map { "; " + $0 } ?? "")
                }
                poison.append(DeadLetter(entry: e, reason: reason))
            } else if e.stream != deadLetterStream && e.payload == nil && e.fieldNames.isEmpty {
                poison.append(DeadLetter(entry: e, reason: "entry was removed from \(e.stream) before it was processed"))
            } else {
                handle.append(e)
            }
        }
        return (handle, poison)
    }

    /// Entries (or events, by `StreamEntry.key`) taken over from a consumer that died or hung
    /// with them in hand alone.
    mutating func tookOverSuspects(_ suspects: [(key: String, deaths: Int)]) {
        for s in suspects where s.deaths > 0 { deaths[s.key] = s.deaths }
    }

    /// These entries failed (a whole batch, or the ones its bisection left), by
    /// `StreamEntry.key`: one attempt more each.
    mutating func failed<S: Sequence>(_ keys: S) where S.Element == String {
        for key in keys { attempts[key, default: 0] += 1 }
        if attempts.count > Self.attemptsCap { attempts.removeAll() }
    }

    /// These entries are settled (committed or dead-lettered), by `StreamEntry.key`: nothing
    /// more is counted against them.
    mutating func settled<S: Sequence>(_ keys: S) where S.Element == String {
        guard !attempts.isEmpty else { return }
        for key in keys where attempts[key] != nil { attempts[key] = nil }
    }

    /// A suspect handled alone committed: its deaths are forgiven.
    mutating func resolvedAlone(_ key: String) {
        deaths[key] = nil
    }
}
