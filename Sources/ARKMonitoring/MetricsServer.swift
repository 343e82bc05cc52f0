// The metrics HTTP server: `/metrics`, `/slos`, `/healthz`, `/readyz` and the console.

import ARKAuth
import ARKCore
import ARKSLO
import ARKState
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The metrics HTTP server (DESIGN §5): `/metrics` (Prometheus text for every ARK
/// process), `/metrics/json`, `/slos`, `/healthz`, `/readyz`, and the operator console at
/// `/` (DESIGN §10, `ConsoleRoutes`). Every error reaches the client
/// as a JSON object with the right status, never a stack trace.
public struct MetricsServer: Service {
    let backend: MonitoringBackend
    let host: String
    let port: Int
    let logger: Logger

    public init(backend: MonitoringBackend, host: String, port: Int, logger: Logger = Logger(label: "ark.metrics")) {
        self.backend = backend
        self.host = host
        self.port = port
        self.logger = logger
    }

    public func run() async throws {
        if host == "0.0.0.0" || host == "::" {
            logger.warning("metrics server bound to all interfaces: anyone who can reach this port can read pipeline volumes, verdict counts and health details. Bind to 127.0.0.1 (METRICS_BIND) and put a proxy with authentication in front, or firewall the port")
        }
        // The console's actions take the API's tokens; without JWT_SECRET it is read-only.
        // A token setting the console cannot use makes it read-only too, loudly: monitoring
        // must not stop for the console's sake.
        let config = backend.config
        var authority: JWTAuthority?
        if !config.jwtSecret.isEmpty {
            do {
                let a = try JWTAuthority(config: config)
                try await a.ready()
                authority = a
            } catch {
                logger.error("the console cannot check tokens, so it is read-only (no traces, dead letters, release, promote or abort)", metadata: [
                    "error": .string("\(error)"), "fix": "set JWT_SECRET to openssl rand -hex 32, and JWT_JWKS_FILE to a key set of public RS256/EdDSA keys or nothing",
                ])
            }
        } else {
            logger.notice("JWT_SECRET is not set: the console at / is read-only (no traces, dead letters, release, promote or abort)")
        }
        let app = Application(
            router: Self.router(backend, access: ConsoleRoutes.Access(authority: authority)),
            configuration: .init(address: .hostname(host, port: port), serverName: "ark-metrics"),
            onServerRunning: { [logger, host, port] _ in logger.info("metrics server listening", metadata: ["address": .string("\(host):\(port)")]) },
            logger: logger)
        do {
            try await app.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw MetricsServerError("cannot listen on \(host):\(port): the address is already in use. Fix: stop the process holding it (ss -ltnp 'sport = :\(port)'), or set METRICS_PORT")
        }
    }

    static func router(_ backend: MonitoringBackend, access: ConsoleRoutes.Access) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        router.get("metrics") { _, _ -> Response in
            let text = await backend.prometheusText()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("metrics/json") { _, _ -> Response in
            response(.ok, try await backend.metricsJSON())
        }
        router.get("slos") { request, _ -> Response in
            var window: Int64?
            if let raw = request.uri.queryParameters.get("window") {
                guard let seconds = Int64(raw), SLOWindowLimits.seconds.contains(seconds) else {
                    return try json(.badRequest, [
                        "error": "window '\(raw)' is not whole seconds in \(SLOWindowLimits.seconds.lowerBound)...\(SLOWindowLimits.seconds.upperBound), e.g. /slos?window=60",
                        "status": 400,
                    ])
                }
                window = seconds
            }
            return try json(.ok, sloJSON(try await backend.sloReport(windowSeconds: window)))
        }
        router.get("healthz") { _, _ -> Response in
            let report = await backend.health()
            return try json(report.status == .unhealthy ? .serviceUnavailable : .ok, healthJSON(report))
        }
        router.get("readyz") { _, _ -> Response in
            let (ready, detail) = await backend.ready()
            return try json(ready ? .ok : .serviceUnavailable, ["ready": ready, "detail": detail])
        }
        ConsoleRoutes.add(to: router, backend: backend, access: access)
        return router
    }
}

/// The SLO windows `/slos?window=` accepts: from one that a minute of verification traffic
/// fills to the longest burn window the rollups are kept for.
public enum SLOWindowLimits {
    public static let seconds: ClosedRange<Int64> = 10...21_600
}

public struct MetricsServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Turns every failure into a JSON error body: unknown paths and methods get 404/405 from the
/// router; anything else thrown by a handler is a 500 that names the problem, logged.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let message = error.body ?? (error.status == .notFound
                ? "no such endpoint: \(request.method) \(request.uri.path); this server answers GET /metrics, /metrics/json, /slos, /healthz and /readyz, and the console at / (its JSON under /console/)"
                : error.status.reasonPhrase)
            var response = try json(error.status, ["error": message, "status": Int(error.status.code)])
            for field in error.headers { response.headers.append(field) }
            return response
        } catch {
            context.logger.error("request failed", metadata: ["path": .string(request.uri.path), "error": .string("\(error)")])
            return try json(.internalServerError, ["error": "\(error)", "status": 500])
        }
    }
}

/// A JSON answer as operators read it (sorted keys, indented, a final newline).
func json(_ status: HTTPResponse.Status, _ object: Any) throws -> Response {
    response(status, try JSONDocument.data(object, .pretty))
}

func response(_ status: HTTPResponse.Status, _ data: Data) -> Response {
    var buffer = ByteBuffer()
    buffer.writeBytes(data)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
}

func orNull(_ v: Double?) -> Any { v.map { ($0 * 1e6).rounded() / 1e6 } ?? NSNull() }

public func sloJSON(_ r: SLOReport) -> [String: Any] {
    var slos: [String: Any] = [:]
    for s in r.slos {
        var burn: [String: Any] = [:]
        for w in BurnWindow.allCases { burn[w.rawValue] = orNull(s.burnRates[w] ?? nil) }
        slos[s.name] = [
            "objective": s.objective, "target": s.target, "actual": orNull(s.actual),
            "ok": s.ok.map { $0 as Any } ?? NSNull(), "status": s.state.rawValue,
            "error_budget_remaining": orNull(s.budgetRemaining), "burn_rates": burn,
            "events": s.events, "bad_events": s.badEvents,
        ]
    }
    return [
        "generated_at": iso8601(r.generatedNs), "window_seconds": r.windowSeconds, "slos": slos,
        "violations": r.violations, "inflight_overdue": r.inFlightOverdue.map { $0 as Any } ?? NSNull(), "notes": r.notes,
    ]
}

public func healthJSON(_ r: HealthReport) -> [String: Any] {
    [
        "status": r.status.rawValue, "generated_at": iso8601(r.generatedNs),
        "checks": Dictionary(uniqueKeysWithValues: r.checks.map { ($0.name, ["status": $0.status.rawValue, "detail": $0.detail]) }),
    ]
}
