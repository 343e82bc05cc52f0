// Log lines as JSON objects on standard error.

import ARKCore
import Logging

/// One JSON object per line on standard error (which the start script and the systemd units
/// send to `ARK_LOG_DIR/<process>.log`): `ts` (UTC, ms), `level`, `logger`, then `agent`,
/// `instance` and `trace_id` when present, `msg`, and the rest of the metadata. Values of
/// keys that name a secret are never written.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    let label: String
    let write: @Sendable ([UInt8]) -> Void

    public init(label: String, write: @escaping @Sendable ([UInt8]) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public static let standardError: @Sendable ([UInt8]) -> Void = { bytes in
        bytes.withUnsafeBytes { p in
            var offset = 0
            while offset < p.count {
                let n = systemWrite(2, p.baseAddress! + offset, p.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Keys whose values stay out of the logs.
    static func isSecret(_ key: String) -> Bool {
        let k = key.lowercased()
        return ["secret", "password", "passwd", "token", "api_key", "apikey", "authorization", "jwt"].contains { k.contains($0) }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let m = event.metadata { all.merge(m) { $1 } }
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("ts"); w.string(iso8601(wallClockNanoseconds()))
        w.key("level"); w.string(event.level.rawValue)
        w.key("logger"); w.string(label)
        for key in ["agent", "instance", "trace_id"] {
            if let v = all.removeValue(forKey: key) { w.key(dynamic: key); w.string(Self.flatten(v)) }
        }
        w.key("msg"); w.string(event.message.description)
        for key in all.keys.sorted() {
            w.key(dynamic: key)
            w.string(Self.isSecret(key) ? "[redacted]" : Self.flatten(all[key]!))
        }
        w.endObject()
        var line = w.bytes
        line.append(UInt8(ascii: "\n"))
        write(line)
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array(let a): "[" + a.map(flatten).joined(separator: ", ") + "]"
        case .dictionary(let d): "{" + d.keys.sorted().map { "\($0): \(flatten(d[$0]!))" }.joined(separator: ", ") + "}"
        }
    }
}

#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif
