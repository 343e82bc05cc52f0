// A `POST /v1/signals` body parsed item by item into accepted signals and reasons.

import ARKCore

/// What became of one item of a `POST /v1/signals` body.
public struct IntakeItem: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable {
        /// Queued for Kyle.
        case accepted
        /// Invalid: queued all the same, Kyle records it as a rejected pass with the reasons.
        case rejected
        /// Not queued: its trace id is already held with other content.
        case conflict
        /// Not queued: its shard cannot take signals now (the others of the request were
        /// queued). Send it again after the Retry-After.
        case unavailable
    }

    public var index: Int
    /// The trace the item's pass is recorded under: the producer's `trace_id`, or
    /// `ark-<entry id>` as Kyle assigns it.
    public var traceID: String
    public var status: Status
    /// Why it was rejected (Kyle records the same reasons in its rejected pass), or why it
    /// conflicts.
    public var reasons: [String]

    public var accepted: Bool { status == .accepted }

    public init(index: Int, traceID: String, status: Status, reasons: [String]) {
        self.index = index
        self.traceID = traceID
        self.status = status
        self.reasons = reasons
    }
}

/// One item as Kyle's validator sees it, before it is queued.
public struct CheckedItem: Sendable, Equatable {
    /// Why Kyle will reject it (empty: valid).
    public var reasons: [String]
    /// The producer's trace id of a valid item that names one (TRACE_ID_ENABLED), and the
    /// digest of its content (`ContentDigest`): what the intake claims, so the same trace id
    /// with other content is refused.
    public var claim: (traceID: String, digest: String)?

    public static func == (a: CheckedItem, b: CheckedItem) -> Bool {
        a.reasons == b.reasons && a.claim?.traceID == b.claim?.traceID && a.claim?.digest == b.claim?.digest
    }
}

/// Why a body is not a signal or a batch of signals at all (nothing is enqueued).
public struct IntakeError: Error, Sendable, Equatable {
    public var status: Int
    public var code: String
    public var message: String
}

/// Reads a `POST /v1/signals` body: one JSON object (one signal) or an array of up to
/// 1,000 items, each at most ARK_MAX_SIGNAL_BYTES. Each item is checked by Kyle's own validator for an immediate answer, and
/// every item, valid or not, is forwarded byte for byte to `ark:kyle`: Kyle validates it
/// again, and an invalid one becomes a rejected pass with its reasons, recorded like any
/// other (nothing a client sends is dropped unrecorded).
public struct SignalIntake: Sendable {
    let validator: SignalValidator
    let maxBatch: Int
    /// TRACE_ID_ENABLED=false: Kyle ignores producer trace ids, and so do we.
    let producerTraceIDs: Bool

    public init(maxSignalBytes: Int, maxBatch: Int = ARKConfig.apiMaxBatch, producerTraceIDs: Bool = true) {
        validator = SignalValidator(maxPayloadBytes: maxSignalBytes)
        self.maxBatch = maxBatch
        self.producerTraceIDs = producerTraceIDs
    }

    /// The items of a body, each as its own bytes, and whether the body was a single object.
    public func split(_ body: [UInt8]) throws(IntakeError) -> (items: [[UInt8]], single: Bool) {
        do {
            return try body.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                switch try r.peekKind() {
                case .object:
                    let start = r.offset
                    try r.skipValue()
                    let end = r.offset
                    try r.end()
                    try checkSize(end - start, index: 0)
                    return ([Array(buf[start..<end])], true)
                case .array:
                    try r.beginArray()
                    var items: [[UInt8]] = []
                    var first = true
                    while try r.nextElement(first: first) {
                        first = false
                        guard items.count < maxBatch else {
                            throw IntakeError(status: 400, code: "batch_too_large", message: "a batch holds at most \(maxBatch) signals; split it into several requests")
                        }
                        r.skipWhitespace()
                        let start = r.offset
                        try r.skipValue()
                        try checkSize(r.offset - start, index: items.count)
                        items.append(Array(buf[start..<r.offset]))
                    }
                    try r.end()
                    guard !items.isEmpty else {
                        throw IntakeError(status: 400, code: "empty_batch", message: "the batch is empty: send one signal object or an array of 1 to \(maxBatch)")
                    }
                    return (items, false)
                case let kind:
                    throw IntakeError(status: 400, code: "not_a_signal", message: "the body is a JSON \(kind.rawValue): send one signal object or an array of signal objects")
                }
            }
        } catch let e as IntakeError {
            throw e
        } catch {
            throw IntakeError(status: 400, code: "invalid_json", message: "the body is not valid JSON: \(error)")
        }
    }

    /// A signal over ARK_MAX_SIGNAL_BYTES is refused at the door, with the whole request:
    /// forwarded, it would put up to the body limit into Redis for Kyle to reject.
    func checkSize(_ bytes: Int, index: Int) throws(IntakeError) {
        guard bytes <= validator.maxPayloadBytes else {
            throw IntakeError(status: 413, code: "signal_too_large",
                              message: "item \(index) is \(bytes) bytes; a signal is at most \(validator.maxPayloadBytes) bytes (ARK_MAX_SIGNAL_BYTES); nothing was enqueued")
        }
    }

    /// Checks each item as Kyle will, before it is queued.
    public func check(_ items: [[UInt8]], nowNs: Int64) -> [CheckedItem] {
        items.map { item in
            // A fallback no producer trace id can equal (a space is not a trace id character).
            switch validator.validate(item, fallbackTraceID: " ", nowNs: nowNs) {
            case .accepted(let event):
                guard producerTraceIDs, event.traceID != " ", let digest = ContentDigest.of(item) else { return CheckedItem(reasons: [], claim: nil) }
                return CheckedItem(reasons: [], claim: (event.traceID, digest))
            case .rejected(let reasons):
                return CheckedItem(reasons: reasons, claim: nil)
            }
        }
    }

    /// What became of each item: `queuedTraceIDs` are the trace ids Kyle gives the items that
    /// name none (`SignalQueue.enqueue`), in order; `conflicts` the items not queued because
    /// their trace id is held with other content, with what to say about each.
    public func results(_ checked: [CheckedItem], queuedTraceIDs: [String], conflicts: [Int: String] = [:], unavailable: [Int: String] = [:]) -> [IntakeItem] {
        zip(checked, queuedTraceIDs).enumerated().map { index, pair in
            let (c, derived) = pair
            if let why = conflicts[index] {
                return IntakeItem(index: index, traceID: c.claim?.traceID ?? derived, status: .conflict, reasons: [why])
            }
            if let why = unavailable[index] {
                return IntakeItem(index: index, traceID: c.claim?.traceID ?? "", status: .unavailable, reasons: [why])
            }
            guard c.reasons.isEmpty else { return IntakeItem(index: index, traceID: derived, status: .rejected, reasons: c.reasons) }
            return IntakeItem(index: index, traceID: c.claim?.traceID ?? derived, status: .accepted, reasons: [])
        }
    }
}
