// A deadline on a request's work: 503 with Retry-After when Redis or the store is too slow.

import Synchronization

/// Runs `operation`, but answers after `timeout` at the latest: a Redis or SQLite call
/// that hangs (hiredis and SQLite block, and cannot be cancelled) must not hang the
/// client's request with it. The operation goes on in the background and its result is
/// dropped; `onTimeout` is the error the request gets.
func withDeadline<T: Sendable>(_ timeout: Duration, onTimeout: APIError, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let settled = Once()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let timer = Task {
            try await Task.sleep(for: timeout)
            if settled.claim() { continuation.resume(throwing: onTimeout) }
        }
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            timer.cancel()
            if settled.claim() { continuation.resume(with: result) }
        }
    }
}

/// True for the first caller only: whichever of the work and the timer ends first answers.
final class Once: Sendable {
    private let done = Mutex(false)
    func claim() -> Bool { done.withLock { let first = !$0; $0 = true; return first } }
}
