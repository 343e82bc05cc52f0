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
        #expect(units == ["ark-agent@.service", "ark-backup.service", "ark-backup.timer", "ark-metrics.service", "ark-watchdog.service", "ark.target"])
        for unit in units {
            let text = try String(contentsOfFile: source + "/" + unit, encoding: .utf8)
                .replacingOccurrences(of: "/opt/ark/.build/release/ark", with: Repo.arkBinary)
            try text.write(toFile: dir.path + "/" + unit, atomically: true, encoding: .utf8)
        }
        let paths = ["ark.target", "ark-metrics.service", "ark-watchdog.service", "ark-backup.service", "ark-backup.timer"].map { dir.path + "/" + $0 }
            + ["kyle", "joey", "hrm", "kenny", "aletheia"].map { dir.path + "/ark-agent@\($0).service" }
        let r = try runCommand("/usr/bin/systemd-analyze", ["verify", "--man=no"] + paths)
        #expect(r.code == 0 && r.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(r.output)")
    }
}
