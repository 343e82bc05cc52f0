// `ark api` and `ark token`.

import ARKAPI
import ARKAuth
import ARKCore
import ARKMonitoring
import ARKProcess
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

func makeAPIServer(_ config: ARKConfig) throws -> APIServer {
    do {
        return APIServer(settings: try APISettings(config: config))
    } catch {
        throw fail("cannot start the API: \(error)", code: 78)
    }
}

struct APICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Serve the API on API_BIND:API_PORT (127.0.0.1:8000): submit signals, read traces and decisions.",
        discussion: """
            POST /v1/signals (one signal or up to 1,000), GET /v1/traces/{trace_id},
            GET /v1/decisions?since=…, with a bearer JWT (ark token); /healthz, /readyz and
            /openapi.json are open. Rate limited per client (API_RATE_LIMIT_PER_MINUTE,
            API_RATE_LIMIT_PER_HOUR). Needs JWT_SECRET (--local makes one in ./.ark/jwt_secret).
            Examples:
              ark api --local
              API_PORT=8080 API_CORS_ORIGINS=https://desk.example.com ark api
              curl -s localhost:8000/openapi.json
            """)

    @OptionGroup var common: CommonOptions

    func run() async throws {
        common.bootstrapLogging()
        ProcessBootstrap.bootstrapMetrics()
        let config = try common.config()
        let server = try makeAPIServer(config)
        try await ProcessBootstrap.run([server], publishingMetricsTo: server.settings.redisURL)
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Mint a bearer token (JWT, HS256 with JWT_SECRET) for the API and the console's actions.",
        discussion: """
            The subject names the client: rate limits and request logs are per subject. The
            token is printed alone on standard output.
            Examples:
              ark token --subject desk-1
              ark token --subject nightly-loader --ttl 3600 --local
              curl -H "Authorization: Bearer $(ark token --subject me --local)" localhost:8000/v1/decisions
            """)

    @Option(help: "The client the token is for (its 'sub').")
    var subject: String = "operator"

    @Option(help: "Lifetime in seconds (at most JWT_MAX_TTL_SECONDS).")
    var ttl: Int = 3600

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try common.config()
        guard !config.jwtSecret.isEmpty else {
            throw fail("JWT_SECRET is not set: set it to the API server's secret (or use --local for the local one)", code: 78)
        }
        guard (1...config.jwtMaxTTLSeconds).contains(ttl) else {
            throw fail("--ttl \(ttl): a token may live 1 to \(config.jwtMaxTTLSeconds) s (JWT_MAX_TTL_SECONDS)", code: 64)
        }
        guard !subject.isEmpty, subject.utf8.count <= 128 else { throw fail("--subject must be 1 to 128 characters", code: 64) }
        print(try await JWTAuthority(secret: config.jwtSecret, issuer: config.jwtIssuer, maxTTLSeconds: config.jwtMaxTTLSeconds).mint(subject: subject, ttlSeconds: ttl))
    }
}
