// The operator console's routes on the metrics server.

import ARKAuth
import ARKCore
import ARKRisk
import ARKState
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The operator console's routes on the metrics server: the page and its two files at `/`,
/// and the JSON it reads and posts under `/console/`. The pipeline's figures are open as
/// `/metrics` is; what shows signals' contents (traces, proofs, dead letters) and every
/// action (release, promote, abort, halt, reduce, resume) need a bearer token, as the API's
/// routes do.
enum ConsoleRoutes {
    /// Who may act, or nil when JWT_SECRET is not set or cannot be used (the console is then
    /// read-only).
    struct Access: Sendable {
        let authority: JWTAuthority?

        /// The token's subject, or the refusal as a 401 (503 when no secret is set).
        func subject(_ request: Request) async throws -> String {
            guard let authority else {
                throw HTTPError(.serviceUnavailable, message: "this metrics server cannot check tokens (JWT_SECRET is not set, or its log says why it cannot be used): traces, dead letters and actions are off. Fix: start ark metrics-server with the API's JWT_SECRET")
            }
            do {
                return try await authority.verify(authorization: request.headers[.authorization], nowSeconds: wallClockNanoseconds() / 1_000_000_000).subject
            } catch {
                throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"ark-console\""], message: error.description)
            }
        }
    }

    /// The page may load only its own files and talk only to this server; nothing frames it.
    static let pageHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        .xContentTypeOptions: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("X-Frame-Options")!: "DENY",
    ]

    static func add(to router: Router<BasicRequestContext>, backend: MonitoringBackend, access: Access) {
        router.get("/") { _, _ in asset(PackageResources.index_html, type: "text/html; charset=utf-8") }
        router.get("console/console.js") { _, _ in asset(PackageResources.console_js, type: "text/javascript; charset=utf-8") }
        router.get("console/console.css") { _, _ in asset(PackageResources.console_css, type: "text/css; charset=utf-8") }

        let console = router.group("console")
        console.get("state") { _, _ in response(.ok, try await backend.consoleState()) }
        console.get("history") { request, _ in
            let minutes = try intParameter(request, "minutes", default: 60, in: 1...360)
            return response(.ok, try await backend.consoleHistory(minutes: minutes))
        }
        console.get("watchdog") { request, _ in
            let limit = try intParameter(request, "limit", default: 50, in: 1...500)
            return response(.ok, try await backend.consoleWatchdogEvents(limit: limit))
        }
        console.get("canary") { _, _ in response(.ok, try await backend.consoleCanary()) }
        console.get("audit-key") { _, _ in
            guard let pem = await backend.auditPublicKeyPEM() else {
                throw HTTPError(.notFound, message: "no audit public key is readable by this server (ARK_AUDIT_PUBLIC_KEY, or ARK_AUDIT_KEY's .pub): proofs cannot be checked against a signature here")
            }
            return try json(.ok, ["pem": pem])
        }
        console.get("whoami") { request, _ in try json(.ok, ["subject": try await access.subject(request)]) }
        console.get("traces/:trace_id") { request, context in
            _ = try await access.subject(request)
            let id = try traceID(context)
            guard let trace = try await backend.consoleTrace(id) else { throw traceNotFound(id) }
            return response(.ok, trace)
        }
        console.get("traces/:trace_id/proof") { request, context in
            _ = try await access.subject(request)
            let id = try traceID(context)
            do {
                guard let proof = try await backend.consoleProof(id) else { throw traceNotFound(id) }
                return response(.ok, Data(proof))
            } catch let refusal as ConsoleRefusal {
                throw httpError(refusal)
            }
        }
        console.get("dead-letters") { request, _ in
            _ = try await access.subject(request)
            let limit = try intParameter(request, "limit", default: 50, in: 1...500)
            return response(.ok, try await backend.consoleDeadLetters(limit: limit))
        }
        console.post("watchdog/release") { request, _ in
            let subject = try await access.subject(request)
            let selector = try await releaseSelector(request)
            do {
                guard let released = try await backend.consoleRelease(selector: selector, by: "console:" + subject) else {
                    throw HTTPError(.notFound, message: "no quarantined instance matches '\(selector)': name a quarantined instance or a stage")
                }
                return response(.ok, released)
            } catch let refusal as ConsoleRefusal {
                throw httpError(refusal)
            }
        }
        for (action, mode) in [("halt", TradingMode.halted), ("reduce", .reducing), ("resume", .active)] {
            console.post("trading/\(action)") { request, _ in
                let subject = try await access.subject(request)
                var request = request
                let body: ByteBuffer
                do {
                    body = try await request.collectBody(upTo: TradingChangeRequest.maxBytes)
                } catch {
                    throw HTTPError(.contentTooLarge, message: "the body is over \(TradingChangeRequest.maxBytes) bytes: send {\"reason\": \"why\", \"account\": \"name\"}")
                }
                let change: TradingChangeRequest
                do throws(TradingStateStore.Problem) {
                    change = try TradingChangeRequest.parse(Array(body.readableBytesView))
                } catch {
                    throw HTTPError(.badRequest, message: error.description)
                }
                do {
                    return response(.ok, try await backend.consoleTrading(mode, change: change, by: "console:" + subject))
                } catch let refusal as ConsoleRefusal {
                    throw httpError(refusal)
                }
            }
        }
        for action in ["promote", "abort"] {
            console.post("canary/\(action)") { request, _ in
                _ = try await access.subject(request)
                do {
                    return response(.accepted, try await backend.consoleCanaryRequest(action))
                } catch let refusal as ConsoleRefusal {
                    throw httpError(refusal)
                }
            }
        }
    }

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        var headers = pageHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func intParameter(_ request: Request, _ name: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let raw = request.uri.queryParameters.get(name) else { return value }
        guard let n = Int(raw), range.contains(n) else {
            throw HTTPError(.badRequest, message: "\(name) '\(raw)' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    static func traceID(_ context: BasicRequestContext) throws -> String {
        guard let id = SignalValidator.traceID(fromPath: context.parameters.get("trace_id") ?? "") else {
            throw HTTPError(.badRequest, message: "a trace_id is 1 to \(SignalValidator.maxIDLength) letters, digits and - _ . :")
        }
        return id
    }

    static func traceNotFound(_ id: String) -> HTTPError {
        HTTPError(.notFound, message: "trace \(id) is not recorded: it is unknown, or still in the pipeline (a pass is recorded within milliseconds; retry shortly)")
    }

    /// `{"selector": "Kenny"}` or `{"selector": "Kenny-host-4242@s1"}`.
    static func releaseSelector(_ request: Request) async throws -> String {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: 4096)
        } catch {
            throw HTTPError(.contentTooLarge, message: "the body is over 4096 bytes: send {\"selector\": \"<stage or instance>\"}")
        }
        guard let object = JSONDocument.parse(body.readableBytesView) as? [String: Any],
              let selector = object["selector"] as? String else {
            throw HTTPError(.badRequest, message: "the body must be a JSON object {\"selector\": \"<stage or instance>\"}")
        }
        guard (1...200).contains(selector.utf8.count),
              selector.utf8.allSatisfy({ $0 < 0x80 && (isalnum(Int32($0)) != 0 || "-_.:@".utf8.contains($0)) }) else {
            throw HTTPError(.badRequest, message: "selector '\(selector.prefix(200))' is not a stage or an instance name (1 to 200 letters, digits and - _ . : @)")
        }
        return selector
    }

    static func httpError(_ refusal: ConsoleRefusal) -> HTTPError {
        switch refusal {
        case .invalid(let m): HTTPError(.badRequest, message: m)
        case .conflict(let m): HTTPError(.conflict, message: m)
        case .unavailable(let m): HTTPError(.serviceUnavailable, message: m)
        }
    }
}
