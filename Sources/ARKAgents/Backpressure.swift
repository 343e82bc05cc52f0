// When a stage stops taking input because a later stage is behind, and when it takes input again.

/// When a stage stops taking input because a later stage is behind, and when it takes input
/// again (docs/architecture.md §5): pure, fed with the measured backlogs, so its hysteresis
/// is a unit test.
struct Backpressure: Equatable {
    /// ARK_STREAM_MAXLEN: the unread backlog a downstream stream may reach.
    let bound: Int
    let batchSize: Int
    /// The downstream stream whose backlog holds this stage (nil: it takes input).
    private(set) var heldBy: String?
    /// The largest downstream backlog at the last measurement, and the entries this instance
    /// has handled since (each wrote at most one entry downstream).
    private(set) var measuredBacklog = 0
    private(set) var handledSinceMeasure = 0
    private(set) var lastMeasureNs: Int64 = 0
    /// How often the backlog is measured when nowhere near its bound.
    static let measureIntervalNs: Int64 = 100_000_000

    enum Transition: Equatable {
        /// Take no input: `stream`'s backlog is over the bound.
        case hold(stream: String, backlog: Int)
        /// Take input again: the worst backlog is back under 90 % of the bound.
        case release(stream: String, backlog: Int)
    }

    init(bound: Int, batchSize: Int) {
        self.bound = bound
        self.batchSize = batchSize
    }

    var holding: Bool { heldBy != nil }

    /// Whether to measure now: every 100 ms, and before every batch while one more batch
    /// could take the backlog past the bound, so an instance writes at most one batch past it.
    func shouldMeasure(nowNs: Int64) -> Bool {
        measuredBacklog + handledSinceMeasure + batchSize > bound || nowNs - lastMeasureNs >= Self.measureIntervalNs
    }

    /// Entries handled since the last measurement.
    mutating func handled(_ count: Int) {
        handledSinceMeasure += count
    }

    /// The worst downstream backlog just measured (nil: the stage has no downstream). Taking
    /// input again waits until the backlog is under 90 % of the bound, so the stage does not
    /// flap at the edge.
    mutating func observe(worst: (stream: String, backlog: Int)?, nowNs: Int64) -> Transition? {
        lastMeasureNs = nowNs
        handledSinceMeasure = 0
        guard let worst else {
            // Nothing downstream to wait for.
            defer { heldBy = nil }
            return heldBy.map { .release(stream: $0, backlog: 0) }
        }
        measuredBacklog = worst.backlog
        if heldBy == nil, worst.backlog > bound {
            heldBy = worst.stream
            return .hold(stream: worst.stream, backlog: worst.backlog)
        }
        if heldBy != nil, worst.backlog <= bound / 10 * 9 {
            heldBy = nil
            return .release(stream: worst.stream, backlog: worst.backlog)
        }
        return nil
    }
}
