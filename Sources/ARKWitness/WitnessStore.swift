// A witness's own storage on its host: keys, cosigned heads and the alarm.

import ARKCore
#if canImport(Glibc)
import Glibc
#endif

/// A witness's own storage, a directory on its host: its key (`witness_ed25519.pem`, mode
/// 600), the pinned log key (`log_key.pem`), every head it cosigned (`cosigned.jsonl`,
/// appended and synced) and its alarm (`alarm`, present while alarmed).
public struct WitnessStore: Sendable {
    public let directory: String
    public var keyPath: String { directory + "/witness_ed25519.pem" }
    public var logKeyPath: String { directory + "/log_key.pem" }
    public var cosignedPath: String { directory + "/cosigned.jsonl" }
    public var alarmPath: String { directory + "/alarm" }

    public init(directory: String) {
        self.directory = directory
    }

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Makes the directory (700) with a new witness key and the pinned log key.
    public func initialize(logKeyPEM: [UInt8]) throws(Problem) -> Ed25519.PublicKey {
        if access(keyPath, F_OK) == 0 { throw Problem("\(keyPath) exists: this directory is a witness already. Fix: choose another --state, or remove it deliberately") }
        let logKey: Ed25519.PublicKey
        do { logKey = try Ed25519.PublicKey(pem: logKeyPEM) } catch { throw Problem("the log key is not an Ed25519 public key (PEM): \(error)") }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw Problem("cannot create \(directory): \(String(cString: strerror(errno)))") }
        let key: Ed25519.PrivateKey
        do { key = try Ed25519.PrivateKey.generate() } catch { throw Problem("cannot make a key: \(error)") }
        try write(key.pem, to: keyPath, mode: 0o600)
        try write(logKey.pem, to: logKeyPath, mode: 0o644)
        return key.publicKey
    }

    public func key() throws(Problem) -> Ed25519.PrivateKey {
        var st = stat()
        guard stat(keyPath, &st) == 0 else { throw Problem("no witness key at \(keyPath). Fix: ark witness init --state \(directory) --log-key <the log's public key>") }
        guard st.st_mode & 0o077 == 0 else { throw Problem("the witness key \(keyPath) is readable by others. Fix: chmod 600 \(keyPath)") }
        do { return try Ed25519.PrivateKey(pem: try readFileBytes(keyPath)) } catch { throw Problem("the witness key \(keyPath) is unusable: \(error)") }
    }

    public func logKey() throws(Problem) -> Ed25519.PublicKey {
        do { return try Ed25519.PublicKey(pem: try readFileBytes(logKeyPath)) } catch { throw Problem("the pinned log key \(logKeyPath) is unusable: \(error)") }
    }

    /// Every cosigned head, oldest first (a torn last line is left out).
    public func cosigned() -> [AuditCosignature] {
        guard let bytes = try? readFileBytes(cosignedPath) else { return [] }
        return bytes.split(separator: UInt8(ascii: "\n")).compactMap { AuditCosignature(json: Array($0)) }
    }

    /// The last head cosigned.
    public func held() -> AuditCosignature? {
        guard let bytes = try? readFileBytes(cosignedPath) else { return nil }
        return bytes.split(separator: UInt8(ascii: "\n")).reversed().lazy.compactMap { AuditCosignature(json: Array($0)) }.first
    }

    public func append(_ c: AuditCosignature) throws(Problem) {
        try appendLine(c.json, to: cosignedPath)
    }

    public func alarm() -> WitnessAlarm? {
        guard let bytes = try? readFileBytes(alarmPath), let o = JSONScalars(bytes), let kind = o.string("kind").flatMap(WitnessAlarm.Kind.init(rawValue:)) else {
            return access(alarmPath, F_OK) == 0 ? WitnessAlarm(.unprovable, "the alarm file \(alarmPath) is unreadable", atNs: 0) : nil
        }
        return WitnessAlarm(kind, o.string("message") ?? "", atNs: o.int64("at_ns") ?? 0)
    }

    public func raise(_ a: WitnessAlarm) throws(Problem) {
        var w = JSONWriter(capacity: 256 + a.message.utf8.count)
        w.beginObject()
        w.key("kind"); w.string(a.kind.rawValue)
        w.key("message"); w.string(a.message)
        w.key("at_ns"); w.int(a.atNs)
        w.endObject()
        try write(w.bytes, to: alarmPath, mode: 0o644)
    }

    /// An operator of the witness host accepts the log as it is now (after a restore done on
    /// purpose): the alarm is cleared and the next head is cosigned as a first one. The old
    /// heads are kept, renamed.
    public func reset(nowNs: Int64) throws(Problem) {
        if access(cosignedPath, F_OK) == 0, rename(cosignedPath, cosignedPath + ".before-\(nowNs)") != 0 {
            throw Problem("cannot set \(cosignedPath) aside: \(String(cString: strerror(errno)))")
        }
        if unlink(alarmPath) != 0 && errno != ENOENT { throw Problem("cannot clear \(alarmPath): \(String(cString: strerror(errno)))") }
    }

    func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws(Problem) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Problem("cannot write \(path): \(String(cString: strerror(errno)))") }
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard n == bytes.count, synced, rename(tmp, path) == 0 else { throw Problem("cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    func appendLine(_ bytes: [UInt8], to path: String) throws(Problem) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Problem("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let line = bytes + [UInt8(ascii: "\n")]
        let n = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == line.count, fsync(fd) == 0 else { throw Problem("cannot append to \(path): \(String(cString: strerror(errno)))") }
    }
}
