import ARKAPI
import ARKAuth
import ARKCore
import ARKHTTPClient
import ARKTestSupport
import Foundation
import Testing

/// `ark run` (five stages, watchdog, metrics server and the API) against a private Redis
/// and a temporary state store, with a client that checks what every API answer promises:
/// an X-Request-ID, a status the OpenAPI document lists for the route, and for an error
/// the `{"error":{"code","message","trace_id"}}` body whose trace_id is that header.
final class APIFixture: @unchecked Sendable {
    static let secret = "api-test-secret-0123456789abcdef0123456789"
    /// The Redis and the directory, as every end-to-end suite has them; `ark run` instead of
    /// the agents.
    let pipeline: Pipeline
    var redis: RedisServer { pipeline.redis }
    var dir: TempDir { pipeline.dir }
    let apiPort: Int
    let metricsPort: Int
    var process: ArkProcess?
    let document = OpenAPIDocument.load()

    var base: String { "http://127.0.0.1:\(apiPort)" }
    var statePath: String { dir.path + "/ark_state.db" }
    var logPath: String { dir.path + "/ark-run.log" }

    init(_ extra: [String: String] = [:]) async throws {
        pipeline = try Pipeline()
        apiPort = try freeTCPPort()
        metricsPort = try freeTCPPort()
        let env = [
            "REDIS_URL": redis.urlString, "ARK_STATE_DB": statePath, "ARK_GRAVEYARD_DIR": Repo.graveyard, "ARK_ENV": "test",
            "API_PORT": String(apiPort), "METRICS_PORT": String(metricsPort), "JWT_SECRET": Self.secret, "ARK_LOG_FORMAT": "json",
            "API_RATE_LIMIT_PER_MINUTE": "20", "ARK_BLOCK_MS": "50", "WATCHDOG_ENABLED": "false",
            // The same order is sent again and again on purpose: no duplicate or throttle refusals.
            "ARK_DUPLICATE_WINDOW_MS": "0", "ARK_MAX_ORDERS_PER_SECOND": "0", "ARK_MAX_SYMBOL_ORDERS_PER_SECOND": "0",
        ].merging(extra) { $1 }
        process = try ArkProcess(["run"], environment: env, logPath: logPath)
        let deadline = monotonicNanoseconds() + 60_000_000_000
        while monotonicNanoseconds() < deadline {
            if let r = try? await HTTPClient.request("GET", base + "/readyz", timeout: .seconds(2)), r.status == 200 { return }
            guard process?.isRunning == true else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let output = process?.output ?? ""
        shutdown()
        throw TestSetupError("ark run did not become ready on :\(apiPort):\n\(output.suffix(3000))")
    }

    func shutdown() {
        process?.terminate(grace: 10)
        process = nil
        pipeline.shutdown()
    }

    func token(_ subject: String, ttl: Int = 600, issuedAt: Int64? = nil, secret: String = APIFixture.secret, issuer: String = "ark") async -> String {
        // Signing fails only when the crypto library does; a test cannot go on without a token.
        try! await JWTAuthority(secret: secret, issuer: issuer, maxTTLSeconds: 86_400)
            .mint(subject: subject, ttlSeconds: ttl, nowSeconds: issuedAt ?? wallClockNanoseconds() / 1_000_000_000)
    }

    /// One request; checks the promises every answer keeps.
    @discardableResult
    func call(_ method: String, _ path: String, token: String? = nil, body: [UInt8]? = nil, headers: [(String, String)] = [],
              sourceLocation: SourceLocation = #_sourceLocation) async throws -> HTTPClientResponse {
        var all = headers
        if let token { all.append(("Authorization", "Bearer " + token)) }
        if body != nil && !all.contains(where: { $0.0.lowercased() == "content-type" }) { all.append(("Content-Type", "application/json")) }
        let r: HTTPClientResponse
        do {
            r = try await HTTPClient.request(method, base + path, headers: all, body: body, timeout: .seconds(30))
        } catch {
            Issue.record("\(method) \(path): \(error)", sourceLocation: sourceLocation)
            throw error
        }
        let requestID = r.header("X-Request-ID")
        #expect(requestID != nil, "no X-Request-ID on \(method) \(path)", sourceLocation: sourceLocation)
        if let operation = document.operation(method: method, path: String(path.split(separator: "?")[0])) {
            #expect(operation.statuses.contains(String(r.status)), "\(method) \(path) answered \(r.status), which openapi.json does not list (\(operation.statuses.sorted()))", sourceLocation: sourceLocation)
        }
        if r.status >= 400 && !["/healthz", "/readyz"].contains(path) {
            let error = r.json?["error"] as? [String: Any]
            #expect(error?["code"] is String && error?["message"] is String, "error body without code and message: \(r.text)", sourceLocation: sourceLocation)
            #expect(error?["trace_id"] as? String == requestID, "error trace_id is not the X-Request-ID: \(r.text)", sourceLocation: sourceLocation)
            #expect(!r.text.contains("Swift/") && !r.text.contains("Fatal error") && !r.text.contains(".swift:"), "internals in an error body: \(r.text)", sourceLocation: sourceLocation)
        }
        return r
    }

    func signal(_ traceID: String?, symbol: String = "AAPL", price: Double = 101.5, extra: String = "") -> String {
        var json = "{"
        if let traceID { json += "\"trace_id\":\"\(traceID)\"," }
        json += "\"symbol\":\"\(symbol)\",\"price\":\(price),\"volume\":100,\"source\":\"api-test\",\"action\":\"buy\",\"position_size_pct\":0.001,\"leverage\":1.0,\"stop_loss\":99.0,\"risk_reward_ratio\":2.0\(extra)}"
        return json
    }

    /// Waits until the trace is recorded and returns its API view.
    func recordedTrace(_ traceID: String, token: String) async throws -> [String: Any]? {
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while monotonicNanoseconds() < deadline {
            let r = try await call("GET", "/v1/traces/\(traceID)", token: token)
            if r.status == 200 { return r.json }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// JSON log lines of the run, parsed.
    func logLines() -> [[String: Any]] {
        (process?.output ?? "").split(separator: "\n").compactMap { jsonObject(String($0)) }
    }
}

/// The OpenAPI document compiled into the server, as the tests read it.
struct OpenAPIDocument {
    struct Operation {
        var method: String
        var path: String
        var statuses: Set<String>
    }

    var raw: [String: Any]
    var operations: [Operation]

    static func load() -> OpenAPIDocument {
        let text = (try? String(contentsOfFile: Repo.root + "/Sources/ARKAPI/openapi.json", encoding: .utf8)) ?? "{}"
        let raw = jsonObject(text) ?? [:]
        var operations: [Operation] = []
        for (path, item) in raw["paths"] as? [String: Any] ?? [:] {
            for (method, op) in item as? [String: Any] ?? [:] {
                let responses = (op as? [String: Any])?["responses"] as? [String: Any] ?? [:]
                operations.append(Operation(method: method.uppercased(), path: path, statuses: Set(responses.keys)))
            }
        }
        return OpenAPIDocument(raw: raw, operations: operations)
    }

    func operation(method: String, path: String) -> Operation? {
        operations.first { op in
            guard op.method == method else { return false }
            let want = op.path.split(separator: "/"), have = path.split(separator: "/")
            return want.count == have.count && zip(want, have).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
        }
    }
}
