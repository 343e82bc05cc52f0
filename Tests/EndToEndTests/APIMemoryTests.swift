import ARKAuth
import ARKCore
import ARKHTTPClient
import GRDB
import ARKTestSupport
import Foundation
import Testing

/// The API's memory under the issue's attack: 100 concurrent 16 MiB bodies from 2 subjects,
/// within the default rate limits, against `ark api` on its own (as its systemd unit runs
/// it, MemoryMax=1G). The bodies in flight stay within API_BODY_MEMORY_BYTES: the others
/// are refused with 503 and Retry-After before a byte is read, and every signal a 202
/// accepted is recorded.
extension EndToEnd { @Suite struct APIMemoryTests {
    @Test func aHundredConcurrentLargestBodiesStayUnderTheUnitsMemoryMax() async throws {
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let dir = try TempDir("ark-api-memory")
        defer { dir.remove() }
        let apiPort = try freeTCPPort()
        let env = [
            "REDIS_URL": redis.urlString, "ARK_STATE_DB": dir.path + "/ark_state.db", "ARK_GRAVEYARD_DIR": Repo.graveyard, "ARK_ENV": "test",
            "API_PORT": String(apiPort), "METRICS_PORT": String(try freeTCPPort()), "JWT_SECRET": APIFixture.secret, "ARK_LOG_FORMAT": "json",
            "WATCHDOG_ENABLED": "false", "ARK_DUPLICATE_WINDOW_MS": "0", "ARK_MAX_ORDERS_PER_SECOND": "0", "ARK_MAX_SYMBOL_ORDERS_PER_SECOND": "0",
        ]
        let pipeline = try ArkProcess(["run"], environment: env.merging(["API_ENABLED": "false"]) { $1 }, logPath: dir.path + "/run.log")
        defer { pipeline.terminate() }
        let api = try ArkProcess(["api"], environment: env, logPath: dir.path + "/api.log")
        defer { api.terminate() }
        #expect(await waitForAsync(timeout: 60) { (try? await HTTPClient.request("GET", "http://127.0.0.1:\(apiPort)/readyz", timeout: .seconds(2)))?.status == 200 }, "\(api.output.suffix(2000))")
        let before = try #require(Self.memory(api.pid))

        let authority = try JWTAuthority(secret: APIFixture.secret, issuer: "ark", maxTTLSeconds: 86_400)
        let tokens = [try await authority.mint(subject: "desk-a", ttlSeconds: 600), try await authority.mint(subject: "desk-b", ttlSeconds: 600)]
        let client = try runCommand("/usr/bin/env", ["python3", Repo.testdata + "/large_bodies.py", "127.0.0.1", String(apiPort), tokens.joined(separator: ","),
                                                     "100", String(16 * 1024 * 1024), "10"], timeout: 600)
        #expect(client.code == 0, "\(client.output.suffix(2000))")
        let results = client.output.split(separator: "\n").compactMap { jsonObject(String($0)) }
        #expect(results.count == 100, "\(client.output.suffix(2000))")
        let after = try #require(Self.memory(api.pid))
        let statuses = Dictionary(grouping: results, by: { $0["status"] as? Int ?? 0 }).mapValues(\.count)
        let accepted = results.flatMap { $0["accepted"] as? [String] ?? [] }
        print("ark api: RSS \(before.rss / 1_048_576) MiB before, peak (VmHWM) \(after.hwm / 1_048_576) MiB; answers \(statuses.sorted { $0.key < $1.key }); \(accepted.count) signals accepted")
        // Under the unit's MemoryMax=1G with room: the default budget is 256 MiB.
        #expect(after.hwm < 1 << 30, "peak RSS \(after.hwm) bytes")
        #expect(after.hwm - before.rss < 512 * 1_048_576, "the bodies took \((after.hwm - before.rss) / 1_048_576) MiB over the idle RSS")
        // Every request is taken (202) or refused before its body is read (503 + Retry-After).
        #expect(Set(statuses.keys).isSubset(of: [202, 503]), "\(statuses)")
        #expect((statuses[202] ?? 0) >= 2, "\(statuses)")
        for r in results where r["status"] as? Int == 503 { #expect(r["retry_after"] as? String == "1", "\(r)") }
        #expect(accepted.count == 10 * (statuses[202] ?? 0))
        // Every accepted signal is recorded.
        let store = dir.path + "/ark_state.db"
        let recorded = await waitForAsync(timeout: 60) {
            (try? Self.count(store, "SELECT count(*) FROM passes WHERE trace_id LIKE 'mem-%'")) == accepted.count
        }
        #expect(recorded, "recorded \((try? Self.count(store, "SELECT count(*) FROM passes WHERE trace_id LIKE 'mem-%'")) ?? -1) of \(accepted.count)")
        #expect(api.isRunning)
    }

    static func count(_ store: String, _ sql: String) throws -> Int {
        var config = Configuration()
        config.readonly = true
        return try DatabaseQueue(path: store, configuration: config).read { try Int.fetchOne($0, sql: sql) ?? 0 }
    }

    /// The process's resident set now and at its peak, from /proc.
    static func memory(_ pid: pid_t) -> (rss: Int, hwm: Int)? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int? {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }.map { $0 * 1024 }
        }
        guard let rss = field("VmRSS"), let hwm = field("VmHWM") else { return nil }
        return (rss, hwm)
    }
} }
