// The in-flight records by which a stage finds the entry that killed a process.

import ARKCore

/// How a stage finds the entry that killed a process. A stage that takes over entries from
/// a consumer that died or hung (XAUTOCLAIM, a quarantined peer, a dead process on this
/// host) handles them one at a time, and before each it records which entry it is on in
/// `ark:inflight:<group>` (field: its consumer name). A successor that finds such a record
/// whose consumer is dead (or idle past ARK_CLAIM_IDLE_MS) with that entry still pending on
/// it knows exactly which entry was in hand: it counts a death against that entry
/// (`ark:deaths:<group>`), and takes over only that entry, on its own, first. After
/// ARK_MAX_DELIVERIES deaths the entry is dead-lettered unprocessed, and the rest of the
/// dead consumer's entries, never charged for its deaths, go through.
/// Normal batches pay nothing for this: records are written only for taken-over entries.
public struct SuspectEntry: Sendable, Equatable {
    public var entry: StreamEntry
    /// Processes that died or hung while handling this entry alone.
    public var deaths: Int
}

extension StreamBus {
    public var inFlightKey: String { shard.inFlight(group: group) }
    public var deathsKey: String { shard.deaths(group: group) }

    /// `<stream>\n<id>`, and `\n<index>` for an event of an envelope: an envelope's events
    /// handled alone are handled in order, so the record also says every event before it was settled.
    static func recordValue(_ entry: StreamEntry) -> String {
        let base = entry.stream + "\n" + entry.id
        guard let slot = entry.envelope else { return base }
        return base + "\n" + String(slot.index)
    }

    /// Says, before this consumer handles `entry` alone, that it is the one in hand.
    public func markInFlight(_ entry: StreamEntry) throws(RedisError) {
        let reply = try connection.command(["HSET", .text(inFlightKey), .text(consumer), .text(Self.recordValue(entry))])
        if case .error(let e) = reply { throw .server(e) }
    }

    /// The entry in hand is out of hand without a death. `resolved`: it was committed or
    /// dead-lettered, so its count of deaths goes too (else it stays pending, and its deaths
    /// still count when it is retried).
    public func clearInFlight(_ entry: StreamEntry, resolved: Bool) throws(RedisError) {
        var commands: [[RedisArg]] = [["HDEL", .text(inFlightKey), .text(consumer)]]
        if resolved { commands.append(["HDEL", .text(deathsKey), .text(Self.recordValue(entry))]) }
        let replies = try connection.pipeline(commands)
        for r in replies { if case .error(let e) = r { throw .server(e) } }
    }

    /// Deletes another consumer's in-flight record only if it still names what was read, so
    /// a record it wrote meanwhile for its next entry survives.
    static let deleteIfUnchanged = """
        if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
        return 0
        """

    /// The entries other consumers had in hand alone when they died or hung, each taken over
    /// by this consumer (XCLAIM) with its count of deaths. `isDead` says whether a consumer
    /// is known dead (a process of this host that exited); others count as dead when the
    /// entry has been idle `minIdleMs`. Exactly one successor counts each death: the one
    /// whose conditional delete removed the record.
    public func takeOverSuspects(minIdleMs: Int, isDead: (String) -> Bool) throws(RedisError) -> [SuspectEntry] {
        let records = try connection.hashEntries(inFlightKey)
        var out: [SuspectEntry] = []
        for (owner, raw) in records where owner != consumer {
            let value = String(decoding: raw, as: UTF8.self)
            let parts = value.split(separator: "\n", maxSplits: 2).map(String.init)
            let deleteStale: [RedisArg] = ["EVAL", .text(Self.deleteIfUnchanged), "1", .text(inFlightKey), .text(owner), .text(value)]
            let index = parts.count == 3 ? Int(parts[2]) : nil
            guard parts.count == 2 || (index ?? -1) >= 0 else {
                _ = try connection.command(deleteStale)
                continue
            }
            let (stream, id) = (parts[0], parts[1])
            let pending = try connection.command(["XPENDING", .text(stream), .text(group), .text(id), .text(id), "1", .text(owner)])
            if case .error(let e) = pending, !e.hasPrefix("NOGROUP") { throw .server(e) }
            guard let row = pending.array?.first?.array, row.count >= 4, let idle = row[2].integer else {
                // Committed (or taken over) since: the record is stale.
                _ = try connection.command(deleteStale)
                continue
            }
            let dead = isDead(owner)
            guard dead || idle >= minIdleMs else { continue }  // still in hand, perhaps
            guard try connection.command(deleteStale).integer == 1 else { continue }  // another successor counted it
            let deaths = try connection.command(["HINCRBY", .text(deathsKey), .text(value), "1"]).integer ?? 1
            let claimed = try connection.command(["XCLAIM", .text(stream), .text(group), .text(consumer), dead ? "0" : .int(minIdleMs), .text(id)])
            if case .error(let e) = claimed { throw .server(e) }
            for e in claimed.array ?? [] where e != .null {
                var events: [StreamEntry] = []
                try Self.appendEntry(e, stream: stream, deliveries: max(2, Int(row[3].integer ?? 1) + 1), to: &events)
                guard let index else {
                    out += events.map { SuspectEntry(entry: $0, deaths: Int(deaths)) }
                    continue
                }
                // The dead consumer settled the envelope's events before this one; this one
                // is the suspect, and the rest follow it, each alone too.
                progress.settledBefore(index, stream: stream, id: id)
                for event in events where (event.envelope?.index ?? 0) >= index {
                    out.append(SuspectEntry(entry: event, deaths: event.envelope?.index == index ? Int(deaths) : 0))
                }
            }
        }
        return out
    }

    /// The consumers of the group on `stream` with entries pending (XINFO CONSUMERS).
    public func consumersWithPending(_ stream: String) throws(RedisError) -> [(name: String, pending: Int)] {
        let reply = try connection.command(["XINFO", "CONSUMERS", .text(stream), .text(group)])
        if case .error(let e) = reply {
            if e.hasPrefix("NOGROUP") || e.contains("no such key") { return [] }
            throw .server(e)
        }
        return (reply.array ?? []).compactMap { c in
            guard let items = c.array else { return nil }
            var name: String?
            var pending = 0
            var i = 0
            while i + 1 < items.count {
                switch items[i].string {
                case "name": name = items[i + 1].string
                case "pending": pending = Int(items[i + 1].integer ?? 0)
                default: break
                }
                i += 2
            }
            return name.map { ($0, pending) }
        }
    }

    /// Removes a consumer that has nothing pending from the group, so dead processes do not
    /// pile up in XINFO CONSUMERS.
    public func forgetConsumer(_ stream: String, _ name: String) throws(RedisError) {
        let reply = try connection.command(["XGROUP", "DELCONSUMER", .text(stream), .text(group), .text(name)])
        if case .error(let e) = reply, !e.hasPrefix("NOGROUP") { throw .server(e) }
    }
}

/// Whether a consumer named as an `InstanceName` of `stage` is a process of `host` that has
/// exited. Consumers of other hosts, or named otherwise, are never called dead here: their
/// entries wait for ARK_CLAIM_IDLE_MS as before.
public func isExitedLocalConsumer(_ name: String, stage: Stage, host: String, hasExited: (Int32) -> Bool = { processHasExited($0) }) -> Bool {
    guard let parsed = InstanceName(parsing: name), parsed.stage == stage, parsed.host == host else { return false }
    return hasExited(parsed.pid)
}
