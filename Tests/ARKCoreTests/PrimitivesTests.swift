import ARKCore
import ARKTestSupport
import Foundation
import Testing

@Suite struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func nistVectors(input: String, digest: String) {
        #expect(SHA256.hexDigest(Array(input.utf8)) == digest)
    }

    @Test func millionAsAndIncrementalUpdates() {
        let a = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(SHA256.hexDigest(a) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        var h = SHA256()
        var i = 0
        var step = 1
        while i < a.count {
            let end = min(a.count, i + step)
            h.update(Array(a[i..<end]))
            i = end
            step = step * 3 % 1000 + 1
        }
        #expect(SHA256.hex(h.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func agreesWithSha256sumOnTheRuleFile() throws {
        let path = Repo.graveyard + "/ethics_rules.json"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let expected = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
        let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        #expect(SHA256.hexDigest(bytes) == String(expected))
    }
}

@Suite struct FileBytesTests {
    @Test func readsAFileLargerThanOneChunkExactly() throws {
        let dir = try TempDir("ark-filebytes")
        defer { dir.remove() }
        let content = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(FileManager.default.createFile(atPath: dir.path + "/f", contents: Data(content)))
        #expect(try readFileBytes(dir.path + "/f") == content)
        #expect(FileManager.default.createFile(atPath: dir.path + "/empty", contents: Data()))
        #expect(try readFileBytes(dir.path + "/empty") == [])
    }

    @Test func aMissingFileOrADirectoryNamesThePathAndTheReason() throws {
        let dir = try TempDir("ark-filebytes")
        defer { dir.remove() }
        let missing = #expect(throws: FileReadError.self) { try readFileBytes(dir.path + "/none") }
        #expect(missing?.description == "cannot read \(dir.path)/none: No such file or directory")
        let directory = #expect(throws: FileReadError.self) { try readFileBytes(dir.path) }
        #expect(directory?.description == "cannot read \(dir.path): Is a directory")
    }
}

@Suite struct LogHistogramTests {
    @Test func quantilesWithinHalfAPercent() {
        var h = LogHistogram()
        var values: [Double] = []
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50_000 {
            let v = exp(Double.random(in: 0..<14, using: &rng))  // 1 µs … 1.2 s
            values.append(v)
            h.record(micros: v)
        }
        values.sort()
        for q in [0.5, 0.9, 0.95, 0.99] {
            let exact = values[Int((q * Double(values.count)).rounded(.up)) - 1]
            let approx = h.quantile(q)!
            #expect(abs(approx - exact) / exact < 0.005 || abs(approx - exact) < 1, "q\(q): \(approx) vs \(exact)")
        }
        #expect(h.total == 50_000)
    }

    @Test func coarseQuantilesWithinThreeAndAHalfPercentAndResamplingKeepsCounts() {
        var fine = LogHistogram()
        var coarse = LogHistogram(.coarse)
        var values: [Double] = []
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let v = exp(Double.random(in: 0..<12, using: &rng))
            values.append(v)
            fine.record(micros: v)
            coarse.record(micros: v)
        }
        values.sort()
        let resampled = fine.resampled(to: .coarse)
        #expect(resampled.total == 20_000 && resampled.maxMicros == fine.maxMicros)
        for q in [0.5, 0.95, 0.99] {
            let exact = values[Int((q * Double(values.count)).rounded(.up)) - 1]
            let approx = coarse.quantile(q)!
            #expect(abs(approx - exact) / exact < 0.035 || abs(approx - exact) < 1, "q\(q): \(approx) vs \(exact)")
            // Resampling moves each fine bucket whole into the coarse bucket that holds it.
            #expect(resampled.quantile(q) == approx, "q\(q)")
        }
        #expect(coarse.encoded().count < fine.encoded().count / 4)
    }

    @Test func encodesAndMerges() {
        var a = LogHistogram()
        var b = LogHistogram()
        for v in [1.0, 10, 100, 1000, 10_000] { a.record(micros: v) }
        for v in [5.0, 50_000] { b.record(micros: v) }
        var merged = LogHistogram(encoded: a.encoded())
        merged.merge(LogHistogram(encoded: b.encoded()))
        #expect(merged.total == 7)
        #expect(merged.maxMicros == 50_000)
        var direct = LogHistogram()
        for v in [1.0, 10, 100, 1000, 10_000, 5, 50_000] { direct.record(micros: v) }
        #expect(merged == direct)
        #expect(merged.quantile(0.5) == direct.quantile(0.5))
        #expect(LogHistogram().quantile(0.5) == nil)
    }
}

