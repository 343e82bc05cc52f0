// `ark synthetic-loop`.

import ARKAPI
import ARKAuth
import ARKCore
import ARKSynthetic
import ArgumentParser
import Foundation

struct SyntheticLoopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synthetic-loop",
        abstract: "Send synthetic signals at a steady rate and prove each pass end to end.",
        discussion: """
            One signal in 60 (the 30th, 90th, …) is built to break one Graveyard rule. Each pass is checked in the
            state store: it completed, its trace is continuous, violations were denied and
            compliant signals approved (or denied only by a portfolio limit). Exits 1 on any
            failure. Examples:
              ark synthetic-loop --duration 300
              ark synthetic-loop --duration 60 --rate 10 --redis-url redis://127.0.0.1:6379/0 --debug
              ark synthetic-loop --duration 30 --api-url http://127.0.0.1:8000 --local
            """)

    @Option(help: "Seconds to send for.")
    var duration: Double = 300

    @Option(help: "Signals per second.")
    var rate: Double = 1

    @Option(help: "Redis to send to (default: REDIS_URL).")
    var redisURL: String?

    @Option(help: "Send through the API at this base URL (POST /v1/signals) instead of straight into Redis, e.g. http://127.0.0.1:8000.")
    var apiURL: String?

    @Option(help: "Bearer token for --api-url (default: ARK_API_TOKEN, else one minted from JWT_SECRET).")
    var token: String?

    @Option(help: "Inject a rule violation every N signals (0: never).")
    var violationEvery: Int = 60

    @Option(help: "Seed for the signal generator (default: the clock), to replay a run.")
    var seed: UInt64?

    @Option(help: "Spread the signals over this many accounts (acct-0 …), so every shard gets some (default: ARK_SHARDS × 4 with ARK_SHARDS set, else none: the default account).")
    var accounts: Int?

    @Flag(help: "Print every signal sent and every pass judged.")
    var debug = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard duration > 0 else { throw ValidationError("--duration must be > 0 seconds") }
        guard rate > 0, rate <= 100_000 else { throw ValidationError("--rate must be in (0, 100000] signals per second") }
    }

    func run() async throws {
        common.bootstrapLogging()
        let config = try common.config()
        let url: RedisURL
        do {
            url = try RedisURL(parsing: redisURL ?? config.redisURL)
        } catch {
            throw fail("--redis-url: \(error)", code: 64)
        }
        var api: APITarget?
        if let apiURL {
            guard apiURL.hasPrefix("http://") else { throw fail("--api-url \(apiURL): use http://host:port (TLS is terminated by a proxy in front of the API)", code: 64) }
            var bearer = token ?? ProcessInfo.processInfo.environment["ARK_API_TOKEN"]
            if bearer == nil && !config.jwtSecret.isEmpty {
                bearer = try await JWTAuthority(secret: config.jwtSecret, issuer: config.jwtIssuer, maxTTLSeconds: config.jwtMaxTTLSeconds)
                    .mint(subject: "synthetic-loop", ttlSeconds: min(config.jwtMaxTTLSeconds, Int(duration) + 3600))
            }
            guard let bearer else { throw fail("--api-url needs a token: --token, ARK_API_TOKEN, or JWT_SECRET to mint one", code: 64) }
            api = APITarget(baseURL: apiURL, token: bearer)
        }
        var options = SyntheticOptions(
            duration: duration, rate: rate, redisURL: url, statePath: config.stateDB, graveyardDir: config.graveyardDir,
            passTimeoutMs: config.passTimeoutMs, sloP95LatencyMs: config.sloP95LatencyMs, debug: debug,
            seed: seed ?? UInt64(wallClockNanoseconds()), violationEvery: violationEvery, api: api)
        options.layout = config.shardLayout
        options.intakeReplicas = config.intakeReplicas
        options.accounts = (0..<max(0, accounts ?? (config.shards.map { $0 * 4 } ?? 0))).map { "acct-\($0)" }
        print("Synthetic loop: \(rate) Hz for \(duration) s into \(api.map { $0.baseURL + "/v1/signals" } ?? url.description), judging from \(config.stateDB)")
        let interactive = isatty(STDOUT_FILENO) == 1
        let report: SyntheticReport
        do {
            report = try await SyntheticLoop(options: options).run { line in
                if interactive && !line.hasPrefix("sent") && line.hasPrefix("[") {
                    FileHandle.standardOutput.write(Data(("\r" + line).utf8))
                } else {
                    print(line)
                }
            }
        } catch {
            throw fail("synthetic loop could not run: \(error)")
        }
        if interactive { print("") }
        print(report.summary)
        if !report.passed { throw ExitCode(1) }
    }
}
