import ARKTestSupport
import Foundation
import Testing

/// `deployment/systemd/` through `systemd-analyze verify`, with the binary path pointed at
/// this build.
@Suite struct SystemdUnitsTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func unitsVerify() throws {
        let dir = try TempDir("ark-systemd")
        defer { dir.remove() }
        let source = Repo.root + "/deployment/systemd"
        let units = try FileManager.default.contentsOfDirectory(atPath: source).sorted()
        #expect(units == ["ark-agent@.service", "ark-api.service", "ark-backup.service", "ark-backup.timer", "ark-metrics.service", "ark-watchdog.service", "ark.target"])
        for unit in units {
            let text = try String(contentsOfFile: source + "/" + unit, encoding: .utf8)
                .replacingOccurrences(of: "/opt/ark/.build/release/ark", with: Repo.arkBinary)
            try text.write(toFile: dir.path + "/" + unit, atomically: true, encoding: .utf8)
        }
        let paths = ["ark.target", "ark-metrics.service", "ark-watchdog.service", "ark-api.service", "ark-backup.service", "ark-backup.timer"].map { dir.path + "/" + $0 }
            + ["kyle", "joey", "hrm", "kenny", "aletheia"].map { dir.path + "/ark-agent@\($0).service" }
        let r = try runCommand("/usr/bin/systemd-analyze", ["verify", "--man=no"] + paths)
        #expect(r.code == 0 && r.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(r.output)")
        // The witness's unit, for its own host.
        let witness = try String(contentsOfFile: Repo.root + "/deployment/witness/ark-witness.service", encoding: .utf8)
            .replacingOccurrences(of: "/opt/ark/.build/release/ark", with: Repo.arkBinary)
        try witness.write(toFile: dir.path + "/ark-witness.service", atomically: true, encoding: .utf8)
        let w = try runCommand("/usr/bin/systemd-analyze", ["verify", "--man=no", dir.path + "/ark-witness.service"])
        #expect(w.code == 0 && w.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(w.output)")
    }
}

/// `deployment/logrotate/ark` run for real by logrotate on a temp log directory.
@Suite struct LogrotateTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/logrotate")))
    func rotatesByCopyAndTruncateThenCompresses() throws {
        let dir = try TempDir("ark-logrotate")
        defer { dir.remove() }
        let user = String(cString: getpwuid(getuid()).pointee.pw_name)
        let group = String(cString: getgrgid(getgid()).pointee.gr_name)
        let config = try String(contentsOfFile: Repo.root + "/deployment/logrotate/ark", encoding: .utf8)
            .replacingOccurrences(of: "/var/log/ark", with: dir.path + "/logs")
            .replacingOccurrences(of: "su ark ark", with: "su \(user) \(group)")
        try FileManager.default.createDirectory(atPath: dir.path + "/logs", withIntermediateDirectories: true)
        try config.write(toFile: dir.path + "/ark.conf", atomically: true, encoding: .utf8)
        chmod(dir.path + "/ark.conf", 0o644)
        chmod(dir.path + "/logs", 0o755)
        let log = dir.path + "/logs/kenny.log"
        func rotate() throws {
            let r = try runCommand("/usr/sbin/logrotate", ["-f", "-s", dir.path + "/state", dir.path + "/ark.conf"])
            #expect(r.code == 0, "\(r.output)")
        }
        try "{\"msg\":\"first\"}\n".write(toFile: log, atomically: false, encoding: .utf8)
        try rotate()
        // Truncated in place (the process keeps its descriptor), the old lines in .1.
        #expect(try String(contentsOfFile: log, encoding: .utf8).isEmpty)
        #expect(try String(contentsOfFile: log + ".1", encoding: .utf8) == "{\"msg\":\"first\"}\n")
        try "{\"msg\":\"second\"}\n".write(toFile: log, atomically: false, encoding: .utf8)
        try rotate()
        // The older rotation is compressed one round later (delaycompress).
        #expect(FileManager.default.fileExists(atPath: log + ".2.gz"))
        #expect(try String(contentsOfFile: log + ".1", encoding: .utf8) == "{\"msg\":\"second\"}\n")
    }
}