@Suite struct ConfigTests {
    @Test(arguments: [
        ("redis://127.0.0.1:6379/0", RedisURL(endpoint: .tcp(host: "127.0.0.1", port: 6379))),
        ("redis://:s3cret@redis.internal:6380/2", RedisURL(endpoint: .tcp(host: "redis.internal", port: 6380), password: "s3cret", database: 2)),
        ("redis://user:pw@h", RedisURL(endpoint: .tcp(host: "h", port: 6379), password: "pw", username: "user")),
        ("unix:///run/redis/redis.sock", RedisURL(endpoint: .unix(path: "/run/redis/redis.sock"))),
        ("unix:///tmp/r.sock?db=3", RedisURL(endpoint: .unix(path: "/tmp/r.sock"), database: 3)),
    ])
    func parsesRedisURLs(text: String, expected: RedisURL) throws {
        #expect(try RedisURL(parsing: text) == expected)
    }

    @Test func passwordsNeverPrinted() throws {
        let url = try RedisURL(parsing: "redis://:hunter2@h:1/0")
        #expect(!url.description.contains("hunter2"))
        #expect(throws: RedisURL.ParseError.self) { try RedisURL(parsing: "http://:hunter2@h") }
        do { _ = try RedisURL(parsing: "http://:hunter2@h") } catch { #expect(!error.description.contains("hunter2")) }
    }

    @Test(arguments: ["redis://h:0/0", "redis://h:99999", "redis://:pw@/0", "unix://relative.sock", "redis://h/x", "localhost:6379"])
    func rejectsBadRedisURLs(text: String) {
        #expect(throws: RedisURL.ParseError.self) { try RedisURL(parsing: text) }
    }

    @Test func everyBadSettingIsNamedWithItsFix() {
        let env = ["REDIS_URL": "nope", "METRICS_PORT": "99999", "SLO_AVAILABILITY_TARGET": "abc", "WATCHDOG_ENABLED": "maybe", "ARK_BATCH_SIZE": "0"]
        do {
            _ = try ARKConfig.load(environment: env)
            Issue.record("expected a ConfigError")
        } catch {
            let vars = Set(error.problems.map(\.variable))
            #expect(vars == ["REDIS_URL", "METRICS_PORT", "SLO_AVAILABILITY_TARGET", "WATCHDOG_ENABLED", "ARK_BATCH_SIZE"])
            #expect(error.problems.allSatisfy { !$0.fix.isEmpty })
        }
    }

    @Test func defaultsAndOverrides() throws {
        let c = try ARKConfig.load(environment: ["ARK_CLAIM_IDLE_MS": "1500", "SLO_P95_LATENCY_MS": "250", "WATCHDOG_ENABLED": "false"])
        #expect(c.claimIdleMs == 1500 && c.sloP95LatencyMs == 250 && !c.watchdogEnabled)
        #expect(c.metricsPort == 9090 && c.apiPort == 8000 && c.sloAvailabilityTarget == 0.995 && c.maxDeliveries == 5)
        let local = ARKConfig.localDefaults(root: "/srv/ark")
        #expect(local.stateDB == "/srv/ark/.ark/ark_state.db" && local.redisURL == "redis://127.0.0.1:6379/0")
        // With the start script's private Redis there, --local commands use it…
        let root = NSTemporaryDirectory() + "ark-local-\(getpid())"
        try FileManager.default.createDirectory(atPath: root + "/.ark/redis", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(ARKConfig.localDefaults(root: root).redisURL == "unix://" + root + "/.ark/redis/redis.sock")
        // …and while it is down (no socket), so health names the Redis that is missing.
        #expect(!FileManager.default.fileExists(atPath: root + "/.ark/redis/redis.sock"))
        #expect(try ARKConfig.load(environment: ["REDIS_URL": "redis://10.0.0.5:6379/0"], base: ARKConfig.localDefaults(root: root)).redisURL == "redis://10.0.0.5:6379/0")
    }

    @Test func faultInjectionParsesAndIsRefusedInProduction() throws {
        let c = try ARKConfig.load(environment: ["ARK_FAULT": "Kenny:latency=6000ms, errors=0.5"])
        #expect(c.fault == {
            var f = try? AgentFault(parsing: "kenny:latency=6000")
            f?.errorRate = 0.5
            return f
        }())
        for (env, variable) in [(["ARK_FAULT": "kenny:latency=6000ms", "ARK_ENV": "production"], "ARK_FAULT"),
                                (["ARK_FAULT": "kenny:latncy=5"], "ARK_FAULT"), (["ARK_FAULT": "nobody:errors=1"], "ARK_FAULT"),
                                (["ARK_FAULT": "hrm:errors=2"], "ARK_FAULT"),
                                (["WATCHDOG_RELEASE_BACKOFF_MS": "5000", "WATCHDOG_RELEASE_BACKOFF_MAX_MS": "1000"], "WATCHDOG_RELEASE_BACKOFF_MAX_MS")] {
            #expect(throws: ConfigError.self, "\(env)") { _ = try ARKConfig.load(environment: env) }
            #expect((try? ARKConfig.load(environment: env)) == nil)
            do { _ = try ARKConfig.load(environment: env) } catch { #expect(error.problems.map(\.variable) == [variable]) }
        }
    }
}

/// A trace id as the API's and the console's routes read it from a path: the one rule.
@Suite struct TraceIDPathTests {
    @Test func aTraceIDFromAPathIsPercentDecodedThenChecked() {
        #expect(SignalValidator.traceID(fromPath: "syn-1.a_b") == "syn-1.a_b")
        #expect(SignalValidator.traceID(fromPath: "a%3Ab") == "a:b")
        #expect(SignalValidator.traceID(fromPath: "a%3ab") == "a:b")
        #expect(SignalValidator.traceID(fromPath: String(repeating: "a", count: 128)) != nil)
        for bad in ["", "a%20b", "a%2", "a%ZZ", "%FF", "a/b", "é", String(repeating: "a", count: 129), "a%00b"] {
            #expect(SignalValidator.traceID(fromPath: bad) == nil, "\(bad)")
        }
    }
}

/// The heartbeat's one format: what an agent writes is what every reader reads.
@Suite struct HeartbeatRecordTests {
    @Test func aHeartbeatReadsBackAsWrittenAndAnImplausibleOneIsRefused() {
        var beat = HeartbeatRecord(instance: "Kenny-h-1@s2", stage: "Kenny", host: "h", pid: 1, processed: 10, failed: 2, pending: 3, p50Ms: 0.25, p95Ms: 1.5,
                                   tsNs: 1_796_000_000_000_000_000, quarantined: true, batchesOK: 4, batchesFailed: 1, consecutiveFailures: 1, busyMs: 12.5)
        beat.backpressure = "ark:{s2}:aletheia"
        #expect(HeartbeatRecord(json: beat.json) == beat)
        beat.backpressure = nil
        #expect(HeartbeatRecord(json: beat.json) == beat)
        beat.tsNs = -1
        #expect(HeartbeatRecord(json: beat.json) == nil)
        #expect(HeartbeatRecord(json: Array("{\"instance\":\"x\"}".utf8)) == nil)
    }
}
