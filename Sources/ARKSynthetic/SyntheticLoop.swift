// The synthetic loop: signals sent at a rate and each pass proved end to end.

import ARKBus
import ARKCore
import ARKHTTPClient
import ARKState
import Foundation
import Graveyard
import ARKRisk

public struct SyntheticOptions: Sendable {
    public var duration: Double
    public var rate: Double
    public var redisURL: RedisURL
    public var statePath: String
    public var graveyardDir: String
    /// A pass not recorded this long after it was sent counts as lost.
    public var passTimeoutMs: Double
    public var sloP95LatencyMs: Double
    public var debug: Bool
    public var seed: UInt64
    public var violationEvery: Int
    /// Send through the API (`POST /v1/signals`) instead of straight into Kyle's streams.
    public var api: APITarget?
    /// ARK_SHARDS of the pipeline: signals go to their account's shard.
    public var layout: ShardLayout = .single
    /// ARK_INTAKE_REPLICAS: a signal counts as sent once that many replicas have it (nil: 1 on a
    /// cluster, 0 on a single node).
    public var intakeReplicas: Int?
    /// The accounts the signals are spread over, in turn (empty: none named, `default`).
    public var accounts: [String] = []

    public init(duration: Double, rate: Double, redisURL: RedisURL, statePath: String, graveyardDir: String, passTimeoutMs: Double = 5000, sloP95LatencyMs: Double = 400, debug: Bool = false, seed: UInt64 = UInt64(wallClockNanoseconds()), violationEvery: Int = 60, api: APITarget? = nil) {
        self.api = api
        self.duration = duration
        self.rate = rate
        self.redisURL = redisURL
        self.statePath = statePath
        self.graveyardDir = graveyardDir
        self.passTimeoutMs = passTimeoutMs
        self.sloP95LatencyMs = sloP95LatencyMs
        self.debug = debug
        self.seed = seed
        self.violationEvery = violationEvery
    }
}

/// The API to send through: its base URL and a bearer token.
public struct APITarget: Sendable {
    public var baseURL: String
    public var token: String

    public init(baseURL: String, token: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
    }
}

/// What a synthetic run proved.
public struct SyntheticReport: Sendable {
    public var sent = 0
    public var completed = 0
    public var approved = 0
    public var violationsInjected = 0
    public var violationsDenied = 0
    /// Compliant signals denied because the book reached a portfolio limit (not a failure).
    public var portfolioLimited = 0
    public var failures: [String] = []
    /// Portfolio limits the filled book broke at the end of the run (nil: not checked, Redis
    /// out of reach). Any breach fails the run.
    public var limitBreaches: [String]?
    public var lost = 0
    /// Traces not recorded within the pass timeout, oldest first.
    public var lostTraces: [String] = []
    public var latenciesMs: [Double] = []
    public var elapsedSeconds = 0.0
    /// How long sending took (the rest of `elapsedSeconds` is waiting for the last passes).
    public var sendSeconds = 0.0
    public var rate = 0.0
    public var sloP95LatencyMs = 400.0

