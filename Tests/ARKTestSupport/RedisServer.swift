import ARKBus
import ARKCore
import ARKProcess
import Foundation
import Synchronization

/// Paths of this checkout, for tests that need the rule file, test data or the `ark` binary.
public enum Repo {
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/ARKTestSupport/RedisServer.swift
        return url.path
    }()
    public static var graveyard: String { root + "/graveyard" }
    /// The producers' cases (from the original system's Python producers), kept in this repository.
    public static var testdata: String { root + "/Tests/Data" }

    /// The `ark` executable that `swift build` / `swift test` built (ARK_BINARY overrides).
    public static var arkBinary: String {
        if let p = ProcessInfo.processInfo.environment["ARK_BINARY"] { return p }
        for config in ["debug", "release"] {
            let p = root + "/.build/\(config)/ark"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return root + "/.build/debug/ark"
    }

    /// The `ark-agent` executable built with `arkBinary`, beside it.
    public static var arkAgentBinary: String {
        let ark = arkBinary
        return String(ark[..<(ark.lastIndex(of: "/") ?? ark.startIndex)]) + "/ark-agent"
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A fresh temporary directory, removed on `remove()`.
public final class TempDir: @unchecked Sendable {
    public let path: String
    public init(_ prefix: String = "ark-test") throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw TestSetupError("mkdtemp failed") }
        path = String(cString: p)
    }
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

extension ChildProcess {
    /// Starts a test's process (`ChildProcess.spawn`), in the test runner's session.
    public init(_ executable: String, _ arguments: [String], environment: [String: String], logPath: String) throws {
        let name = executable.split(separator: "/").last.map(String.init) ?? executable
        do {
            self = try ChildProcess.spawn(name: name, executable: executable, arguments: arguments, environment: environment, log: logPath, newSession: false)
        } catch {
            throw TestSetupError(error.description)
        }
    }

    /// Waits up to `timeout` seconds for it to exit; true if it did.
    @discardableResult
    public func wait(timeout: Double) -> Bool {
        wait(timeout: .milliseconds(Int64(timeout * 1000)))
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace` seconds.
    public func terminate(grace: Double = 10) {
        stop(timeout: .milliseconds(Int64(grace * 1000)))
    }
}

/// A private redis-server for one test suite: its own temp dir and unix socket, started
/// and stopped by pid. Append-only persistence is on, so a restart keeps the streams.
public final class RedisServer: @unchecked Sendable {
    public let dir: TempDir
    public let socket: String
    private var child: ChildProcess?

    public var url: RedisURL { RedisURL(endpoint: .unix(path: socket)) }
    public var urlString: String { "unix://" + socket }
    public var pid: pid_t { child?.pid ?? 0 }

    /// Without persistence (`persistent: false`, the stock Debian redis-server's effect): a
    /// restart after `kill9` comes back empty.
    public let persistent: Bool

    public init(persistent: Bool = true) throws {
        dir = try TempDir("ark-redis")
        socket = dir.path + "/redis.sock"
        self.persistent = persistent
        try start()
    }

    public func start() throws {
        child = try ChildProcess(Self.serverPath(), [
            "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--dir", dir.path,
            "--appendonly", persistent ? "yes" : "no", "--appendfsync", "always", "--save", "", "--daemonize", "no", "--maxmemory-policy", "noeviction",
        ], environment: [:], logPath: dir.path + "/redis.log")
        try waitUntilReady()
    }

    public static func serverPath() -> String {
        for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] where FileManager.default.isExecutableFile(atPath: p) {
            return p
        }
        return "/usr/bin/redis-server"
    }

    func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let c = RedisConnection(url: url)
            if (try? c.connect()) != nil, (try? c.command(["PING"])) == .status("PONG") { return }
            guard child?.isRunning == true else { break }
            usleep(20_000)
        }
        throw TestSetupError("redis-server did not start on \(socket); see \(dir.path)/redis.log")
    }

    /// Stops the server by its pid (SIGTERM: it flushes its append-only file) and waits.
    public func stop() {
        child?.terminate(grace: 10)
        child = nil
    }

    /// Kills the server with SIGKILL (nothing flushed) and waits for it to be gone.
    public func kill9() {
        child?.kill9()
        child = nil
    }

    public func restart() throws {
        stop()
        try start()
    }

    /// A connected client, for test set-up and assertions.
    public func client() throws -> RedisConnection {
        let c = RedisConnection(url: url)
        try c.connect()
        return c
    }

    public func shutdown() {
        stop()
        dir.remove()
    }

    deinit { stop() }
}

/// An `ark` (or `ark-agent`) child process with its output in a log file.
public final class ArkProcess: @unchecked Sendable {
    public let child: ChildProcess
    public let logPath: String
    public let arguments: [String]

    public init(_ arguments: [String], executable: String = Repo.arkBinary, environment: [String: String], logPath: String) throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw TestSetupError("no executable at \(executable): run `swift build` first (or set ARK_BINARY)")
        }
        self.arguments = arguments
        self.logPath = logPath
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        child = try ChildProcess(executable, arguments, environment: env, logPath: logPath)
    }

    public var pid: pid_t { child.pid }
    public var isRunning: Bool { child.isRunning }
    public func kill9() { child.kill9() }
    public func terminate(grace: Double = 10) { child.terminate(grace: grace) }
    public var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// Polls an async condition until it holds or `timeout` passes.
public func waitForAsync(timeout: Double, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(200))
    }
    return await condition()
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
public func waitFor(timeout: Double, interval: Double = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(UInt32(interval * 1_000_000))
    }
    return try condition()
}

/// A TCP port that was free a moment ago, below Linux's ephemeral range (32768+), so no
/// outgoing connection of a concurrently running test can take it before the server binds.
/// Never the same port twice in one test process: suites running side by side would
/// otherwise both bind it.
public func freeTCPPort() throws -> Int {
    for _ in 0..<200 {
        let port = Int.random(in: 20_000..<32_000)
        if isFreeTCPPort(port), handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
    throw TestSetupError("cannot find a free port in 20000..<32000")
}

private let handedOutPorts = Mutex<Set<Int>>([])

/// Whether `port` can be bound on 127.0.0.1 now (and claims nothing).
public func isFreeTCPPort(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// Claims a port for this test process if it is free and not handed out already.
public func claimTCPPort(_ port: Int) -> Bool {
    isFreeTCPPort(port) && handedOutPorts.withLock { $0.insert(port).inserted }
}

/// A finished command: its exit code and everything it printed.
public struct CommandResult: Sendable {
    public var code: Int32
    public var output: String
}

/// Runs a command to completion (killed after `timeout` seconds), output captured.
public func runCommand(_ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 60) throws -> CommandResult {
    let dir = try TempDir("ark-cmd")
    defer { dir.remove() }
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    let child = try ChildProcess(executable, arguments, environment: env, logPath: dir.path + "/out")
    if !child.wait(timeout: timeout) { child.kill9() }
    let output = (try? String(contentsOfFile: dir.path + "/out", encoding: .utf8)) ?? ""
    return CommandResult(code: child.exitCode ?? -1, output: output)
}

/// GET with curl: the status (0 when nothing answered) and the body.
public func httpGet(_ url: String, timeout: Double = 10) throws -> (status: Int, body: String) {
    let marker = "\n@@status="
    let r = try runCommand("/usr/bin/curl", ["-s", "--max-time", String(timeout), "-w", marker + "%{http_code}", url], timeout: timeout + 5)
    guard let range = r.output.range(of: marker, options: .backwards) else { return (0, r.output) }
    return (Int(r.output[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, String(r.output[..<range.lowerBound]))
}

/// `body` parsed as a JSON object.
public func jsonObject(_ body: String) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
}

/// A release directory under `releases` as start_production.sh's make_release leaves one: the
/// built binaries (linked), the rules, and `.env.production` with `ARK_ENV=test` and `env`.
public func makeTestRelease(in releases: String, _ name: String, env: [String] = []) throws -> String {
    let dir = releases + "/" + name
    try FileManager.default.createDirectory(atPath: dir + "/graveyard", withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: dir + "/ark", withDestinationPath: Repo.arkBinary)
    try FileManager.default.createSymbolicLink(atPath: dir + "/ark-agent", withDestinationPath: Repo.arkAgentBinary)
    for file in ["ethics_rules.json", "ethics_rules.json.sha256"] {
        try FileManager.default.copyItem(atPath: Repo.graveyard + "/" + file, toPath: dir + "/graveyard/" + file)
    }
    try (["ARK_ENV=test"] + env).joined(separator: "\n").appending("\n").write(toFile: dir + "/.env.production", atomically: true, encoding: .utf8)
    return dir
}
