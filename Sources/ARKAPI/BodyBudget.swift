// The memory bound on request bodies held at once across all requests (API_BODY_MEMORY_BYTES).

import Synchronization

/// The bytes of request bodies the API holds at once, across all requests
/// (API_BODY_MEMORY_BYTES): a request reserves what its body will cost before a byte of it
/// is read, and a request that does not fit is refused with 503 and Retry-After, so a burst
/// of large bodies queues at the clients instead of in this process's memory (OWASP API4).
final class BodyBudget: Sendable {
    let limit: Int
    private let used = Mutex(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// What a body of `length` bytes costs while it is handled: the body, read into one
    /// array of its exact size, and the signals split out of it (the body is dropped before
    /// they are queued). A body of unknown length (chunked) is charged for the largest one,
    /// and once more for the growth of its array.
    static func charge(contentLength: Int?, maxBodyBytes: Int) -> Int {
        contentLength.map { 2 * $0 } ?? 3 * maxBodyBytes
    }

    /// Takes `bytes` of the budget; false when they do not fit (nothing is taken).
    func reserve(_ bytes: Int) -> Bool {
        used.withLock { used in
            guard used + bytes <= limit else { return false }
            used += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        used.withLock { $0 -= bytes }
    }

    var inUse: Int { used.withLock { $0 } }
}
