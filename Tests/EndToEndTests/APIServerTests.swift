import ARKAPI
import ARKCore
import ARKHTTPClient
import ARKState
import ARKSynthetic
import ARKTestSupport
import Foundation
import Testing

/// The API against a real `ark run`: real Redis, real SQLite, real stages. Inside EndToEnd,
/// so no other pipeline of processes runs beside it on the two cores.
extension EndToEnd { @Suite struct APIServerTests {
    @Test func signalsGoInAndTheirPassesComeOut() async throws {
        let api = try await APIFixture()
        defer { api.shutdown() }
        let token = await api.token("desk-1")

        // One signal: 202 with the producer's trace id.
        let one = try await api.call("POST", "/v1/signals", token: token, body: Array(api.signal("api-one").utf8))
        #expect(one.status == 202, "\(one.text)")
        #expect((one.json?["signals"] as? [[String: Any]])?.first?["trace_id"] as? String == "api-one")

        // A batch of three: two valid (one without trace id), one invalid, recorded all the same.
        let batch = "[\(api.signal("api-b1")),\(api.signal(nil)),\(api.signal("api-bad", price: -5))]"
        let b = try await api.call("POST", "/v1/signals", token: token, body: Array(batch.utf8))
        #expect(b.status == 202, "\(b.text)")
        let items = b.json?["signals"] as? [[String: Any]] ?? []
        #expect(items.map { $0["status"] as? String } == ["accepted", "accepted", "rejected"])
        #expect(b.json?["accepted"] as? Int == 2 && b.json?["rejected"] as? Int == 1)
        let derived = items[1]["trace_id"] as? String ?? ""
        let rejectedTrace = items[2]["trace_id"] as? String ?? ""
        #expect(derived.hasPrefix("ark-") && rejectedTrace.hasPrefix("ark-"))
        #expect((items[2]["reasons"] as? [String])?.first?.hasPrefix("price:") == true)

        // Nothing valid at all: 422, and still recorded.
        let bad = try await api.call("POST", "/v1/signals", token: token, body: Array(#"{"symbol":"AAPL","price":"NaN"}"#.utf8))
        #expect(bad.status == 422)
        #expect((bad.json?["error"] as? [String: Any])?["code"] as? String == "invalid_signal")
        let badTrace = (bad.json?["signals"] as? [[String: Any]])?.first?["trace_id"] as? String ?? ""

        // The whole pass: hops, decision with its policy hash, execution, latency.
        let pass = try #require(try await api.recordedTrace("api-one", token: token))
        #expect(pass["verdict"] as? String == "approved")
        #expect((pass["hops"] as? [[String: Any]])?.compactMap { $0["stage"] as? String } == Stage.allCases.map(\.rawValue))
        let decision = pass["decision"] as? [String: Any]
        #expect(decision?["approved"] as? Bool == true)
        #expect((decision?["policy_hash"] as? String)?.count == 64)
        #expect(decision?["violations"] is [Any])
        #expect((pass["execution"] as? [String: Any])?["status"] as? String == "filled")
        #expect((pass["latency_ms"] as? Double ?? -1) > 0)
        #expect((pass["signal"] as? [String: Any])?["symbol"] as? String == "AAPL")
        for trace in [derived, "api-b1"] { #expect(try await api.recordedTrace(trace, token: token)?["verdict"] as? String == "approved") }
        for trace in [rejectedTrace, badTrace] {
            let rejected = try await api.recordedTrace(trace, token: token)
            #expect(rejected?["verdict"] as? String == "rejected")
            #expect((rejected?["reasons"] as? [String])?.isEmpty == false)
        }

        // Unknown trace: 404; a trace id no producer could send: 400.
        #expect(try await api.call("GET", "/v1/traces/no-such-trace", token: token).status == 404)
        #expect(try await api.call("GET", "/v1/traces/" + String(repeating: "x", count: 200), token: token).status == 400)

        // Paging through the outcomes: 2 per page, the cursor carries on, nothing twice.
        var seen: [String] = []
        var since = "0"
        for _ in 0..<10 {
            let page = try await api.call("GET", "/v1/decisions?since=\(since)&limit=2", token: token)
            #expect(page.status == 200)
            let decisions = page.json?["decisions"] as? [[String: Any]] ?? []
            seen += decisions.compactMap { $0["trace_id"] as? String }
            since = String(page.json?["next_since"] as? Int ?? 0)
            if page.json?["has_more"] as? Bool != true { break }
        }
        #expect(Set(seen) == Set(["api-one", "api-b1", derived, rejectedTrace, badTrace]) && seen.count == 5)
        let fromTime = try await api.call("GET", "/v1/decisions?since=2000-01-01T00:00:00Z", token: token)
        #expect((fromTime.json?["decisions"] as? [Any])?.count == 5)
        let future = try await api.call("GET", "/v1/decisions?since=2999-01-01T00:00:00Z", token: token)
        #expect((future.json?["decisions"] as? [Any])?.count == 0)
        for query in ["since=yesterday", "since=-3", "limit=0", "limit=1001", "limit=ten"] {
            #expect(try await api.call("GET", "/v1/decisions?\(query)", token: token).status == 400, "\(query)")
        }

        // The served document is the one in the repository, and it lists exactly the routes.
        let served = try await api.call("GET", "/openapi.json")
        #expect(served.status == 200)
        #expect(served.text == (try String(contentsOfFile: Repo.root + "/Sources/ARKAPI/openapi.json", encoding: .utf8)))
        #expect(api.document.raw["openapi"] as? String == "3.1.0")
        let documented = Set(api.document.operations.map { "\($0.method) \($0.path)" })
        #expect(documented == Set(APIRoute.all.map { "\($0.method.rawValue) \($0.path)" }))
        for route in APIRoute.all {
            let op = (api.document.raw["paths"] as? [String: Any])?[route.path] as? [String: Any]
            let security = (op?[route.method.rawValue.lowercased()] as? [String: Any])?["security"] as? [Any]
            #expect((security?.isEmpty == true) == !route.authenticated, "\(route.path): security in openapi.json disagrees with the server")
        }

        // The body that killed the API (and then every Kyle) by overflowing t0_ns arithmetic:
        // a 422 with its reason, recorded as a rejected pass, and both processes live on.
        // (Another client: this one has spent its 20 requests a minute.)
        let other = await api.token("desk-2")
        let overflow = try await api.call("POST", "/v1/signals", token: other,
                                          body: Array(#"{"symbol":"AAPL","price":101.5,"volume":100,"t0_ns":-9000000000000000000}"#.utf8))
        #expect(overflow.status == 422 && overflow.text.contains("t0_ns: must be an integer number of nanoseconds"), "\(overflow.text)")
        let overflowTrace = (overflow.json?["signals"] as? [[String: Any]])?.first?["trace_id"] as? String ?? ""
        #expect(try await api.recordedTrace(overflowTrace, token: other)?["verdict"] as? String == "rejected")

        // Health is open.
        let health = try await api.call("GET", "/healthz")
        #expect(health.status == 200 && health.json?["status"] as? String == "healthy")

        // Every request was logged with its correlation id.
        let logged = api.logLines().filter { $0["msg"] as? String == "request" }
        #expect(logged.contains { $0["request_id"] as? String == one.header("X-Request-ID") && $0["status"] as? String == "202" && $0["client"] as? String == "desk-1" })
    }

    /// The issue's risk/reward of 1e308 through the API, and the kill switch: GET and POST
    /// /v1/trading, each refusal with its status, audited as `api:<subject>`.
    @Test func theKillSwitchAndTheRiskRulesThroughTheAPI() async throws {
        let api = try await APIFixture()
        defer { api.shutdown() }
        let token = await api.token("desk-2")
        let reader = await api.token("desk-2-reader")  // polls traces without spending desk-2's rate limit
        let rr = #"{"trace_id":"api-rr","symbol":"AAPL","price":101.5,"volume":100,"action":"buy","position_size_pct":0.01,"leverage":1.0,"stop_loss":99.0,"risk_reward_ratio":1e308}"#
        #expect(try await api.call("POST", "/v1/signals", token: token, body: Array(rr.utf8)).status == 202)
        let denied = try #require(try await api.recordedTrace("api-rr", token: reader))
        #expect(denied["verdict"] as? String == "denied" && (denied["reasons"] as? [String])?.first?.hasPrefix("max_risk_reward") == true, "\(denied)")

        let empty = try await api.call("GET", "/v1/trading", token: token)
        #expect(empty.status == 200 && (empty.json?["states"] as? [Any])?.isEmpty == true, "\(empty.text)")
        let halt = try await api.call("POST", "/v1/trading/halt", token: token, body: Array(#"{"reason":"api drill"}"#.utf8))
        #expect(halt.status == 200, "\(halt.text)")
        let change = (halt.json?["changes"] as? [[String: Any]])?.first
        #expect(change?["mode"] as? String == "HALTED" && change?["from"] as? String == "ACTIVE" && change?["by"] as? String == "api:desk-2"
                && change?["scope"] as? String == "global" && change?["reason"] as? String == "api drill", "\(halt.text)")
        #expect(try await api.call("POST", "/v1/signals", token: token, body: Array(api.signal("api-halted").utf8)).status == 202)
        let halted = try #require(try await api.recordedTrace("api-halted", token: reader))
        #expect((halted["reasons"] as? [String])?.first?.hasPrefix("trading_state [CRITICAL]: trading is HALTED (global)") == true, "\(halted)")

        for body in [#"{}"#, #"{"reason":"x","account":null}"#, #"{"reason":"x","extra":1}"#, #"{"reason":"x","account":"a b"}"#, #"{"reason":"   "}"#, "not json"] {
            let r = try await api.call("POST", "/v1/trading/resume", token: token, body: Array(body.utf8))
            #expect(r.status == 400 && (r.json?["error"] as? [String: Any])?["code"] as? String == "invalid_request", "\(body): \(r.status) \(r.text)")
        }
        #expect(try await api.call("POST", "/v1/trading/resume", body: Array(#"{"reason":"x"}"#.utf8)).status == 401)
        #expect(try await api.call("POST", "/v1/trading/resume", token: token, body: Array(repeating: UInt8(ascii: " "), count: 5000)).status == 413)

        let resume = try await api.call("POST", "/v1/trading/resume", token: token, body: Array(#"{"reason":"drill over"}"#.utf8))
        #expect(resume.status == 200 && (resume.json?["changes"] as? [[String: Any]])?.first?["from"] as? String == "HALTED", "\(resume.text)")
        #expect(try await api.call("POST", "/v1/signals", token: token, body: Array(api.signal("api-after").utf8)).status == 202)
        #expect(try await api.recordedTrace("api-after", token: reader)?["verdict"] as? String == "approved")
        let states = try await api.call("GET", "/v1/trading", token: token)
        #expect((states.json?["states"] as? [[String: Any]])?.first?["mode"] as? String == "ACTIVE", "\(states.text)")
    }

    @Test func tokensLimitsAndBadRequestsGetTheirOwnStatus() async throws {
        let api = try await APIFixture()
        defer { api.shutdown() }
        let body = Array(api.signal("auth-1").utf8)
        func code(_ r: HTTPClientResponse) -> String? { (r.json?["error"] as? [String: Any])?["code"] as? String }

        // 401 for each way a token can be wrong, each with its reason.
        let missing = try await api.call("POST", "/v1/signals", body: body)
        #expect(missing.status == 401 && code(missing) == "token_missing")
        #expect(missing.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        let cases: [(String, String)] = [
            ("not-a-jwt", "token_malformed"),
            (await api.token("x", ttl: 60, issuedAt: wallClockNanoseconds() / 1_000_000_000 - 3600), "token_expired"),
            (await api.token("x", secret: "some-other-secret-some-other-secret-000"), "token_signature"),
            (await api.token("x", issuer: "elsewhere"), "token_issuer"),
        ]
        for (token, expected) in cases {
            let r = try await api.call("POST", "/v1/signals", token: token, body: body)
            #expect(r.status == 401 && code(r) == expected, "\(expected): \(r.text)")
        }
        let basic = try await api.call("GET", "/v1/decisions", headers: [("Authorization", "Basic dXNlcjpwYXNz")])
        #expect(basic.status == 401 && code(basic) == "token_malformed")
        #expect(try await api.call("GET", "/healthz").status == 200)

        let token = await api.token("limits")
        // 415, 413 (bytes and batch size), 400 (not JSON, empty, not a signal), 405, 404.
        let xml = try await api.call("POST", "/v1/signals", token: token, body: Array("<signal/>".utf8), headers: [("Content-Type", "application/xml")])
        #expect(xml.status == 415)
        let huge = [UInt8](repeating: UInt8(ascii: " "), count: 16 * 1024 * 1024 + 1)
        let tooBig = try await api.call("POST", "/v1/signals", token: token, body: huge)
        #expect(tooBig.status == 413 && code(tooBig) == "body_too_large")
        let oversized = try await api.call("POST", "/v1/signals", token: token,
                                           body: Array(api.signal("big", extra: ",\"intent\":\"" + String(repeating: "x", count: 70_000) + "\"").utf8))
        #expect(oversized.status == 413 && code(oversized) == "signal_too_large")
        let many = "[" + Array(repeating: api.signal(nil), count: 1001).joined(separator: ",") + "]"
        let tooMany = try await api.call("POST", "/v1/signals", token: token, body: Array(many.utf8))
        #expect(tooMany.status == 400 && code(tooMany) == "batch_too_large")
        for (text, expected) in [("{\"symbol\":", "invalid_json"), ("[]", "empty_batch"), ("\"AAPL\"", "not_a_signal")] {
            let r = try await api.call("POST", "/v1/signals", token: token, body: Array(text.utf8))
            #expect(r.status == 400 && code(r) == expected, "\(text): \(r.text)")
        }
        let wrongMethod = try await api.call("DELETE", "/v1/signals", token: token)
        #expect(wrongMethod.status == 405 && wrongMethod.header("Allow") == "POST")
        #expect(try await api.call("GET", "/v2/everything", token: token).status == 404)

        // A client's own correlation id is kept; a hostile one is replaced.
        let mine = try await api.call("GET", "/healthz", headers: [("X-Request-ID", "desk-7.abc_123")])
        #expect(mine.header("X-Request-ID") == "desk-7.abc_123")
        let hostile = try await api.call("GET", "/healthz", headers: [("X-Request-ID", "x\" injected=\"1")])
        #expect(hostile.header("X-Request-ID")?.hasPrefix("req-") == true)

        // CORS: nothing is configured, so a browser preflight from any origin is refused.
        let preflight = try await api.call("OPTIONS", "/v1/signals", headers: [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
        #expect(preflight.status == 403 && preflight.header("Access-Control-Allow-Origin") == nil)

        // 429 after 20 requests in a minute (API_RATE_LIMIT_PER_MINUTE=20), with Retry-After;
        // another client is not affected.
        let flood = await api.token("flood")
        var statuses: [Int] = []
        var limited: HTTPClientResponse?
        for _ in 0..<22 {
            let r = try await api.call("GET", "/v1/decisions?limit=1", token: flood)
            statuses.append(r.status)
            if r.status == 429 { limited = r }
        }
        #expect(statuses.prefix(20).allSatisfy { $0 == 200 } && statuses.suffix(2) == [429, 429], "\(statuses)")
        #expect(limited.flatMap { Int($0.header("Retry-After") ?? "") }.map { (1...3).contains($0) } == true)
        #expect(limited?.header("X-RateLimit-Remaining") == "0")
        #expect(try await api.call("GET", "/v1/decisions?limit=1", token: await api.token("someone-else")).status == 200)

        // Requests without a valid token are limited by address too (6 were refused above):
        // the 21st refusal in the minute is a 429, and a valid token still gets through.
        var refusals: [Int] = []
        for _ in 0..<20 { refusals.append(try await api.call("GET", "/v1/decisions?limit=1", token: "guess").status) }
        let firstLimited = refusals.firstIndex(of: 429) ?? refusals.count
        #expect(firstLimited >= 14 && firstLimited < 20 && refusals[..<firstLimited].allSatisfy { $0 == 401 }
                && refusals[firstLimited...].allSatisfy { $0 == 429 }, "\(refusals)")
        #expect(try await api.call("GET", "/v1/decisions?limit=1", token: await api.token("someone-else")).status == 200)
    }

    @Test func corsOriginsFromConfiguration() async throws {
        let api = try await APIFixture(["API_CORS_ORIGINS": "https://desk.example.com"])
        defer { api.shutdown() }
        let preflight = try await api.call("OPTIONS", "/v1/signals", headers: [("Origin", "https://desk.example.com"), ("Access-Control-Request-Method", "POST")])
        #expect(preflight.status == 204)
        #expect(preflight.header("Access-Control-Allow-Origin") == "https://desk.example.com")
        #expect(preflight.header("Access-Control-Allow-Headers")?.contains("Authorization") == true)
        let get = try await api.call("GET", "/v1/decisions", token: await api.token("browser"), headers: [("Origin", "https://desk.example.com")])
        #expect(get.status == 200 && get.header("Access-Control-Allow-Origin") == "https://desk.example.com")
        let denied = try await api.call("GET", "/v1/decisions", token: await api.token("browser"), headers: [("Origin", "https://other.example.com")])
        #expect(denied.header("Access-Control-Allow-Origin") == nil)
    }

    @Test func redisDownOrHungIs503AndNothingIsLost() async throws {
        let api = try await APIFixture(["API_REQUEST_TIMEOUT_MS": "1500"])
        defer { api.shutdown() }
        let token = await api.token("outage")
        #expect(try await api.call("POST", "/v1/signals", token: token, body: Array(api.signal("before").utf8)).status == 202)

        // Hung: Redis stopped with SIGSTOP. The request answers 503 at the timeout, not never.
        kill(api.redis.pid, SIGSTOP)
        let start = monotonicNanoseconds()
        let hung = try await api.call("POST", "/v1/signals", token: token, body: Array(api.signal("during-hang").utf8))
        let waited = Double(monotonicNanoseconds() - start) / 1e9
        kill(api.redis.pid, SIGCONT)
        #expect(hung.status == 503 && hung.header("Retry-After") != nil, "\(hung.text)")
        #expect(waited < 5, "the hung request took \(waited) s")

        // Down: Redis stopped. 503 for signals, /readyz and /healthz say why.
        api.redis.stop()
        let down = try await api.call("POST", "/v1/signals", token: token, body: Array(api.signal("during-outage").utf8))
        #expect(down.status == 503, "\(down.text)")
        let ready = try await api.call("GET", "/readyz")
        #expect(ready.status == 503 && ready.json?["ready"] as? Bool == false)
        let health = try await api.call("GET", "/healthz")
        #expect(health.status == 503 && health.json?["status"] as? String == "unhealthy")

        // Back: the client's retry goes through, and every signal the API confirmed is recorded.
        // (The one sent while Redis hung got a 503 that says its fate is unknown: it may have
        // been taken when Redis resumed; a retry with the same trace_id is then a no-op.)
        try api.redis.start()
        var retried: HTTPClientResponse?
        for _ in 0..<50 {
            retried = try await api.call("POST", "/v1/signals", token: token, body: Array(api.signal("during-outage").utf8))
            if retried?.status == 202 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(retried?.status == 202)
        #expect(try await api.call("GET", "/readyz").status == 200)
        for trace in ["before", "during-outage"] {
            #expect(try await api.recordedTrace(trace, token: token)?["verdict"] as? String == "approved", "\(trace)")
        }
    }

    @Test func theSyntheticLoopDrivesThePipelineThroughTheAPI() async throws {
        let api = try await APIFixture()
        defer { api.shutdown() }
        let options = SyntheticOptions(
            duration: 4, rate: 10, redisURL: api.redis.url, statePath: api.statePath, graveyardDir: Repo.graveyard,
            passTimeoutMs: 30_000, sloP95LatencyMs: 60_000, seed: 7, violationEvery: 8,
            api: APITarget(baseURL: api.base, token: await api.token("synthetic-loop")))
        let report = try await SyntheticLoop(options: options).run { _ in }
        #expect(report.passed, "\(report.summary)")
        #expect(report.sent == 40 && report.completed == 40 && report.violationsDenied == report.violationsInjected && report.violationsInjected == 5)
        // The signals went through the API (logged there), not straight into Redis.
        #expect(api.logLines().contains { $0["msg"] as? String == "request" && $0["client"] as? String == "synthetic-loop" && $0["status"] as? String == "202" })
        #expect(try StateStore(path: api.statePath, readOnly: true).verifyAudit().ok)
    }
} }
