import ARKBus
import ARKCore
import ARKProcess
import Foundation

/// A private Redis Cluster on loopback: `primaries` primaries, each with one replica, on
/// free TCP ports, each node in its own directory with append-only persistence, made with
/// `redis-cli --cluster create`. Node timeout 2 s, so a killed primary's replica takes over in
/// a few seconds; `cluster-require-full-coverage no`, so the other shards keep serving while
/// one is down. Started and stopped by pid.
public final class RedisCluster: @unchecked Sendable {
    public final class Node: @unchecked Sendable {
        public let host: String
        public let port: Int
        public let dir: String
        let password: String?
        var child: ChildProcess?

        init(host: String, port: Int, dir: String, password: String?) {
            self.host = host
            self.port = port
            self.dir = dir
            self.password = password
        }

        public var endpoint: RedisURL.Endpoint { .tcp(host: host, port: port) }
        public var isRunning: Bool { child?.isRunning ?? false }
        public var pid: pid_t { child?.pid ?? 0 }

        func start() throws {
            child = try ChildProcess(RedisServer.serverPath(), [
                "--port", String(port), "--bind", host, "--dir", dir, "--daemonize", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                "--cluster-require-full-coverage", "no", "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--maxmemory-policy", "noeviction",
            ] + (password.map { ["--requirepass", $0, "--masterauth", $0] } ?? []), environment: [:], logPath: dir + "/redis.log")
        }

        public func client() throws -> RedisConnection {
            let c = RedisConnection(url: RedisURL(endpoint: endpoint, password: password))
            try c.connect()
            return c
        }

        /// One command on this node alone (no redirects followed).
        public func ask(_ args: [RedisArg]) throws -> RedisValue {
            try client().command(args)
        }

        public func kill9() {
            child?.kill9()
            child = nil
        }

        public func restart() throws {
            if child == nil { try start() }
        }
    }

    public let dir: TempDir
    public let nodes: [Node]

    /// Seed URL naming every node (any one would do).
    public var urlString: String { "redis://" + (password.map { ":\($0)@" } ?? "") + nodes.map { "\($0.host):\($0.port)" }.joined(separator: ",") }
    /// Set when the nodes listen beyond loopback (Redis's protected mode wants one then).
    public let password: String?
    public var url: RedisURL { get throws { try RedisURL(parsing: urlString) } }

    /// `host`: the address every node binds and is known by (loopback by default; a veth
    /// address for agents in other network namespaces).
    /// `replicas` per primary: with 2, losing a primary leaves its promoted replica a replica
    /// of its own, so the shard's intake (confirmed by WAIT 1) stays open (docs/risk.md: Ledger and
    /// reconciliation, the topology to run).
    public init(primaries: Int = 3, replicas: Int = 1, host: String = "127.0.0.1") throws {
        dir = try TempDir("ark-cluster")
        password = host == "127.0.0.1" ? nil : "pw-" + String(UInt64.random(in: 0..<UInt64.max), radix: 36)
        var made: [Node] = []
        for i in 0..<(primaries * (1 + replicas)) {
            let d = dir.path + "/node\(i)"
            var attempt = 1
            while true {
                try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
                let n = Node(host: host, port: try Self.freeNodePort(), dir: d, password: password)
                try n.start()
                // Its own log says whether it listens: a PING could reach whoever else holds the port.
                func log() -> String { (try? String(contentsOfFile: d + "/redis.log", encoding: .utf8)) ?? "" }
                _ = waitFor(timeout: 10) { !n.isRunning || log().contains("Ready to accept connections") }
                if n.isRunning && waitFor(timeout: 10, { (try? n.ask(["PING"])) == .status("PONG") }) { made.append(n); break }
                n.kill9()
                // A port free when chosen can be bound by another process before the node
                // binds it (CI saw it once, right after the other suites' processes): another port.
                guard log().contains("Address already in use"), attempt < 5 else {
                    throw TestSetupError("cluster node \(n.port) did not start; see \(d)/redis.log")
                }
                attempt += 1
                try? FileManager.default.removeItem(atPath: d)
            }
        }
        nodes = made
        let create = try runCommand("/usr/bin/redis-cli", (password.map { ["-a", $0, "--no-auth-warning"] } ?? []) + ["--cluster", "create"] + nodes.map { "\($0.host):\($0.port)" } + ["--cluster-replicas", String(replicas), "--cluster-yes"], timeout: 60)
        guard create.code == 0 else { throw TestSetupError("redis-cli --cluster create failed: \(create.output)") }
        guard waitFor(timeout: 30, interval: 0.2, { self.isHealthy }) else {
            throw TestSetupError("the cluster did not become healthy: \(info(on: nodes[0]))")
        }
    }

    /// A free port whose cluster bus port (port + 10000) is free too and below Linux's
    /// ephemeral range, both claimed for this test process.
    static func freeNodePort() throws -> Int {
        while true {
            let p = try freeTCPPort()
            if p + 10_000 < 32_768 && claimTCPPort(p + 10_000) { return p }
        }
    }

    func info(on node: Node) -> String {
        if case .bulk(let b)? = try? node.ask(["CLUSTER", "INFO"]) { return String(decoding: b, as: UTF8.self) }
        return "(no answer)"
    }

    /// Every running node says the cluster is ok, every slot is served by a running primary,
    /// and every primary has a replica that is in sync.
    public var isHealthy: Bool {
        let running = nodes.filter(\.isRunning)
        guard running.allSatisfy({ info(on: $0).contains("cluster_state:ok") }) else { return false }
        guard let map = try? slotMap(), map.uncovered == 0 else { return false }
        return map.primaries.allSatisfy { p in
            running.contains { $0.endpoint == p } && (map.replicas[p] ?? []).contains { r in running.contains { $0.endpoint == r } }
        }
    }

    /// The slot map as a running node sees it.
    public func slotMap() throws -> ClusterMap {
        for n in nodes where n.isRunning {
            if let reply = try? n.ask(["CLUSTER", "SLOTS"]), let map = ClusterMap(slotsReply: reply, askedNode: n.endpoint) { return map }
        }
        throw TestSetupError("no node answers CLUSTER SLOTS")
    }

    public func node(at endpoint: RedisURL.Endpoint) -> Node? { nodes.first { $0.endpoint == endpoint } }

    /// The primary serving `key`'s slot now.
    public func primary(for key: String) throws -> Node {
        guard let e = try slotMap().primary(of: ClusterSlot.of(key)), let n = node(at: e) else {
            throw TestSetupError("no primary serves \(key)")
        }
        return n
    }

    /// A replica of the primary serving `key`.
    public func replica(for key: String) throws -> Node {
        let map = try slotMap()
        guard let p = map.primary(of: ClusterSlot.of(key)), let r = map.replicas[p]?.first, let n = node(at: r) else {
            throw TestSetupError("no replica for \(key)")
        }
        return n
    }

    /// Waits until some running primary serves `key`'s slot, other than `old`.
    public func waitForNewPrimary(for key: String, replacing old: Node, timeout: Double = 30) -> Node? {
        var found: Node?
        _ = waitFor(timeout: timeout, interval: 0.2) {
            guard let n = try? primary(for: key), n.port != old.port, n.isRunning,
                  info(on: n).contains("cluster_state:ok") else { return false }
            found = n
            return true
        }
        return found
    }

    public func shutdown() {
        for n in nodes { n.child?.terminate(grace: 5) }
        dir.remove()
    }

    deinit { for n in nodes { n.child?.kill9() } }
}
