// Who is writing a state store, across processes, so a restore can refuse.

import ARKCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who is writing a state store, across processes: every writer (Aletheia, the watchdog,
/// the canary controller, `ark run`) holds a shared flock on `<db>.lock` for as long as its
/// writer is open, and `ark restore` takes it exclusively without waiting, so it refuses
/// while anything writes, and a writer that starts during a restore waits for it to end.
/// The kernel drops a dead process's lock, so a crash never leaves the store locked.
public final class StoreWriterLock: @unchecked Sendable {
    private let fd: Int32
    private let exclusivePath: String?

    /// Stores this process holds exclusively (a restore): its own writers, opened to check
    /// the restored file, must not wait for themselves.
    private static let heldExclusively = Mutex<Set<String>>([])

    static func lockPath(_ storePath: String) -> String { storePath + ".lock" }

    private init(fd: Int32, exclusivePath: String?) {
        self.fd = fd
        self.exclusivePath = exclusivePath
    }

    deinit {
        if let exclusivePath { _ = Self.heldExclusively.withLock { $0.remove(exclusivePath) } }
        if fd >= 0 { close(fd) }  // closing the descriptor releases the flock
    }

    /// A writer's shared hold; waits while a restore holds the store.
    static func shared(_ storePath: String) throws -> StoreWriterLock {
        if heldExclusively.withLock({ $0.contains(storePath) }) { return StoreWriterLock(fd: -1, exclusivePath: nil) }
        let fd = try openLockFile(storePath)
        while flock(fd, LOCK_SH) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw StateStoreError("cannot lock \(lockPath(storePath)): \(reason)")
            }
        }
        return StoreWriterLock(fd: fd, exclusivePath: nil)
    }

    /// The store for this process alone, or nil when a writer holds it now.
    public static func exclusive(_ storePath: String) throws -> StoreWriterLock? {
        let fd = try openLockFile(storePath)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            close(fd)
            if busy { return nil }
            throw StateStoreError("cannot lock \(lockPath(storePath)): \(reason)")
        }
        heldExclusively.withLock { _ = $0.insert(storePath) }
        return StoreWriterLock(fd: fd, exclusivePath: storePath)
    }

    private static func openLockFile(_ storePath: String) throws -> Int32 {
        let path = lockPath(storePath)
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StateStoreError("cannot open \(path): \(String(cString: strerror(errno))). Fix: make its directory writable for this user")
        }
        return fd
    }
}
