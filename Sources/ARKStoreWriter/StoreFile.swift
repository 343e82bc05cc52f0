// The state store's file as every writer opens it: modes, pragmas and migrations.

import GRDBSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The state store's file as every writer opens it: directory mode 700 and file mode 600
/// made before SQLite touches them, WAL, `synchronous=NORMAL`, the page size, the busy wait
/// and the migrations.
public enum StoreFile {
    /// How long a statement waits for a lock another connection holds before it fails.
    public static let busyTimeoutMs = 10_000

    /// Creates the directory (mode 700) and the file (mode 600) before SQLite does, so the
    /// store is never readable by others; names the fix when it cannot.
    static func prepare(_ path: String) throws {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if !dir.isEmpty, let failure = makeDirectories(dir) {
            throw StateStoreError("cannot create the state directory \(dir): \(failure). Fix: create it writable for this user, or set ARK_STATE_DB")
        }
        if access(path, F_OK) != 0 {
            let fd = open(path, O_CREAT | O_WRONLY, 0o600)
            if fd < 0 { throw StateStoreError("cannot create \(path): \(String(cString: strerror(errno))). Fix: make \(dir.isEmpty ? "/" : dir) writable, or set ARK_STATE_DB") }
            close(fd)
        }
    }

    /// `mkdir -p` with mode 700 for what it creates; nil when `dir` exists, else the reason.
    public static func makeDirectories(_ dir: String) -> String? {
        var isDir = stat()
        if stat(dir, &isDir) == 0 { return (isDir.st_mode & S_IFMT) == S_IFDIR ? nil : "a file of that name is in the way" }
        if let slash = dir.lastIndex(of: "/"), slash != dir.startIndex, let failure = makeDirectories(String(dir[..<slash])) {
            return failure
        }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { return String(cString: strerror(errno)) }
        return nil
    }

    /// A new store's page size (an existing one keeps its own): a pass row is about 2 KB, so
    /// 4 KB pages held one row each and half of every page written (to the WAL, then again to
    /// the database) was empty.
    static let pageSize = 8192

    /// Opens the connection with the writer's pragmas and applies pending migrations. Two
    /// processes opening a new store at once race on switching the new file to WAL, which
    /// answers "locked" without waiting: the loser retries.
    static func connect(path: String, cacheKiB: Int, checkpointer: WALCheckpointer?) throws -> SQLiteConnection {
        var attempt = 0
        while true {
            do {
                let db = try SQLiteConnection(path: path)
                if checkpointer != nil {
                    // The checkpoint thread holds the write lock for a millisecond or so when
                    // it makes the WAL start over; SQLite's own busy wait would sleep 1, 2, then
                    // 5 ms. Poll finely for the first 2 ms, then every millisecond, up to the
                    // same 10 s.
                    sqlite3_busy_handler(db.handle, { _, tries in
                        usleep(tries < 20 ? 100 : 1000)
                        return tries < 20 + Int32(StoreFile.busyTimeoutMs) ? 1 : 0
                    }, nil)
                } else {
                    sqlite3_busy_timeout(db.handle, Int32(busyTimeoutMs))
                }
                try db.execute("PRAGMA page_size = \(Self.pageSize)")
                let mode = try db.text("PRAGMA journal_mode = WAL")
                guard mode == "wal" else { throw StateStoreError("the state store \(path) cannot use WAL mode (journal_mode is \(mode ?? "unknown"))") }
                try db.execute("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -\(cacheKiB); PRAGMA wal_autocheckpoint = 4000")
                // After the pragmas: setting wal_autocheckpoint installs SQLite's own hook,
                // which the checkpointer's replaces.
                checkpointer?.install(on: db.handle)
                try StoreSchema.migrate(db)
                return db
            } catch let e as StateStoreError {
                throw e
            } catch {
                attempt += 1
                if attempt >= 10 { throw StateStoreError("cannot open the state store \(path): \(error)") }
                usleep(useconds_t(20_000 * attempt))
            }
        }
    }
}
