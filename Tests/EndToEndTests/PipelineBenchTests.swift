import ARKTestSupport
import Foundation
import Testing

/// `ark bench` for real: it starts its own Redis and agent processes, sends, drains and
/// reports; the figures it writes are checked against what was sent.
extension EndToEnd { @Suite struct PipelineBenchTests {
    func bench(_ arguments: [String], json: String) throws -> (CommandResult, [String: Any]) {
        let r = try runCommand(Repo.arkBinary, ["bench"] + arguments + ["--json", json, "--graveyard", Repo.root + "/graveyard"], timeout: 240)
        let body = (try? String(contentsOfFile: json, encoding: .utf8)) ?? ""
        return (r, jsonObject(body) ?? [:])
    }

    @Test func aFixedRateRunReportsEverySignalAndEveryProcess() throws {
        let dir = try TempDir("ark-bench-test")
        defer { dir.remove() }
        let (r, result) = try bench(["--rate", "200", "--duration", "3"], json: dir.path + "/bench.json")
        #expect(r.code == 0, "\(r.output)")
        let sent = result["sent"] as? Int ?? 0
        #expect((500...650).contains(sent), "\(result)")
        #expect(result["recorded"] as? Int == sent && result["lost"] as? Int == 0)
        // Every 20th signal breaks a rule, counting from the first.
        #expect(result["violations_injected"] as? Int == (sent + 19) / 20)
        #expect(result["violations_denied"] as? Int == result["violations_injected"] as? Int)
        let latency = result["latency_ms"] as? [String: Double] ?? [:]
        #expect((latency["p50"] ?? 0) > 0 && (latency["p99"] ?? 0) >= (latency["p50"] ?? 0) && (latency["max"] ?? 0) >= (latency["p99"] ?? 0), "\(latency)")
        let processes = result["processes"] as? [[String: Any]] ?? []
        #expect(processes.compactMap { $0["name"] as? String } == ["Kyle-1", "Joey-1", "HRM-1", "Kenny-1", "Aletheia-1", "redis", "producer"])
        for p in processes {
            let rss = p["rss_kb"] as? Int ?? 0, anon = p["anon_kb"] as? Int ?? 0
            #expect((p["cpu_seconds"] as? Double ?? 0) > 0 && rss > 0 && (p["rss_warm_kb"] as? Int ?? 0) > 0, "\(p)")
            #expect(anon > 0 && anon < rss, "\(p)")
            #expect((p["peak_rss_kb"] as? Int ?? 0) >= rss && (p["cpu_micros_per_signal"] as? Double ?? 0) > 0 && p["pid"] is Int, "\(p)")
        }
        #expect(Set(result.keys) == ["rate", "instances", "sent", "recorded", "lost", "signals_per_second", "seconds", "latency_ms", "violations_injected",
                                     "violations_denied", "limit_denials", "false_denials", "limit_breaches", "verdicts", "processes"], "\(result.keys)")
        for text in ["s  sent ", "Throughput", "Lost         0", "Latency ms   p50", "Aletheia-1"] { #expect(r.output.contains(text), "\(r.output)") }
    }

    @Test func asFastAsItGoesWithTwoProcessesPerStage() throws {
        let dir = try TempDir("ark-bench-test")
        defer { dir.remove() }
        let (r, result) = try bench(["--rate", "max", "--duration", "2", "--instances", "2"], json: dir.path + "/bench.json")
        #expect(r.code == 0, "\(r.output)")
        #expect((result["sent"] as? Int ?? 0) > 1000 && result["lost"] as? Int == 0, "\(result)")
        #expect((result["processes"] as? [[String: Any]])?.count == 12)
        #expect(result["rate"] as? String == "max" && result["instances"] as? Int == 2)
    }

    @Test func aBadOptionIsRefusedWithWhatIsAllowed() throws {
        let r = try runCommand(Repo.arkBinary, ["bench", "--rate", "fast"])
        #expect(r.code == 64 && r.output.contains("--rate must be a positive whole number or max"), "\(r.output)")
    }
} }