    public func percentile(_ q: Double) -> Double {
        guard !latenciesMs.isEmpty else { return 0 }
        let sorted = latenciesMs.sorted()
        let rank = max(0, min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        return sorted[rank]
    }

    /// Signals sent per second while sending: the first signal goes at t=0, so n signals span n-1 intervals.
    public var sendRate: Double { sendSeconds > 0 ? Double(max(sent - 1, 1)) / sendSeconds : 0 }

    public var throughputHz: Double { elapsedSeconds > 0 ? Double(completed) / elapsedSeconds : 0 }

    /// Every criterion of the original system's validation loop.
    public var checks: [(name: String, ok: Bool)] {
        [
            ("Throughput ≥ \(rate) Hz (sent " + String(format: "%.2f", sendRate) + " Hz)", sent > 0 && (sendSeconds < 1 || sendRate >= 0.95 * rate)),
            ("Zero errors (\(failures.count) failed, \(lost) lost)", failures.isEmpty && lost == 0),
            ("p95 latency ≤ \(sloP95LatencyMs) ms (\(String(format: "%.2f", percentile(0.95))) ms)", completed > 0 && percentile(0.95) <= sloP95LatencyMs),
            ("Violations correctly denied (\(violationsDenied)/\(violationsInjected)\(violationsInjected == 0 ? ", none injected in this run" : ""))", violationsDenied == violationsInjected),
            ("Trace continuity Kyle→Aletheia (\(completed)/\(sent) complete)", completed == sent),
            ("Portfolio limits hold on the filled book" + (limitBreaches.map { $0.isEmpty ? "" : " (\($0.joined(separator: "; ")))" } ?? " (not checked: Redis out of reach)"),
             limitBreaches?.isEmpty ?? true),
        ]
    }

    public var passed: Bool { checks.allSatisfy(\.ok) }

    public var summary: String {
        var lines = [
            "Synthetic validation: \(sent) signals in \(String(format: "%.1f", elapsedSeconds)) s",
            "  completed \(completed), approved \(approved), portfolio-limited \(portfolioLimited), violations denied \(violationsDenied)/\(violationsInjected), lost \(lost)",
            String(format: "  latency ms: p50 %.2f  p95 %.2f  p99 %.2f  max %.2f", percentile(0.5), percentile(0.95), percentile(0.99), latenciesMs.max() ?? 0),
        ]
        for c in checks { lines.append("  \(c.ok ? "✓" : "✗") \(c.name)") }
        for f in failures.prefix(20) { lines.append("  failure: \(f)") }
        if failures.count > 20 { lines.append("  … and \(failures.count - 20) more failures") }
        for t in lostTraces.prefix(5) { lines.append("  lost: \(t) not recorded within the pass timeout") }
        lines.append(passed ? "Synthetic validation PASSED ✓" : "Synthetic validation FAILED ✗")
        return lines.joined(separator: "\n")
    }
}

/// How a pass that ended as its signal was built to end, ended.
public enum PassOutcome: Sendable, Equatable {
    case approved
    /// A compliant signal denied only because the book reached a portfolio limit.
    case portfolioLimited
    case violationDenied
}

/// Judges one recorded pass against what its signal was built to do.
public func judge(_ pass: StoredPass, expectation: Expectation, portfolioRules: Set<String>) -> Result<PassOutcome, SyntheticFailure> {
    guard pass.continuityOK else { return .failure(SyntheticFailure("\(pass.traceID): broken trace: \(pass.reasons.joined(separator: "; "))")) }
    switch (expectation, pass.verdict) {
    case (.violation(let rule), .denied):
        return pass.violatedRules.contains(rule)
            ? .success(.violationDenied)
            : .failure(SyntheticFailure("\(pass.traceID): denied, but not for \(rule): \(pass.reasons.joined(separator: "; "))"))
    case (.violation(let rule), let v):
        return .failure(SyntheticFailure("\(pass.traceID): injected \(rule) violation ended \(v.rawValue)"))
    case (.compliant, .approved):
        return .success(.approved)
    case (.compliant, .denied):
        let rules = Set(pass.violatedRules)
        return !rules.isEmpty && rules.isSubset(of: portfolioRules)
            ? .success(.portfolioLimited)
            : .failure(SyntheticFailure("\(pass.traceID): false denial of a compliant signal: \(pass.reasons.joined(separator: "; "))"))
    case (.compliant, let v):
        return .failure(SyntheticFailure("\(pass.traceID): compliant signal ended \(v.rawValue): \(pass.reasons.joined(separator: "; "))"))
    }
}

public struct SyntheticFailure: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The 1 Hz (or faster) validation loop: sends synthetic signals into `ark:kyle` at a steady
/// rate, then proves each one end to end from the state store: it completed, its trace is
/// continuous, violations were denied and compliant signals approved.
public actor SyntheticLoop {
    private nonisolated let executor = ThreadExecutor(name: "ark-synthetic")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    let options: SyntheticOptions

    public init(options: SyntheticOptions) {
        self.options = options
    }

    public func run(progress: @Sendable (String) -> Void) async throws -> SyntheticReport {
        defer { executor.shutdown() }
        let portfolioRules: Set<String>
        let rules: RuleSet
        switch Graveyard.check(directory: options.graveyardDir) {
        case .intact(let r):
            rules = r
            portfolioRules = RiskLimits.limitRules(.intact(r))
        case let other: throw SyntheticFailure("cannot judge passes: the Graveyard is not intact: \(other.problem ?? "")")
        }
        let queue = SignalQueue(url: options.redisURL, size: 1, backlogBound: .max, layout: options.layout, replicas: options.intakeReplicas)
        let connection = RedisConnection(url: options.redisURL)
        defer { connection.close() }
        let store = try StateStore(path: options.statePath)

        var report = SyntheticReport()
        report.rate = options.rate
        report.sloP95LatencyMs = options.sloP95LatencyMs
        let runID = String(UInt64(wallClockNanoseconds()) % 1_000_000_000, radix: 36)
        var signals = SyntheticSignals(runID: runID, seed: options.seed, violationEvery: options.violationEvery,
                                       prices: Self.trustedPrices(url: options.redisURL, layout: options.layout))
        let total = max(1, Int((options.duration * options.rate).rounded()))
        var outstanding: [String: (Expectation, Int64)] = [:]
        let start = monotonicNanoseconds()
        var lastPoll: Int64 = 0
        // Through the API, what is due goes as one batch a second at most: a request per
        // signal would spend the client's rate limit (60/min by default) at once.
        let sendInterval: Int64 = options.api == nil ? 0 : 1_000_000_000
        var lastSend = start - sendInterval
        var lastProgress: Int64 = 0
        // After the last send, passes still unrecorded past the pass timeout are lost.
        var drainDeadline: Int64?
        // Signals the API could not queue because their shard could not take them, and since when.
        var resend: [[UInt8]] = []
        var resendSince: Int64?

        while true {
            let now = monotonicNanoseconds()
            if (report.sent < total || !resend.isEmpty) && now - lastSend >= sendInterval {
                let due = min(total, Int(Double(now - start) / 1e9 * options.rate) + 1)
                if due > report.sent || !resend.isEmpty {
                    lastSend = now
                    // Signals a shard could not take go again with the next batch, so the other
                    // shards' signals do not wait for it.
                    var payloads: [[UInt8]] = resend
                    resend = []
                    while report.sent < due && payloads.count < 1000 {
                        report.sent += 1
                        let wall = wallClockNanoseconds()
                        let (event, expectation) = signals.make(report.sent, nowNs: wall)
                        if case .violation = expectation { report.violationsInjected += 1 }
                        outstanding[event.traceID] = (expectation, wall)
                        payloads.append(Self.payload(event, account: options.accounts.isEmpty ? nil : options.accounts[report.sent % options.accounts.count]))
                        if options.debug { progress("sent \(event.traceID) \(event.symbol) \(event.action ?? "") \(event.price)\(event.injectedViolation.map { " injected=\($0)" } ?? "")") }
                    }
                    if let api = options.api {
                        resend = try await post(payloads, to: api, progress: progress)
                        if resend.isEmpty {
                            resendSince = nil
                        } else if let since = resendSince, now - since > 60_000_000_000 {
                            throw SyntheticFailure("for a minute the API answered that the shard of \(resend.count) signals cannot take them")
                        } else if resendSince == nil {
                            resendSince = now
                        }
                    } else {
                        try await send(payloads, through: queue, progress: progress)
                    }
                    if report.sent == total && resend.isEmpty && drainDeadline == nil {
                        let end = monotonicNanoseconds()
                        report.sendSeconds = Double(end - start) / 1e9
                        drainDeadline = end + Int64(options.passTimeoutMs * 1e6) + 2_000_000_000
                    }
                }
            }
            if now - lastPoll >= 200_000_000 {
                lastPoll = now
                let found = try store.passes(traceIDs: Array(outstanding.keys))
                for (traceID, pass) in found {
                    guard let (expectation, _) = outstanding.removeValue(forKey: traceID) else { continue }
                    report.completed += 1
                    report.latenciesMs.append(pass.latencyMs)
                    switch judge(pass, expectation: expectation, portfolioRules: portfolioRules) {
                    case .success(let kind):
                        switch kind {
                        case .approved: report.approved += 1
                        case .portfolioLimited: report.portfolioLimited += 1
                        case .violationDenied: report.violationsDenied += 1
                        }
                        if options.debug { progress("\(traceID): \(pass.verdict.rawValue) in \(String(format: "%.2f", pass.latencyMs)) ms (\(kind))") }
                    case .failure(let f):
                        report.failures.append(f.description)
                        if options.debug { progress("FAIL \(f.description)") }
                    }
                }
            }
            if now - lastProgress >= 1_000_000_000 && !options.debug {
                lastProgress = now
                progress(String(format: "[%5.1fs] sent %d/%d  completed %d  outstanding %d  failures %d", Double(now - start) / 1e9, report.sent, total, report.completed, outstanding.count, report.failures.count))
            }
            if report.sent == total && outstanding.isEmpty { break }
            if let deadline = drainDeadline, now > deadline { break }
            let nextDue = start + Int64(Double(report.sent) / options.rate * 1e9)
            let wait = report.sent < total ? max(500_000, min(50_000_000, nextDue - monotonicNanoseconds())) : 50_000_000
            try await Task.sleep(for: .nanoseconds(wait))
        }
        report.elapsedSeconds = Double(monotonicNanoseconds() - start) / 1e9
        report.lost = outstanding.count
        report.lostTraces = outstanding.sorted { $0.value.1 < $1.value.1 }.map(\.key)
        report.limitBreaches = Self.limitBreaches(rules: rules, connection: connection, layout: options.layout)
        await queue.shutdown()
        return report
    }

    /// The signal as a producer sends it: the event, with the account it belongs to first.
    static func payload(_ event: Event, account: String?) -> [UInt8] {
        let encoded = EventCodec.encode(event)
        guard let account else { return encoded }
        var w = JSONWriter()
        w.beginObject()
        w.key("account")
        w.string(account)
        // The event's members follow the account's, in the same object.
        return w.bytes + [UInt8(ascii: ",")] + encoded.dropFirst()
    }

    /// The last trusted price of each synthetic symbol (`ark:marks`, the first shard that has
    /// one, each read on its own node); none when Redis cannot be asked (the walk then starts
    /// at its own prices).
    static func trustedPrices(url: RedisURL, layout: ShardLayout) -> [String: Double] {
        var out: [String: Double] = [:]
        for shard in layout.shards {
            let c = RedisConnection(url: url, commandTimeout: .seconds(5), slotKey: shard.tagged ? shard.slotKey : nil)
            defer { c.close() }
            guard (try? c.connect()) != nil, let reply = try? c.command(["HMGET", .text(shard.marks)] + SyntheticSignals.symbols.map { .text($0) }) else { continue }
            for (symbol, value) in zip(SyntheticSignals.symbols, reply.array ?? []) where out[symbol] == nil {
                if let text = value.string, let r = PriceBand.Reference(stored: text) { out[symbol] = r.price }
            }
        }
        return out
    }

    /// The portfolio limits the books Kenny published (one per shard) break now; nil when
    /// Redis cannot be asked. A shard whose book cannot be read is named as not checked.
    static func limitBreaches(rules: RuleSet, connection: RedisConnection, layout: ShardLayout) -> [String]? {
        do {
            if !connection.isConnected { try connection.connect() }
            var breaches: [String] = []
            var unread = 0
            for shard in layout.shards {
                let fields: [(field: String, value: [UInt8])]
                do {
                    fields = try connection.hashEntries(shard.portfolio)
                } catch {
                    guard layout.shards.count > 1 else { throw error }
                    unread += 1
                    breaches.append("the book of shard \(shard) was not checked: \(error)")
                    continue
                }
                breaches += PortfolioHash.breaches(fields, rules: rules).map { layout.shards.count > 1 ? "shard \(shard): " + $0 : $0 }
            }
            return unread == layout.shards.count ? nil : breaches
        } catch {
            return nil
        }
    }

    /// Sends one batch through the API. Over the rate limit (429) it waits the Retry-After
    /// and sends the same batch again, so later signals travel in bigger batches and none is
    /// lost; an unreachable or unavailable API is retried with back-off for a minute. The
    /// signals carry their trace ids, so a batch sent twice stays one pass per signal.
    /// Returns the items a shard could not take (`unavailable`: the others were queued), for
    /// the next batch.
    private func post(_ payloads: [[UInt8]], to api: APITarget, progress: @Sendable (String) -> Void) async throws -> [[UInt8]] {
        var body: [UInt8] = [UInt8(ascii: "[")]
        for (i, p) in payloads.enumerated() {
            if i > 0 { body.append(UInt8(ascii: ",")) }
            body += p
        }
        body.append(UInt8(ascii: "]"))
        var backoff = Backoff()
        let deadline = monotonicNanoseconds() + 60_000_000_000
        while true {
            let response: HTTPClientResponse
            do {
                response = try await HTTPClient.request("POST", api.baseURL + "/v1/signals",
                                                        headers: [("Authorization", "Bearer " + api.token), ("Content-Type", "application/json")], body: body)
            } catch {
                guard monotonicNanoseconds() < deadline else { throw SyntheticFailure("the API at \(api.baseURL) is unreachable: \(error)") }
                if backoff.attempt == 0 { progress("API unreachable (\(error)); retrying") }
                try await Task.sleep(for: backoff.next())
                continue
            }
            switch response.status {
            case 202:
                if let rejected = response.json?["rejected"] as? Int, rejected > 0 {
                    throw SyntheticFailure("the API rejected \(rejected) synthetic signals: \(response.text.prefix(500))")
                }
                // Items whose shard could not take them: sent again with the next batch.
                let items = response.json?["signals"] as? [[String: Any]] ?? []
                let again = items.enumerated().compactMap { i, item in item["status"] as? String == "unavailable" && i < payloads.count ? payloads[i] : nil }
                if !again.isEmpty && options.debug { progress("\(again.count) signals' shard cannot take them now; sending them again with the next batch") }
                return again
            case 429:
                let wait = Int(response.header("Retry-After") ?? "") ?? 1
                if options.debug { progress("rate limited by the API; sending again in \(wait) s") }
                try await Task.sleep(for: .seconds(wait))
            case 503 where monotonicNanoseconds() < deadline:
                if backoff.attempt == 0 { progress("API unavailable (\(response.text.prefix(200))); retrying") }
                // As a producer should: no longer than the API's Retry-After between tries.
                let retryAfter = Duration.seconds(Int(response.header("Retry-After") ?? "") ?? 2)
                try await Task.sleep(for: min(backoff.next(), retryAfter))
            default:
                throw SyntheticFailure("POST \(api.baseURL)/v1/signals answered \(response.status): \(response.text.prefix(500))")
            }
        }
    }

    /// Queues one batch as the API does (by shard, confirmed by WAIT on a cluster); if Redis
    /// goes away, a primary fails over or a replica is slow to confirm, sends it again with
    /// back-off for a minute (the signals keep their trace ids: a signal written twice is one pass).
    private func send(_ payloads: [[UInt8]], through queue: SignalQueue, progress: @Sendable (String) -> Void) async throws {
        var backoff = Backoff()
        let deadline = monotonicNanoseconds() + 60_000_000_000
        while true {
            do {
                _ = try await queue.enqueue(payloads)
                return
            } catch {
                let retry: Bool
                switch error {
                case .redis(let e): retry = e.isConnectionError || e.isServerUnavailable
                case .notReplicated: retry = true
                case .backlogFull: retry = false
                }
                guard retry && monotonicNanoseconds() < deadline else { throw SyntheticFailure("cannot queue signals: \(error)") }
                if backoff.attempt == 0 { progress("Redis cannot take the signals now (\(error)); retrying") }
                try await Task.sleep(for: backoff.next())
            }
        }
    }
}
