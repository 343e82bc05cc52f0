// How backups of the state store are named and found.

import Foundation

/// How backups of the state store are named in the backup directory, shared by `ark backup`
/// (which makes and prunes them) and the metrics server (which reports the newest one's age).
public enum BackupFiles {
    public static let prefix = "ark_state_backup_"

    /// The backups in `directory`, oldest first (the names sort by time).
    public static func list(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(".db") }.sorted().map { directory + "/" + $0 }
    }

    /// When the newest backup was written (Unix seconds); nil when there is none.
    public static func newestTimestamp(in directory: String) -> Double? {
        guard let newest = list(directory).last,
              let date = try? FileManager.default.attributesOfItem(atPath: newest)[.modificationDate] as? Date else { return nil }
        return date.timeIntervalSince1970
    }
}
