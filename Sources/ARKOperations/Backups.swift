// Online backups of the state store, checked before they take their name, and restores.

import ARKCore
import ARKState
import ARKStoreWriter
import Foundation

public struct BackupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Online backups of the state store (DESIGN §4): `ark_state_backup_<ISO8601>.db` in the
/// backup directory, the newest `keep` kept; and restores that refuse a damaged file.
public enum Backups {
    public static let keep = 10

    public struct Made: Sendable {
        public var path: String
        public var bytes: Int
        public var passes: Int
        public var removed: [String]
    }

    /// The file name for a backup taken at `date`: ISO 8601's basic form, so it sorts by
    /// time and needs no quoting (`ark_state_backup_20261123T125000Z.db`).
    public static func fileName(at date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return BackupFiles.prefix + String(format: "%04d%02d%02dT%02d%02d%02dZ.db", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// Copies the live store with SQLite's backup API (consistent while Aletheia writes),
    /// checks the copy (integrity and the audit chain) before it takes its final name with
    /// mode 600, then removes all but the newest `keep` backups.
    public static func backup(_ store: StateStore, into directory: String, keep: Int = keep, at date: Date = Date()) throws -> Made {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw BackupError("cannot create the backup directory \(directory): \(error.localizedDescription). Fix: create it writable for this user, or set ARK_BACKUP_DIR")
        }
        let final = directory + "/" + fileName(at: date)
        guard !FileManager.default.fileExists(atPath: final) else { throw BackupError("\(final) exists already: one backup a second at most") }
        let partial = final + ".partial"
        try? FileManager.default.removeItem(atPath: partial)
        let fd = open(partial, O_CREAT | O_WRONLY | O_EXCL, 0o600)
        guard fd >= 0 else { throw BackupError("cannot create \(partial): \(String(cString: strerror(errno)))") }
        close(fd)
        do {
            try store.backup(to: partial)
            let passes = try check(partial)
            try FileManager.default.moveItem(atPath: partial, toPath: final)
            let bytes = (try FileManager.default.attributesOfItem(atPath: final)[.size] as? Int) ?? 0
            return Made(path: final, bytes: bytes, passes: passes, removed: try prune(directory, keep: keep))
        } catch {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: partial + suffix) }
            // SQLite's backup API reports a full disk as "not an error": say what it was.
            let needed = ["", "-wal"].reduce(Int64(0)) { sum, suffix in
                sum + ((try? FileManager.default.attributesOfItem(atPath: store.path + suffix)[.size] as? Int).map(Int64.init) ?? 0)
            }
            if let space = FileSystemSpace(path: directory), space.freeBytes < needed {
                throw BackupError("""
                    no room in \(directory): \(FileSystemSpace.describe(space.freeBytes)) free, the store needs up to \(FileSystemSpace.describe(needed)) \
                    (SQLite: \(error)). Fix: make room on that disk (each good backup keeps only the newest \(keep); move older copies off it), \
                    or set ARK_BACKUP_DIR to a disk with room
                    """)
            }
            throw error
        }
    }

    static func prune(_ directory: String, keep: Int) throws -> [String] {
        let all = BackupFiles.list(directory)
        let old = Array(all.dropLast(keep))
        for path in old { try FileManager.default.removeItem(atPath: path) }
        return old
    }

    /// Opens `path` read-only and checks it: SQLite's integrity check and the audit chain.
    /// Returns its pass count.
    @discardableResult
    public static func check(_ path: String, publicKey: Ed25519.PublicKey? = nil) throws -> Int {
        let copy: StateStore
        do {
            copy = try StateStore(path: path, readOnly: true)
        } catch {
            throw BackupError("\(path) is not a readable ARK state store: \(error)")
        }
        let integrity: String
        do {
            integrity = try copy.integrityCheck()
        } catch {
            throw BackupError("\(path) is not a readable ARK state store: \(error)")
        }
        guard integrity == "ok" else { throw BackupError("\(path) fails SQLite's integrity check: \(integrity)") }
        let audit = try copy.verifyAudit(publicKey: publicKey)
        if let broken = audit.firstBroken {
            throw BackupError("\(path) has a broken audit log at \(broken.seq >= 0 ? "record #\(broken.seq)" : "") \(broken.traceID.isEmpty ? "" : "(\(broken.traceID))"): \(broken.problem)")
        }
        return try copy.passCount()
    }

    public struct Restored: Sendable {
        public var passes: Int
        /// Where the store it replaced now is.
        public var previous: String?
        /// The `restore` checkpoint signed over the restored log (nil without a key).
        public var checkpoint: AuditCheckpoint?
    }

    /// Replaces the store at `statePath` with the backup `file`, which is checked first (a
    /// damaged one is refused and nothing changes). The current store is moved aside
    /// (`<db>.before-restore-<ISO8601>`) and put back if the restored one does not open.
    /// Refused while any process has the store open for writing (StoreWriterLock): a running
    /// Aletheia would keep writing to the moved file. Writers that start meanwhile wait.
    /// With `signer`, the restored log's head is signed as a `restore` checkpoint (in the
    /// store and the checkpoint file), so the records the restore discarded are known to be
    /// discarded, not deleted, and Aletheia extends the restored log.
    public static func restore(_ file: String, to statePath: String, signer: AuditSigner? = nil, at date: Date = Date()) throws -> Restored {
        guard FileManager.default.fileExists(atPath: file) else { throw BackupError("\(file) does not exist") }
        try check(file, publicKey: signer?.key.publicKey)
        guard let hold = try StoreWriterLock.exclusive(statePath) else {
            throw BackupError("ARK is writing \(statePath) (Aletheia, the watchdog, ark run or the canary has it open): nothing was changed. Fix: stop ARK first (deployment/stop_production.sh), then restore")
        }
        defer { withExtendedLifetime(hold) {} }
        let fm = FileManager.default
        let stamp = String(fileName(at: date).dropFirst(BackupFiles.prefix.count).dropLast(3))
        let aside = statePath + ".before-restore-" + stamp
        var moved: [(String, String)] = []
        if fm.fileExists(atPath: statePath) {
            for suffix in ["", "-wal", "-shm"] where fm.fileExists(atPath: statePath + suffix) {
                try fm.moveItem(atPath: statePath + suffix, toPath: aside + suffix)
                moved.append((aside + suffix, statePath + suffix))
            }
        }
        do {
            try fm.copyItem(atPath: file, toPath: statePath)
            chmod(statePath, 0o600)
            let restored = try StateStore(path: statePath)  // WAL mode and any newer migrations
            guard try restored.journalMode() == "wal" else { throw BackupError("the restored store did not open in WAL mode") }
            let checkpoint = try signer.map { try OutcomeWriter(path: statePath, signer: $0).signHead(kind: .restore, note: "restored " + (file.split(separator: "/").last.map(String.init) ?? file)) }
            return Restored(passes: try restored.passCount(), previous: moved.isEmpty ? nil : aside, checkpoint: checkpoint)
        } catch {
            for suffix in ["", "-wal", "-shm"] { try? fm.removeItem(atPath: statePath + suffix) }
            for (from, to) in moved { try? fm.moveItem(atPath: from, toPath: to) }
            throw BackupError("restore failed, the previous store is back in place: \(error)")
        }
    }
}
