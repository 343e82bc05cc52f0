import ARKCore
import ARKTestSupport
import Foundation
import Testing

@testable import ARKProcess

@Suite struct ReleaseTests {
    @Test func envFilesParseAndBadLinesAreNamed() throws {
        let env = try Release.parseEnv("""
            # settings
            export ARK_ENV=production
            REDIS_URL="redis://10.0.0.5:6379/0"
            JWT_SECRET='a b c'

            """, file: "x/.env.production")
        #expect(env == ["ARK_ENV": "production", "REDIS_URL": "redis://10.0.0.5:6379/0", "JWT_SECRET": "a b c"])
        #expect(throws: Release.Invalid.self) { try Release.parseEnv("ARK_ENV production", file: "f") }
    }

    @Test func incompleteReleasesAreRefusedWithTheFix() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ark-release-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        do {
            _ = try Release(validating: dir)
            Issue.record("a release without ark was accepted")
        } catch {
            #expect(error.description.contains("Fix: cp .build/release/ark"))
        }
    }

    @Test func promotionMovesCurrentToPrevious() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ark-links-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for r in ["a", "b"] { try FileManager.default.createDirectory(atPath: dir + "/" + r, withIntermediateDirectories: true) }
        let links = ReleaseLinks(directory: dir)
        try links.promote(dir + "/a")
        #expect(links.current() == dir + "/a")
        #expect(links.previous() == nil)
        try links.promote(dir + "/b")
        #expect(links.current() == dir + "/b")
        #expect(links.previous() == dir + "/a")
    }

    @Test func faultsForRehearsedReleases() throws {
        #expect(try AgentFault(parsing: "joey:size=0.15").positionSizePct == 0.15)
        #expect(try AgentFault(parsing: "kenny:crash").crash)
        #expect(throws: AgentFault.ParseError.self) { try AgentFault(parsing: "kenny:size=0.2") }
        #expect(try AgentFault(parsing: "hrm:evaluation=150ms").evaluationStallMs == 150)
        #expect(throws: AgentFault.ParseError.self) { try AgentFault(parsing: "kenny:evaluation=150ms") }
        #expect(throws: AgentFault.ParseError.self) { try AgentFault(parsing: "hrm:evaluation=soon") }
    }
}

/// The process helpers on real processes: spawned, watched, stopped and reaped by pid.
@Suite final class ChildProcessTests {
    let dir: TempDir
    init() throws { dir = try TempDir("ark-child") }
    deinit { dir.remove() }

    @Test func exitCodesAreKeptOnceReapedForEveryCopy() throws {
        let p = try ChildProcess.spawn(name: "sh", executable: "/bin/sh", arguments: ["-c", "echo out; echo err >&2; exit 3"], environment: [:], log: dir.path + "/sh.log")
        let copy = p
        #expect(p.wait(timeout: .seconds(10)))
        #expect(p.exitCode == 3 && copy.exitCode == 3 && copy.exitStatus() == "exit 3" && !copy.isRunning)
        #expect(try String(contentsOfFile: dir.path + "/sh.log", encoding: .utf8) == "out\nerr\n")
    }

    /// A multi-threaded child's leader shows as a zombie while its other threads still exit:
    /// its exit code is read from `waitpid` alone, never lost to that moment (promtool, a Go
    /// program, lost one run in five before).
    @Test func aMultiThreadedChildsExitCodeIsNeverLost() throws {
        let script = "import os, threading, time\nfor _ in range(1000): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\nos._exit(3)"
        for i in 0..<40 {
            let p = try ChildProcess.spawn(name: "py", executable: "/usr/bin/python3", arguments: ["-c", script], environment: [:], log: dir.path + "/py.log")
            #expect(p.wait(timeout: .seconds(20)))
            #expect(p.exitCode == 3, "run \(i): \(String(describing: p.exitStatus()))")
        }
    }

    /// A parent that ignores SIGTERM (as ServiceLifecycle's signal handling makes it) must
    /// still start children that stop on it.
    @Test func aChildStopsOnSIGTERMEvenWhenItsParentIgnoresIt() throws {
        let old = Glibc.signal(SIGTERM, SIG_IGN)
        defer { _ = Glibc.signal(SIGTERM, old) }
        let p = try ChildProcess.spawn(name: "sleep", executable: "/bin/sleep", arguments: ["30"], environment: [:], log: dir.path + "/sleep.log")
        let started = ContinuousClock.now
        let how = p.stop(timeout: .seconds(5))
        #expect(how == "signal 15", "\(how)")
        #expect(ContinuousClock.now - started < .seconds(4))
    }

    @Test func aProcessThatIsNotOurChildIsWatchedButNotReaped() throws {
        #expect(ChildProcess(name: "init", pid: 1).exitStatus() == nil)
        #expect(ChildProcess(name: "init", pid: 1).exitCode == nil)
        #expect(ChildProcess(name: "gone", pid: Int32.max).exitStatus() == "stopped")
    }

    @Test func aMissingExecutableIsAnErrorThatNamesIt() {
        #expect { try ChildProcess.spawn(name: "x", executable: "/nonexistent/bin", arguments: [], environment: [:], log: dir.path + "/x.log") } throws: { error in
            "\(error)" == "cannot start /nonexistent/bin: No such file or directory"
        }
    }

    @Test func aPrivateRedisStartsAnswersAndStops() throws {
        let redis = try PrivateRedis.start(in: dir.path)
        #expect(FileManager.default.fileExists(atPath: redis.socket) && redis.url == "unix://" + redis.socket)
        redis.stop()
        #expect(!redis.process.isRunning)
    }
}
