// Every command on the control-plane keys: heartbeats, the quarantine list and the canary route.

import ARKCore

/// Every command on the control-plane keys in Redis: the heartbeats (`ark:heartbeats`), the
/// quarantine list (`ark:quarantine`) and the canary route (`ark:canary:route` and the
/// versions each routing Kyle applied). The agents, the watchdog, the canary controller, the
/// monitoring and the bench all go through it, so each key's format has one reader and one
/// writer (docs/architecture.md §2).
public struct ControlPlane {
    public let connection: RedisConnection

    public init(_ connection: RedisConnection) {
        self.connection = connection
    }

    // MARK: heartbeats

    /// Every instance's newest heartbeat; an unreadable one is left out.
    public func heartbeats() throws(RedisError) -> [HeartbeatRecord] {
        try connection.hashEntries(Streams.heartbeats).compactMap { HeartbeatRecord(json: $0.value) }
    }

    /// How many instances have a heartbeat (readable or not).
    public func heartbeatCount() throws(RedisError) -> Int {
        Int(try checked(connection.command(["HLEN", .text(Streams.heartbeats)])).integer ?? 0)
    }

    public func publish(_ beat: HeartbeatRecord) throws(RedisError) {
        _ = try checked(connection.command(["HSET", .text(Streams.heartbeats), .text(beat.instance), .bytes(beat.json)]))
    }

    /// Removes an instance's heartbeat: it stopped, or the watchdog forgets it.
    public func forgetHeartbeat(of instance: String) throws(RedisError) {
        _ = try checked(connection.command(["HDEL", .text(Streams.heartbeats), .text(instance)]))
    }

    // MARK: quarantine

    /// The quarantined instances with what the watchdog said of each; an unreadable entry is
    /// left out of the entries but still listed by `quarantinedNames`.
    public func quarantined() throws(RedisError) -> [(instance: String, entry: QuarantineEntry)] {
        try connection.hashEntries(Streams.quarantine).compactMap { f in QuarantineEntry(json: f.value).map { (f.field, $0) } }
    }

    public func quarantinedNames() throws(RedisError) -> Set<String> {
        Set((try checked(connection.command(["HKEYS", .text(Streams.quarantine)])).array ?? []).compactMap(\.string))
    }

    public func quarantine(_ instance: String, _ entry: QuarantineEntry) throws(RedisError) {
        _ = try checked(connection.command(["HSET", .text(Streams.quarantine), .text(instance), .bytes(entry.json)]))
    }

    /// Takes an instance off the list: it takes entries again.
    public func release(_ instance: String) throws(RedisError) {
        _ = try checked(connection.command(["HDEL", .text(Streams.quarantine), .text(instance)]))
    }

    // MARK: the canary route

    /// The route the baseline Kyle applies (missing or malformed: no canary).
    public func canaryRoute() throws(RedisError) -> CanaryRoute {
        var fields: [String: String] = [:]
        for f in try connection.hashEntries(Streams.canaryRoute) { fields[f.field] = String(decoding: f.value, as: UTF8.self) }
        return CanaryRoute(fields: fields)
    }

    /// Sets the share of `runID` under the next version, and returns it.
    public func setCanaryRoute(percent: Double, runID: String) throws(RedisError) -> CanaryRoute {
        let route = CanaryRoute(percent: percent, version: try canaryRoute().version + 1, runID: runID)
        _ = try checked(connection.command(["HSET", .text(Streams.canaryRoute)] + route.fields.flatMap { [RedisArg.text($0.0), .text($0.1)] }))
        return route
    }

    /// A routing Kyle says which route version it applies.
    public func confirmRoute(_ version: Int64, by instance: String) throws(RedisError) {
        _ = try checked(connection.command(["HSET", .text(Streams.canaryRouteSeen), .text(instance), .text(String(version))]))
    }

    /// The route version each routing Kyle last confirmed, by instance.
    public func routeConfirmations() throws(RedisError) -> [String: Int64] {
        var seen: [String: Int64] = [:]
        for f in try connection.hashEntries(Streams.canaryRouteSeen) { seen[f.field] = Int64(String(decoding: f.value, as: UTF8.self)) }
        return seen
    }

    /// Removes the route and its confirmations: no run is in progress.
    public func clearCanaryRoute() throws(RedisError) {
        // One key a command: on a cluster the two live in different slots.
        _ = try checked(connection.command(["DEL", .text(Streams.canaryRoute)]))
        _ = try checked(connection.command(["DEL", .text(Streams.canaryRouteSeen)]))
    }

    private func checked(_ reply: RedisValue) throws(RedisError) -> RedisValue {
        if case .error(let e) = reply { throw RedisError.server(e) }
        return reply
    }
}
