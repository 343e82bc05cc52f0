// Free and total space of a file system, as a writer sees it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Free and total bytes of the file system holding `path`, as an unprivileged writer sees
/// them (`f_bavail`); nil when it cannot be asked.
public struct FileSystemSpace: Sendable, Equatable {
    public var freeBytes: Int64
    public var totalBytes: Int64

    public init(freeBytes: Int64, totalBytes: Int64) {
        self.freeBytes = freeBytes
        self.totalBytes = totalBytes
    }

    public init?(path: String) {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return nil }
        freeBytes = Int64(st.f_bavail) * Int64(st.f_frsize)
        totalBytes = Int64(st.f_blocks) * Int64(st.f_frsize)
    }

    /// `12.3 MB` style, for operators.
    public static func describe(_ bytes: Int64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        guard unit > 0 else { return "\(bytes) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}
