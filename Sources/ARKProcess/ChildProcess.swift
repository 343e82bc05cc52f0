// Child processes: spawned with default signals, watched, stopped and reaped by pid.

import ARKCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A child process (an agent the canary controller or `ark bench` starts, a private Redis, a
/// test's server): started with default signal handling and an empty signal mask, by default
/// in its own session (so a signal to the starter's terminal does not reach it), its output
/// appended to a log file. Also names a process ARK did not start (a baseline agent by its
/// pid file), which it can watch and stop but not reap.
public struct ChildProcess: Sendable, Equatable {
    public var name: String
    public var pid: Int32
    /// How it ended, once reaped; shared by copies, since a child is reaped once.
    private let reaped = Reaped()

    private final class Reaped: Sendable {
        let status = Mutex<Int32?>(nil)
    }

    public init(name: String, pid: Int32) {
        self.name = name
        self.pid = pid
    }

    public static func == (a: ChildProcess, b: ChildProcess) -> Bool { a.name == b.name && a.pid == b.pid }

    public struct SpawnError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts `executable` with `arguments` and exactly `environment`. Signals are reset to
    /// their defaults and unblocked in the child: a process whose signal handling
    /// ServiceLifecycle set up ignores SIGTERM and SIGINT, and a thread of a test runner blocks
    /// them, and a child would inherit either and never stop on SIGTERM.
    public static func spawn(name: String, executable: String, arguments: [String], environment: [String: String], log: String,
                             newSession: Bool = true) throws(SpawnError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        // POSIX_SPAWN_SETSID (0x80, glibc): not imported into Swift by name.
        let setsid: Int32 = newSession ? 0x80 : 0
        posix_spawnattr_setflags(&attributes, Int16(Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | setsid))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(rc)))") }
        return ChildProcess(name: name, pid: pid)
    }

    /// `ark-agent` in the directory of `ark`, when it is there and executable.
    public static func leanAgentBinary(besideArk ark: String) -> String? {
        let lean = (ark.lastIndex(of: "/").map { String(ark[...$0]) } ?? "") + "ark-agent"
        return access(lean, X_OK) == 0 ? lean : nil
    }

    /// The command that runs one stage's agent with the build or release whose `ark` binary
    /// is `ark`: the lean `ark-agent STAGE` beside it, or `ark agent STAGE` where there is
    /// none (a release made before ark-agent existed).
    public static func agentCommand(_ stage: Stage, ark: String) -> (executable: String, arguments: [String]) {
        if let lean = leanAgentBinary(besideArk: ark) { return (lean, [stage.rawValue]) }
        return (ark, ["agent", stage.rawValue])
    }

    /// Starts one stage's agent (`agentCommand`).
    public static func spawnAgent(_ stage: Stage, ark: String, name: String, environment: [String: String], log: String) throws(SpawnError) -> ChildProcess {
        let command = agentCommand(stage, ark: ark)
        return try spawn(name: name, executable: command.executable, arguments: command.arguments, environment: environment, log: log)
    }

    /// nil while it runs; how it ended once it has (reaped when it is our child).
    public func exitStatus() -> String? {
        switch reap() {
        case .exited(let status): return Self.describe(status)
        case .running: return nil
        // Not our child (the start script's, or an earlier controller's): it lives while
        // signals reach it and it is not a zombie waiting for its own parent.
        case .notOurs: return processHasExited(pid) ? "stopped" : nil
        }
    }

    private enum Reaping {
        case exited(Int32)
        case running
        case notOurs
    }

    /// Our child's wait status once it has exited, kept for every later call. Only `waitpid`
    /// says so: the leader of a multi-threaded process shows as a zombie in /proc while its
    /// other threads still exit, and a status read then would be lost (and the child left a
    /// zombie).
    private func reap() -> Reaping {
        reaped.status.withLock { known in
            if let known { return .exited(known) }
            var status: Int32 = 0
            switch waitpid(pid, &status, WNOHANG) {
            case pid:
                known = status
                return .exited(status)
            case 0:
                return .running
            default:
                return errno == ECHILD ? .notOurs : .running
            }
        }
    }

    public var isRunning: Bool { exitStatus() == nil }

    /// The exit code once our child has exited by itself; nil while it runs, after a signal,
    /// or when it is not our child.
    public var exitCode: Int32? {
        guard case .exited(let s) = reap(), s & 0x7f == 0 else { return nil }
        return (s >> 8) & 0xff
    }

    /// Sends `sig` while it runs.
    public func signal(_ sig: Int32) {
        if isRunning { kill(pid, sig) }
    }

    /// Waits up to `timeout` for it to end; whether it did.
    @discardableResult
    public func wait(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now >= deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// SIGKILL (nothing flushed), and the wait for it to be gone.
    public func kill9() {
        signal(SIGKILL)
        wait(timeout: .seconds(10))
    }

    /// Stops them all at once (SIGTERM to each, then the waits); how each ended, in order.
    public static func stopAll(_ processes: [ChildProcess], timeout: Duration = .seconds(10)) -> [String] {
        for p in processes where p.exitStatus() == nil { kill(p.pid, SIGTERM) }
        return processes.map { $0.stop(timeout: timeout) }
    }

    /// SIGTERM, so an agent finishes and commits its batch; SIGKILL after `timeout`.
    /// Returns how it ended.
    @discardableResult
    public func stop(timeout: Duration = .seconds(10)) -> String {
        if let s = exitStatus() { return s }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let s = exitStatus() { return s }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        for _ in 0..<100 {
            if let s = exitStatus() { return "killed after \(timeout) (\(s))" }
            usleep(20_000)
        }
        return "did not stop"
    }

    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit \((status >> 8) & 0xff)" }
        return "signal \(signal)"
    }
}
