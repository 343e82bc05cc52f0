// WAL checkpoints on a thread of their own, off the writer's commits.

import ARKCore
import GRDBSQLite
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Moves WAL checkpoints off the writer's commits. SQLite's own auto-checkpoint runs inside
/// the COMMIT that crosses its threshold: copying a WAL of 4,000 pages and syncing the
/// database took about 50 ms there, every 0.6 s at 1,000 passes/s, and every signal queued
/// behind that commit waited for it. Here the writer's WAL hook only notes the WAL's size and
/// wakes a thread of our own, which checkpoints PASSIVE on a connection of its own while the
/// writer goes on appending.
final class WALCheckpointer: @unchecked Sendable {
    let path: String
    /// Checkpoint once the WAL holds this many frames (pages)...
    let frameThreshold: Int32
    /// ...or at least this often when anything was written.
    let intervalNs: Int64
    /// Past this many frames the WAL is made to start over (see `run`).
    var restartFrames: Int32 { frameThreshold * 4 }
    private let condition = ConditionLock()
    // Guarded by `condition`.
    private var framesSeen: Int32 = 0
    private var wanted = false
    private var stopping = false
    private let logger = Logger(label: "ark.state.checkpoint")

    init(path: String, frameThreshold: Int32, intervalNs: Int64) {
        self.path = path
        self.frameThreshold = frameThreshold
        self.intervalNs = intervalNs
    }

    /// Installs the hook on a connection (readers never commit, so every connection may have
    /// it). It replaces SQLite's auto-checkpoint on that connection.
    func install(on connection: OpaquePointer?) {
        sqlite3_wal_hook(connection, { context, _, _, frames in
            Unmanaged<WALCheckpointer>.fromOpaque(context!).takeUnretainedValue().committed(walFrames: frames)
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Called by SQLite on the writer's thread after each commit: cheap, never blocks on I/O.
    private func committed(walFrames: Int32) {
        condition.lock()
        framesSeen = walFrames
        if walFrames >= frameThreshold && !wanted {
            wanted = true
            condition.signal()
        }
        condition.unlock()
    }

    func start() {
        startThread(name: "ark-wal-checkpoint") { [self] in run() }
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        var connection: OpaquePointer?
        guard sqlite3_open_v2(path, &connection, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
            logger.error("cannot open a checkpoint connection; SQLite checkpoints inside commits instead", metadata: ["path": .string(path)])
            sqlite3_close(connection)
            return
        }
        defer { sqlite3_close(connection) }
        // A connection learns the file is in WAL mode from its first read; until then a
        // checkpoint on it does nothing at all.
        // RESTART holds the write lock while it waits for readers still on the old WAL: give
        // up after about 5 ms (BUSY, tried again next round) rather than stall the writer
        // behind a long query.
        sqlite3_busy_handler(connection, { _, tries in
            guard tries < 20 else { return 0 }
            usleep(250)
            return 1
        }, nil)
        if sqlite3_exec(connection, "PRAGMA schema_version", nil, nil, nil) != SQLITE_OK {
            logger.error("cannot read the store on the checkpoint connection; SQLite checkpoints inside commits instead", metadata: [
                "path": .string(path), "error": .string(String(cString: sqlite3_errmsg(connection))),
            ])
            return
        }
        var lastProblemNs: Int64 = 0
        while true {
            condition.lock()
            let deadline = monotonicNanoseconds() + intervalNs
            while !wanted && !stopping {
                if !condition.wait(untilMonotonicNs: deadline) { break }
            }
            let frames = framesSeen
            wanted = false
            let stop = stopping
            condition.unlock()
            if stop { return }
            guard frames > 0 else { continue }
            var walFrames: Int32 = 0
            var copied: Int32 = 0
            var rc = sqlite3_wal_checkpoint_v2(connection, "main", SQLITE_CHECKPOINT_PASSIVE, &walFrames, &copied)
            // The writer starts the WAL over only when a checkpoint has copied all of it, which
            // a writer that commits during every checkpoint never sees: the WAL grew 35 MB a
            // second at 1,000 passes/s. Past `restartFrames`, a RESTART copies what the
            // PASSIVE left (a few commits' pages) holding the write lock, and the next commit
            // starts the WAL over.
            if rc == SQLITE_OK && walFrames >= restartFrames {
                rc = sqlite3_wal_checkpoint_v2(connection, "main", SQLITE_CHECKPOINT_RESTART, &walFrames, &copied)
            }
            // BUSY: another connection is checkpointing, or a reader holds an old snapshot;
            // the next round catches up.
            if rc != SQLITE_OK && rc != SQLITE_BUSY {
                let now = monotonicNanoseconds()
                if now - lastProblemNs >= 60_000_000_000 {
                    lastProblemNs = now
                    logger.warning("WAL checkpoint failed; the WAL grows until one succeeds", metadata: [
                        "path": .string(path), "error": .string(String(cString: sqlite3_errmsg(connection))),
                    ])
                }
            }
            // A burst of commits must not turn into back-to-back checkpoints of a few pages.
            usleep(20_000)
        }
    }
}
