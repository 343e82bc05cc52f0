// The API's routes in one list, with what each needs (scope, body, limits).

import HTTPTypes

/// The API's routes, in one list: the router is built from the same paths, the 405 check
/// reads it, and a test holds it against `openapi.json`.
public struct APIRoute: Sendable, Equatable {
    public var method: HTTPRequest.Method
    /// OpenAPI form: `{name}` for a path parameter.
    public var path: String
    public var authenticated: Bool

    public static let submitSignals = APIRoute(method: .post, path: "/v1/signals", authenticated: true)
    public static let trace = APIRoute(method: .get, path: "/v1/traces/{trace_id}", authenticated: true)
    public static let traceProof = APIRoute(method: .get, path: "/v1/traces/{trace_id}/proof", authenticated: true)
    public static let decisions = APIRoute(method: .get, path: "/v1/decisions", authenticated: true)
    public static let tradingStates = APIRoute(method: .get, path: "/v1/trading", authenticated: true)
    public static let tradingHalt = APIRoute(method: .post, path: "/v1/trading/halt", authenticated: true)
    public static let tradingReduce = APIRoute(method: .post, path: "/v1/trading/reduce", authenticated: true)
    public static let tradingResume = APIRoute(method: .post, path: "/v1/trading/resume", authenticated: true)
    public static let auditHead = APIRoute(method: .get, path: "/v1/audit/checkpoint", authenticated: true)
    public static let auditConsistency = APIRoute(method: .get, path: "/v1/audit/consistency", authenticated: true)
    public static let auditCosign = APIRoute(method: .post, path: "/v1/audit/cosignatures", authenticated: true)
    public static let healthz = APIRoute(method: .get, path: "/healthz", authenticated: false)
    public static let readyz = APIRoute(method: .get, path: "/readyz", authenticated: false)
    public static let openAPI = APIRoute(method: .get, path: "/openapi.json", authenticated: false)

    public static let all = [submitSignals, trace, traceProof, decisions, tradingStates, tradingHalt, tradingReduce, tradingResume, auditHead, auditConsistency, auditCosign, healthz, readyz, openAPI]

    /// Hummingbird's form: `:name` for a parameter, no leading slash.
    var routerPath: String {
        String(path.dropFirst()).split(separator: "/").map { $0.hasPrefix("{") ? ":" + $0.dropFirst().dropLast() : $0 }.joined(separator: "/")
    }

    func matches(_ requestPath: String) -> Bool {
        let want = path.split(separator: "/"), have = requestPath.split(separator: "/")
        return want.count == have.count && zip(want, have).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
    }
}
