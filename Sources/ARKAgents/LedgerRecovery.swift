// The books rebuilt from the audit when a shard's Redis lost them.

import ARKBus
import ARKCore
import ARKRisk
import ARKStoreWriter
#if canImport(Glibc)
import Glibc
#endif

/// The books from the audit: the fold of a store's sequenced executions, and the restore of a
/// shard whose Redis lost its books (its marker is gone). Kenny runs it before its next fill
/// when the store is on its host; Aletheia, which always has the store, within a second
/// (its tick); `ark book rebuild` on an operator's word.
public enum LedgerRecovery {
    /// Every sequenced execution the store's audit log holds, folded.
    public static func fold(storePath: String, startingEquity: Double) throws -> LedgerFold {
        let reader = try AuditReader(path: storePath)
        var fold = LedgerFold(startingEquity: startingEquity)
        try reader.sequencedEvents { _, e in fold.add(e) }
        return fold
    }

    /// Restores `shard`'s books that are missing or behind the audit when its marker is gone;
    /// nil when the marker is there (nothing to do), else the accounts written.
    public static func restoreIfLost(_ c: RedisConnection, shard: Shard, layout: ShardLayout, storePath: String, startingEquity: Double,
                                     by: String) throws -> [String]? {
        guard try !LedgerBooks.isProven(c, shard: shard) else { return nil }
        let fold = try fold(storePath: storePath, startingEquity: startingEquity)
        return try LedgerBooks.restore(c, shard: shard, layout: layout, fold: fold, mode: .behind, by: by, nowNs: wallClockNanoseconds())
    }

    /// Whether a store file is on this host (Kenny restores only from one it can read).
    public static func storeIsHere(_ path: String) -> Bool {
        access(path, R_OK) == 0
    }
}
