// The outcome writer's signed heads: signing when due, publishing, and refusing to sign over a
// changed log.

import ARKCore

extension OutcomeWriter {
    /// Signs the head `tree` when a signer is set, a checkpoint is due, and the tree has
    /// grown since the newest checkpoint; the row goes into this transaction.
    func signIfDue(_ tree: Merkle.Frontier, nowNs: Int64) throws -> AuditCheckpoint? {
        guard let signer, schedule?.isDue(nowNs: nowNs) == true else { return nil }
        guard try statements.newestCheckpointSize() != tree.size, tree.size > 0 else {
            schedule?.signed()
            return nil
        }
        let c: AuditCheckpoint
        do {
            c = try signer.sign(size: tree.size, root: tree.root, timeNs: nowNs)
        } catch {
            checkpointFailures.increment()
            return nil
        }
        try statements.insert(c)
        schedule?.signed()
        return c
    }

    /// Appends a committed checkpoint to the checkpoint file, and keeps it for `takeSigned`.
    /// A file that cannot be written loses no record (the store has the checkpoint, and the
    /// next one covers all before it): it is counted, for the alert.
    func publish(_ c: AuditCheckpoint) {
        do {
            try signer?.publish(c)
        } catch {
            checkpointFailures.increment()
        }
        unpublished = c
    }

    /// Signs the head as it is now, due or not: `ark restore` marks with a `restore`
    /// checkpoint that the log starts again from the restored copy.
    public func signHead(kind: AuditCheckpoint.Kind, note: String) throws -> AuditCheckpoint {
        guard let signer else { throw StateStoreError("no audit key to sign with") }
        lock.lock()
        defer { lock.unlock() }
        let c: AuditCheckpoint = try connection.inImmediateTransaction {
            let tree = try statements.loadTree(path: path)
            let c = try signer.sign(kind: kind, size: tree.size, root: tree.root, timeNs: wallClockNanoseconds(), note: note)
            try statements.insert(c)
            return c
        }
        publish(c)
        return c
    }

    /// Signs a checkpoint now if one is due and the tree grew (Aletheia asks after every read,
    /// so the newest records are signed within the interval even when no batch follows): a
    /// look at the clock when nothing waits. `force`: whatever the interval (at shutdown).
    public func checkpointIfDue(force: Bool = false) throws {
        guard signer != nil else { return }
        lock.lock()
        defer { lock.unlock() }
        if force { schedule?.force() }
        guard schedule?.isDue(nowNs: wallClockNanoseconds()) == true else { return }
        let signed = try connection.inImmediateTransaction { try signIfDue(try statements.loadTree(path: path), nowNs: wallClockNanoseconds()) }
        if let signed { publish(signed) }
    }

    /// The newest checkpoint this writer signed since the last call, for publishing beyond
    /// the host (Aletheia sets it in Redis).
    public func takeSigned() -> AuditCheckpoint? {
        lock.lock()
        defer { lock.unlock() }
        defer { unpublished = nil }
        return unpublished
    }

    /// Gives back a checkpoint `takeSigned` handed out that could not be published, unless a
    /// newer one came meanwhile.
    public func keepUnpublished(_ c: AuditCheckpoint) {
        lock.lock()
        defer { lock.unlock() }
        if unpublished == nil { unpublished = c }
    }

    /// Refuses to extend a log that is no longer what `published` (the newest checkpoint
    /// kept outside the store) signed: rows deleted since, or the tree's nodes or newest
    /// leaves changed. Aletheia checks this before it signs anything.
    public func checkHead(against published: AuditCheckpoint, source: String) throws {
        lock.lock()
        defer { lock.unlock() }
        let reader = AuditReader(connection: connection)
        let size = try reader.treeSize()
        guard published.size <= size else {
            throw StateStoreError("the audit log of \(path) has \(size) leaves, but \(source) signed \(published.size) at time_ns \(published.timeNs): the newest \(published.size - size) record(s) were deleted. Aletheia will not sign over it. Fix: run ark verify-audit; restore the newest backup with ark restore (which signs the restored head)")
        }
        let root = try reader.root(size: published.size)
        guard root == published.root else {
            throw StateStoreError("the audit log of \(path) does not give the root that \(source) signed at size \(published.size) (time_ns \(published.timeNs)): it was altered. Aletheia will not sign over it. Fix: run ark verify-audit to find the record; restore a backup with ark restore")
        }
    }
}
