// When the outcome writer signs the audit tree's head.

/// When the outcome writer signs the audit tree's head (docs/audit.md): once the oldest leaf
/// no checkpoint covers has waited half the checkpoint interval. With Aletheia looking at
/// least every quarter interval, no leaf waits longer than the interval for its signature,
/// busy or idle, and a busy log is signed twice an interval. Pure, on a clock it is given.
struct CheckpointSchedule: Equatable {
    /// How long the oldest unsigned leaf may wait before a checkpoint is due.
    let dueAfterNs: Int64
    /// When the oldest leaf this writer committed and no checkpoint covers yet was written;
    /// nil when none waits.
    private(set) var oldestUnsignedNs: Int64?
    /// Due whatever waited, until the next signature (at shutdown).
    private(set) var forced = false

    /// `openedNs`: when the writer opened; a tail left unsigned before it counts from then.
    init(dueAfterNs: Int64, openedNs: Int64) {
        self.dueAfterNs = dueAfterNs
        oldestUnsignedNs = openedNs
    }

    func isDue(nowNs: Int64) -> Bool {
        if forced { return true }
        guard let oldest = oldestUnsignedNs else { return false }
        return nowNs - oldest >= dueAfterNs
    }

    /// A batch committed `leaves` new leaves at `nowNs`.
    mutating func committed(leaves: Int, nowNs: Int64) {
        if oldestUnsignedNs == nil, leaves > 0 { oldestUnsignedNs = nowNs }
    }

    /// The head was signed, or found already signed: nothing waits.
    mutating func signed() {
        oldestUnsignedNs = nil
        forced = false
    }

    /// Due now, whatever waited (at shutdown).
    mutating func force() {
        forced = true
    }
}
