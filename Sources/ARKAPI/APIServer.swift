// The API server: its settings, its router and the handlers of every route.

import ARKBus
import ARKAuth
import ARKCore
import ARKIntake
import ARKRisk
import ARKState
import ARKStoreWriter
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

/// The API's settings, from ARKConfig, checked once at start.
public struct APISettings: Sendable {
    public var host: String
    public var port: Int
    public var redisURL: RedisURL
    public var redisPoolSize: Int
    public var stateDB: String
    public var streamMaxLen: Int
    public var shardLayout: ShardLayout
    public var intakeReplicas: Int?
    public var intakeReplicaTimeoutMs: Int
    public var maxSignalBytes: Int
    public var producerTraceIDs: Bool
    public var maxBodyBytes: Int
    /// API_BODY_MEMORY_BYTES: see `BodyBudget`.
    public var bodyMemoryBytes: Int
    public var requestTimeout: Duration
    public var corsOrigins: [String]
    public var authority: JWTAuthority
    public var ratePerMinute: Int
    public var ratePerHour: Int
    /// The witnesses whose cosignatures `POST /v1/audit/cosignatures` takes (ARK_WITNESS_KEYS).
    public var witnessKeys: [Ed25519.PublicKey]

    public init(config: ARKConfig) throws(ConfigError) {
        var problems: [ConfigProblem] = []
        if config.jwtSecret.isEmpty {
            problems.append(ConfigProblem(variable: "JWT_SECRET", message: "not set: the API cannot check tokens, and refuses to run without it",
                                          fix: "set JWT_SECRET to a random string of at least 32 characters (openssl rand -hex 32), or API_ENABLED=false for ark run"))
        }
        // Checked here as well as by `ark config validate`: an API started on its own must not
        // sign with a guessable key. Bytes, not characters: HMAC keys are bytes. In every
        // environment: HS256 keys shorter than the hash are forbidden (RFC 7518 §3.2).
        if !config.jwtSecret.isEmpty && config.jwtSecret.utf8.count < JWTAuthority.minimumSecretBytes {
            problems.append(ConfigProblem(variable: "JWT_SECRET", message: "is \(config.jwtSecret.utf8.count) bytes; the API refuses a signing secret under \(JWTAuthority.minimumSecretBytes) bytes (HS256 needs a key as long as its hash, RFC 7518 §3.2)",
                                          fix: "set JWT_SECRET to openssl rand -hex 32"))
        }
        var url: RedisURL?
        do { url = try RedisURL(parsing: config.redisURL) } catch {
            problems.append(ConfigProblem(variable: "REDIS_URL", message: error.description, fix: "use redis://[:password@]host:port/db or unix:///path/to/redis.sock"))
        }
        var authority: JWTAuthority?
        if problems.isEmpty { do { authority = try JWTAuthority(config: config) } catch {
            problems.append(ConfigProblem(variable: "JWT_JWKS_FILE", message: error.description, fix: "give a JWKS document of RS256 or EdDSA public keys, each with a kid, or unset JWT_JWKS_FILE"))
        } }
        var witnesses: [Ed25519.PublicKey] = []
        do { witnesses = try WitnessKeys.load(config.witnessKeys) } catch {
            problems.append(ConfigProblem(variable: "ARK_WITNESS_KEYS", message: error.description, fix: "give the witnesses' public keys (PEM), comma-separated, or unset it"))
        }
        if config.apiBodyMemoryBytes < BodyBudget.charge(contentLength: config.apiMaxBodyBytes, maxBodyBytes: config.apiMaxBodyBytes) {
            problems.append(ConfigProblem(variable: "API_BODY_MEMORY_BYTES", message: "is \(config.apiBodyMemoryBytes) bytes: a body of API_MAX_BODY_BYTES (\(config.apiMaxBodyBytes)) costs twice that while it is handled, so the largest body could never be taken",
                                          fix: "set API_BODY_MEMORY_BYTES to at least \(2 * config.apiMaxBodyBytes), or lower API_MAX_BODY_BYTES"))
        }
        if !problems.isEmpty { throw ConfigError(problems: problems) }
        witnessKeys = witnesses
        self.authority = authority!
        host = config.apiBind
        port = config.apiPort
        redisURL = url!
        redisPoolSize = config.redisPoolSize
        stateDB = config.stateDB
        streamMaxLen = config.streamMaxLen
        shardLayout = config.shardLayout
        intakeReplicas = config.intakeReplicas
        intakeReplicaTimeoutMs = config.intakeReplicaTimeoutMs
        maxSignalBytes = config.maxSignalBytes
        producerTraceIDs = config.traceIDEnabled
        maxBodyBytes = config.apiMaxBodyBytes
        bodyMemoryBytes = config.apiBodyMemoryBytes
        requestTimeout = .milliseconds(config.apiRequestTimeoutMs)
        corsOrigins = config.apiCORSOrigins
        ratePerMinute = config.apiRateLimitPerMinute
        ratePerHour = config.apiRateLimitPerHour
    }
}

public struct APIServerError: Error, CustomStringConvertible {
    public var description: String
}

/// The API server (DESIGN §7, `API_PORT`): the front door for clients. `POST /v1/signals`
/// enqueues to `ark:kyle`; `GET /v1/traces/{id}` and `GET /v1/decisions` read the state
/// store; `/healthz`, `/readyz` and `/openapi.json` are open, every `/v1` route needs a
/// bearer JWT and is rate limited per client.
public struct APIServer: Service {
    public let settings: APISettings
    let logger: Logger

    public init(settings: APISettings, logger: Logger = Logger(label: "ark.api")) {
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        if settings.host == "0.0.0.0" || settings.host == "::" {
            logger.warning("API server bound to all interfaces: put it behind a TLS proxy, or bind 127.0.0.1 (API_BIND)")
        }
        do { try await settings.authority.ready() } catch { throw APIServerError(description: "\(error). Fix: JWT_JWKS_FILE") }
        let queue = SignalQueue(url: settings.redisURL, size: settings.redisPoolSize, backlogBound: settings.streamMaxLen, layout: settings.shardLayout,
                                replicas: settings.intakeReplicas, replicaTimeoutMs: settings.intakeReplicaTimeoutMs)
        let handlers = APIHandlers(settings: settings, queue: queue)
        let app = Application(
            router: handlers.router(),
            server: .http1(configuration: .init(idleTimeout: .seconds(60))),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "ark-api"),
            onServerRunning: { [logger, settings] _ in logger.info("API server listening", metadata: ["address": .string("\(settings.host):\(settings.port)")]) },
            logger: logger)
        do {
            try await app.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            await queue.shutdown()
            throw APIServerError(description: "cannot listen on \(settings.host):\(settings.port): the address is already in use. Fix: stop the process holding it (ss -ltnp 'sport = :\(settings.port)'), or set API_PORT")
        }
        await queue.shutdown()
    }
}

/// The routes' work, with what they share: the queue, the store, the limits.
struct APIHandlers: Sendable {
    let settings: APISettings
    let queue: SignalQueue
    let intake: SignalIntake
    let store: StoreHandle
    let limiter: RateLimiter
    let bodies: BodyBudget
    let acceptedCounter = Counter(label: MetricName.apiSignals, dimensions: [("result", "accepted")])
    let rejectedCounter = Counter(label: MetricName.apiSignals, dimensions: [("result", "rejected")])
    let backlogRefusedCounter = Counter(label: MetricName.apiSignals, dimensions: [("result", "backlog_full")])
    let conflictCounter = Counter(label: MetricName.apiSignals, dimensions: [("result", "trace_conflict")])
    /// Requests refused before their body was read: API_BODY_MEMORY_BYTES was in use.
    let bodyRefusedCounter = Counter(label: MetricName.apiBodyRefused)

    init(settings: APISettings, queue: SignalQueue) {
        self.settings = settings
        self.queue = queue
        intake = SignalIntake(maxSignalBytes: settings.maxSignalBytes, producerTraceIDs: settings.producerTraceIDs)
        store = StoreHandle(path: settings.stateDB)
        limiter = RateLimiter(perMinute: settings.ratePerMinute, perHour: settings.ratePerHour)
        bodies = BodyBudget(limit: settings.bodyMemoryBytes)
    }

    func router() -> Router<APIContext> {
        let router = Router(context: APIContext.self)
        router.add(middleware: FrontDoorMiddleware(corsOrigins: settings.corsOrigins))
        router.on(RouterPath(APIRoute.healthz.routerPath), method: .get) { _, _ in await health() }
        router.on(RouterPath(APIRoute.readyz.routerPath), method: .get) { _, _ in await ready() }
        router.on(RouterPath(APIRoute.openAPI.routerPath), method: .get) { _, _ in
            bytesResponse(.ok, PackageResources.openapi_json)
        }
        let v1 = router.group().add(middleware: AccessMiddleware(authority: settings.authority, limiter: limiter))
        v1.on(RouterPath(APIRoute.submitSignals.routerPath), method: .post) { request, context in try await submit(request, context) }
        v1.on(RouterPath(APIRoute.trace.routerPath), method: .get) { _, context in try await trace(context) }
        v1.on(RouterPath(APIRoute.traceProof.routerPath), method: .get) { request, context in try await traceProof(request, context) }
        v1.on(RouterPath(APIRoute.decisions.routerPath), method: .get) { request, _ in try await decisions(request) }
        v1.on(RouterPath(APIRoute.tradingStates.routerPath), method: .get) { _, _ in try await tradingStates() }
        v1.on(RouterPath(APIRoute.auditHead.routerPath), method: .get) { _, _ in try await auditHead() }
        v1.on(RouterPath(APIRoute.auditConsistency.routerPath), method: .get) { request, _ in try await auditConsistency(request) }
        v1.on(RouterPath(APIRoute.auditCosign.routerPath), method: .post) { request, context in try await cosign(request, context) }
        for (route, mode) in [(APIRoute.tradingHalt, TradingMode.halted), (.tradingReduce, .reducing), (.tradingResume, .active)] {
            v1.on(RouterPath(route.routerPath), method: .post) { request, context in try await changeTrading(mode, request, context) }
        }
        return router
    }

    // MARK: POST /v1/signals

    /// A body must be JSON when it says what it is (415 otherwise).
    static func requireJSON(_ request: Request) throws {
        if let type = request.headers[.contentType], !type.lowercased().contains("json") {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "Content-Type '\(type)' is not JSON: send application/json")
        }
    }

    /// A body read into one array of the size it announced (no buffer doubling, no second
    /// copy), at most `limit` bytes (413 with `tooLarge` beyond).
    static func readBody(of request: Request, expected: Int?, upTo limit: Int, tooLarge: String) async throws -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(min(expected ?? 65_536, limit))
        for try await chunk in request.body {
            guard body.count + chunk.readableBytes <= limit else { throw APIError(.contentTooLarge, "body_too_large", tooLarge) }
            body.append(contentsOf: chunk.readableBytesView)
        }
        return body
    }

    func submit(_ request: Request, _ context: APIContext) async throws -> Response {
        try Self.requireJSON(request)
        let length = request.headers[.contentLength].flatMap(Int.init)
        if let length, length > settings.maxBodyBytes {
            throw APIError(.contentTooLarge, "body_too_large", "the body is \(length) bytes; the limit is \(settings.maxBodyBytes) (API_MAX_BODY_BYTES): split the batch")
        }
        // Before a byte is read: the bodies in flight stay within API_BODY_MEMORY_BYTES.
        let charge = BodyBudget.charge(contentLength: length, maxBodyBytes: settings.maxBodyBytes)
        guard bodies.reserve(charge) else {
            bodyRefusedCounter.increment()
            throw APIError.unavailable("the API is reading as many request bodies as its memory bound allows (API_BODY_MEMORY_BYTES, \(settings.bodyMemoryBytes) bytes); nothing of this request was read. Retry after the Retry-After seconds", retryAfter: 1)
        }
        defer { bodies.release(charge) }
        var body = try await Self.readBody(of: request, expected: length, upTo: settings.maxBodyBytes,
                                           tooLarge: "the body is larger than \(settings.maxBodyBytes) bytes (API_MAX_BODY_BYTES): split the batch")
        let items: [[UInt8]]
        do {
            items = try intake.split(body).items
        } catch {
            throw APIError(HTTPResponse.Status(code: error.status), error.code, error.message)
        }
        body = []  // the items are copies: the body's memory goes back before they are queued
        let queue = self.queue
        let checked = intake.check(items, nowNs: wallClockNanoseconds())
        let claims = checked.map { c in c.claim.map { TraceClaim(traceID: $0.traceID, digest: $0.digest) } }
        let enqueued: [Enqueued]
        do {
            enqueued = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable(
                "the signal queue did not answer within \(settings.requestTimeout): whether the signals were enqueued is unknown; resubmit them with their trace_id set, which keeps a retry idempotent")) {
                try await queue.enqueue(items, claims: claims)
            }
        } catch let error as EnqueueError {
            throw refusal(error, signals: items.count, context)
        }
        var unavailable: [Int: String] = [:]
        for (i, e) in enqueued.enumerated() {
            if case .unavailable(_, let error) = e { unavailable[i] = refusal(error, signals: 1, context, log: false).message }
        }
        if let first = enqueued.lazy.compactMap({ e -> EnqueueError? in if case .unavailable(_, let err) = e { err } else { nil } }).first {
            let refused = refusal(first, signals: unavailable.count, context)
            // Nothing of the request was queued: the 503 it is (another shard's items conflicted).
            if !enqueued.contains(where: { if case .queued = $0 { true } else { false } }) { throw refused }
        }
        var conflicts: [Int: String] = [:]
        for (i, e) in enqueued.enumerated() {
            if case .conflict(let traceID) = e { conflicts[i] = await conflictReason(traceID) }
        }
        let results = intake.results(checked, queuedTraceIDs: enqueued.map(\.traceID), conflicts: conflicts, unavailable: unavailable)
        if !conflicts.isEmpty {
            conflictCounter.increment(by: conflicts.count)
            for i in conflicts.keys.sorted().prefix(20) {
                context.logger.notice("signal refused: its trace id is held with other content", metadata: ["trace_id": .string(results[i].traceID)])
            }
            if !results.contains(where: \.accepted) {
                let first = results[conflicts.keys.min()!]
                let message = results.count == 1
                    ? first.reasons[0]
                    : "none of the \(results.count) signals was queued: \(conflicts.count) name a trace_id already held with other content (the first: \(first.reasons[0]))"
                return APIError(.conflict, "trace_conflict", message)
                    .response(requestID: context.requestID, extra: ["accepted": 0, "rejected": results.count - conflicts.count, "conflicts": conflicts.count, "signals": results.map(Self.itemJSON)])
            }
        }
        let rejected = results.filter { $0.status == .rejected }
        if !rejected.isEmpty {
            rejectedCounter.increment(by: rejected.count)
            for r in rejected.prefix(20) {
                context.logger.notice("signal rejected", metadata: ["trace_id": .string(r.traceID), "reasons": .string(r.reasons.joined(separator: "; "))])
            }
        }
        acceptedCounter.increment(by: results.count - rejected.count - conflicts.count - unavailable.count)
        if rejected.count == results.count {
            let first = rejected[0]
            let message = results.count == 1
                ? "the signal is invalid: \(first.reasons.joined(separator: "; ")); it is recorded as rejected pass \(first.traceID)"
                : "all \(results.count) signals are invalid (the first: \(first.reasons.joined(separator: "; "))); each is recorded as a rejected pass"
            return APIError(.unprocessableContent, "invalid_signal", message)
                .response(requestID: context.requestID, extra: ["accepted": 0, "rejected": results.count, "signals": results.map(Self.itemJSON)])
        }
        return bytesResponse(.accepted, Self.submitResponse(results))
    }

    /// The 503 for signals the queue did not take, logged (and counted) as it says.
    func refusal(_ error: EnqueueError, signals: Int, _ context: APIContext, log: Bool = true) -> APIError {
        switch error {
        case .backlogFull(let backlog, let bound):
            if log {
                backlogRefusedCounter.increment(by: signals)
                context.logger.warning("signals refused: Kyle's backlog is over its bound", metadata: [
                    "backlog": .stringConvertible(backlog), "bound": .stringConvertible(bound), "signals": .stringConvertible(signals),
                ])
            }
            return APIError.unavailable("ARK is behind: \(backlog) signals wait for Kyle, over the bound of \(bound) (ARK_STREAM_MAXLEN); nothing was enqueued. Retry after the Retry-After seconds", retryAfter: 1)
        case .notReplicated(let got, let wanted, let shard):
            if log {
                context.logger.error("signals not confirmed: too few replicas have them", metadata: [
                    "replicas": .stringConvertible(got), "wanted": .stringConvertible(wanted), "shard": .string(shard), "signals": .stringConvertible(signals),
                ])
            }
            return APIError.unavailable("the signals reached shard \(shard)'s primary but only \(got) of the \(wanted) replicas ARK_INTAKE_REPLICAS asks for confirmed them, so a failover could lose them: not confirmed. They will most likely still be processed; resubmit them with their trace_id set, which keeps the retry idempotent", retryAfter: 1)
        case .redis(let error):
            if log { context.logger.error("enqueue failed", metadata: ["error": .string(error.description), "signals": .stringConvertible(signals)]) }
            return APIError.unavailable(error.isConnectionError
                ? "the signal queue (Redis) is unreachable; nothing was confirmed. Retry later; set trace_id on each signal so a retry cannot duplicate one"
                : error.isServerUnavailable
                ? "the signal queue (Redis) cannot take writes now (out of memory, or loading); nothing was enqueued. Retry later"
                : "the signal queue refused the signals; nothing was enqueued. Retry later", retryAfter: 2)
        }
    }

    /// Why a signal whose trace id the intake holds with other content was not queued, naming
    /// the trace's first outcome as the audit has it (or that it is still in the pipeline).
    func conflictReason(_ traceID: String) async -> String {
        let head = "trace_id \(traceID) is already held with other content: a trace is decided once, by its first signal, so this one was not queued"
        guard let store = try? self.store.get(),
              let pass = try? await withDeadline(settings.requestTimeout, onTimeout: .unavailable("the state store did not answer"), { try await store.readPass(traceID: traceID) })
        else { return head + "; its first outcome is not recorded yet (GET /v1/traces/\(traceID) shows it once it is). Send new content under a new trace_id" }
        var outcome = pass.verdict.rawValue
        if let reason = pass.reasons.first { outcome += " (\(reason))" }
        if let order = pass.orderID { outcome += ", order \(order)" }
        return head + "; its first outcome: \(outcome) (GET /v1/traces/\(traceID)). Send new content under a new trace_id"
    }

    static func itemJSON(_ r: IntakeItem) -> [String: Any] {
        var o: [String: Any] = ["index": r.index, "trace_id": r.traceID, "status": r.status.rawValue]
        if !r.accepted { o["reasons"] = r.reasons }
        return o
    }

    /// Built with ARK's own writer: this is the answer a busy producer waits for.
    static func submitResponse(_ results: [IntakeItem]) -> [UInt8] {
        var w = JSONWriter(capacity: 64 + results.count * 80)
        let rejected = results.reduce(0) { $0 + ($1.status == .rejected ? 1 : 0) }
        let conflicts = results.reduce(0) { $0 + ($1.status == .conflict ? 1 : 0) }
        let unavailable = results.reduce(0) { $0 + ($1.status == .unavailable ? 1 : 0) }
        w.beginObject()
        w.key("accepted"); w.int(Int64(results.count - rejected - conflicts - unavailable))
        w.key("rejected"); w.int(Int64(rejected))
        if conflicts > 0 { w.key("conflicts"); w.int(Int64(conflicts)) }
        if unavailable > 0 { w.key("unavailable"); w.int(Int64(unavailable)) }
        w.key("signals")
        w.beginArray()
        for r in results {
            w.beginObject()
            w.key("index"); w.int(Int64(r.index))
            w.key("trace_id"); w.string(r.traceID)
            w.key("status"); w.string(r.status.rawValue)
            if !r.accepted {
                w.key("reasons")
                w.beginArray()
                for reason in r.reasons { w.string(reason) }
                w.endArray()
            }
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return w.bytes
    }

    // MARK: GET /v1/traces/{trace_id}

    func trace(_ context: APIContext) async throws -> Response {
        guard let traceID = SignalValidator.traceID(fromPath: context.parameters.get("trace_id") ?? "") else {
            throw APIError(.badRequest, "invalid_trace_id", "a trace_id is 1 to \(SignalValidator.maxIDLength) letters, digits and - _ . :")
        }
        let store = try self.store.get()
        let pass = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("the state store did not answer within \(settings.requestTimeout)")) {
            try await store.readPass(traceID: traceID)
        }
        guard let pass else {
            throw APIError(.notFound, "trace_not_found", "trace \(traceID) is not recorded: it is unknown, or still in the pipeline (a pass is recorded within milliseconds; retry shortly)")
        }
        return jsonResponse(.ok, pass.traceObject)
    }

    // MARK: GET /v1/traces/{trace_id}/proof

    /// The pass's audited record, its leaf and the Merkle audit path to the newest signed
    /// checkpoint that covers it (docs/audit.md shows how to check it by hand); with
    /// `?cosigned=true`, to the newest head a witness cosigned, with the cosignatures.
    func traceProof(_ request: Request, _ context: APIContext) async throws -> Response {
        guard let traceID = SignalValidator.traceID(fromPath: context.parameters.get("trace_id") ?? "") else {
            throw APIError(.badRequest, "invalid_trace_id", "a trace_id is 1 to \(SignalValidator.maxIDLength) letters, digits and - _ . :")
        }
        let cosigned: Bool
        switch request.uri.queryParameters["cosigned"].map(String.init) {
        case nil, "false": cosigned = false
        case "true": cosigned = true
        case let other?: throw APIError(.badRequest, "invalid_query", "cosigned is true or false, not '\(other.prefix(40))'")
        }
        var cosignatures: [AuditCosignature] = []
        if cosigned {
            cosignatures = try await newestCosigned()
            guard !cosignatures.isEmpty else {
                throw APIError(.notFound, "not_cosigned", "no witness has cosigned a head of the log yet (ARK_WITNESS_KEYS, ark witness)")
            }
        }
        let head = cosignatures.first?.checkpoint
        let store = try self.store.get()
        var proof: AuditProof?
        do {
            proof = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("the state store did not answer within \(settings.requestTimeout)")) {
                try await store.readAuditProof(traceID: traceID, to: head)
            }
        } catch let e as AuditReader.Problem {
            throw APIError(.conflict, "audit_inconsistent", "the audit log cannot prove \(traceID): \(e.description); run ark verify-audit")
        }
        guard proof != nil else {
            throw APIError(.notFound, "trace_not_found", "trace \(traceID) is not recorded: it is unknown, or still in the pipeline (a pass is recorded within milliseconds; retry shortly)")
        }
        proof!.cosignatures = cosignatures
        return bytesResponse(.ok, proof!.json)
    }

    // MARK: /v1/audit

    /// The witnesses' cosignatures of the largest head any of them cosigned (each witness's
    /// newest, those of that head only), from Redis.
    func newestCosigned() async throws -> [AuditCosignature] {
        let url = settings.redisURL
        let all = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("Redis did not answer within \(settings.requestTimeout)")) {
            do {
                return try AuditCheckpointKey.briefly(url) { try AuditCosignatureKey.read(on: $0) }
            } catch {
                throw APIError.unavailable("the cosignatures cannot be read: Redis is unreachable or refused; retry later", retryAfter: 2)
            }
        }
        let known = Set(settings.witnessKeys.map(\.keyID))
        let valid = all.filter { c in known.contains(c.witnessKeyID) && settings.witnessKeys.contains { c.verify(with: $0) } }
        guard let top = valid.max(by: { $0.checkpoint.size < $1.checkpoint.size }) else { return [] }
        return valid.filter { $0.checkpoint == top.checkpoint }
    }

    /// The log's newest signed head, its rotation records and the witnesses' newest
    /// cosignatures: what a witness fetches each round.
    func auditHead() async throws -> Response {
        let store = try self.store.get()
        let head = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("the state store did not answer within \(settings.requestTimeout)")) {
            try await store.readAuditHead()
        }
        guard let newest = head.newest else {
            throw APIError(.notFound, "no_checkpoint", "the audit log has no signed head yet (Aletheia signs one within ARK_AUDIT_CHECKPOINT_MS of the first record, with ARK_AUDIT_KEY set)")
        }
        var w = JSONWriter(capacity: 2048)
        w.beginObject()
        w.key("checkpoint"); newest.write(to: &w)
        w.key("rotations")
        w.beginArray()
        for r in head.rotations { r.write(to: &w) }
        w.endArray()
        w.endObject()
        return bytesResponse(.ok, w.bytes)
    }

    /// RFC 9162 §2.1.4: the proof that the tree of `to` leaves extends the tree of `from`.
    func auditConsistency(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        func size(_ name: String) throws -> Int {
            guard let text = query[Substring(name)].map(String.init) else { throw APIError(.badRequest, "invalid_range", "\(name) is required: a tree size, 0 or more") }
            guard text.utf8.count <= 16, let n = Int(text), n >= 0 else { throw APIError(.badRequest, "invalid_range", "\(name) is a tree size (a whole number, 0 or more), not '\(text.prefix(40))'") }
            return n
        }
        let (from, to) = (try size("from"), try size("to"))
        guard from <= to else {
            throw APIError(.badRequest, "invalid_range", "from (\(from)) is larger than to (\(to)): a log only grows; a head smaller than one seen before is a rollback")
        }
        let store = try self.store.get()
        let proved = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("the state store did not answer within \(settings.requestTimeout)")) {
            try await store.readConsistency(from: from, to: to)
        }
        guard let proved else {
            throw APIError(.notFound, "beyond_log", "the log has fewer than \(to) leaves: no head of that size was signed here")
        }
        var w = JSONWriter(capacity: 256 + proved.proof.count * 70)
        w.beginObject()
        w.key("from"); w.int(Int64(from))
        w.key("to"); w.int(Int64(to))
        w.key("from_root"); w.string(SHA256.hex(proved.fromRoot))
        w.key("to_root"); w.string(SHA256.hex(proved.toRoot))
        w.key("proof")
        w.beginArray()
        for h in proved.proof { w.string(SHA256.hex(h)) }
        w.endArray()
        w.endObject()
        return bytesResponse(.ok, w.bytes)
    }

    /// A witness's cosignature of a head this log signed: kept in Redis for `/healthz`,
    /// Aletheia's hold and proofs to cosigned heads.
    func cosign(_ request: Request, _ context: APIContext) async throws -> Response {
        try Self.requireJSON(request)
        let body = try await Self.readBody(of: request, expected: nil, upTo: 4096, tooLarge: "a cosignature is under 4,096 bytes")
        guard let c = AuditCosignature(json: body) else {
            throw APIError(.badRequest, "invalid_cosignature", "the body is not a cosignature: the checkpoint's fields (kind, size, root, time_ns, key_id, note, signature) and witness_key_id, cosigned_ns, cosignature")
        }
        guard let key = settings.witnessKeys.first(where: { $0.keyID == c.witnessKeyID }) else {
            throw APIError(.forbidden, "unknown_witness", "witness \(c.witnessKeyID) is not one this log accepts (ARK_WITNESS_KEYS)")
        }
        guard c.verify(with: key) else {
            throw APIError(.unprocessableContent, "invalid_cosignature", "the cosignature does not verify with witness \(c.witnessKeyID)'s key")
        }
        let store = try self.store.get()
        let signedHere = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("the state store did not answer within \(settings.requestTimeout)")) {
            try await store.hasCheckpoint(c.checkpoint)
        }
        guard signedHere else {
            throw APIError(.conflict, "unknown_checkpoint", "this log's store holds no checkpoint of size \(c.checkpoint.size) with that root and signature")
        }
        let url = settings.redisURL
        try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("Redis did not answer within \(settings.requestTimeout)")) {
            do {
                try AuditCheckpointKey.briefly(url) { try AuditCosignatureKey.publish(c, on: $0) }
            } catch {
                throw APIError.unavailable("the cosignature cannot be kept: Redis is unreachable or refused; retry later", retryAfter: 2)
            }
        }
        context.logger.info("head cosigned", metadata: ["witness": .string(c.witnessKeyID), "size": .stringConvertible(c.checkpoint.size)])
        return jsonResponse(.ok, ["accepted": true, "witness_key_id": c.witnessKeyID, "size": c.checkpoint.size])
    }

    // MARK: GET /v1/decisions

    func decisions(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let (limit, since): (Int, APIQuery.Since)
        do {
            (limit, since) = try APIQuery.decisionsPage(limit: query["limit"].map(String.init), since: query["since"].map(String.init))
        } catch {
            throw APIError(HTTPResponse.Status(code: error.status), error.code, error.message)
        }
        let cursor: DecisionCursor
        switch since {
        case .afterSeq(let seq): cursor = .afterSeq(seq)
        case .fromTimeNs(let ns): cursor = .fromTimeNs(ns)
        }
        let store = try self.store.get()
        let pageSize = limit
        let page = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("the state store did not answer within \(settings.requestTimeout)")) {
            try await store.readDecisions(from: cursor, limit: pageSize)
        }
        let items: [[String: Any]] = page.decisions.map { d in
            [
                "seq": d.seq, "trace_id": d.traceID, "signal_id": d.signalID, "symbol": d.symbol, "source": d.source,
                "verdict": d.verdict.rawValue, "reasons": d.reasons, "policy_hash": d.policyHash ?? NSNull(),
                "compliance_score": d.complianceScore ?? NSNull(), "latency_ms": (d.latencyMs * 1000).rounded() / 1000,
                "recorded_at": iso8601(d.doneNs), "order_id": d.orderID ?? NSNull(),
            ]
        }
        let next: Int64 = page.decisions.last?.seq ?? {
            if case .afterSeq(let s) = cursor { return s }
            return 0
        }()
        return jsonResponse(.ok, ["decisions": items, "next_since": next, "has_more": page.hasMore])
    }


    // MARK: /v1/trading

    func tradingStates() async throws -> Response {
        let (url, layout) = (settings.redisURL, settings.shardLayout)
        let read = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("Redis did not answer within \(settings.requestTimeout)")) {
            do {
                return try TradingStateStore.readAll(layout: layout, url: url)
            } catch {
                throw APIError.unavailable("the trading states cannot be read: Redis is unreachable or refused; retry later", retryAfter: 2)
            }
        }
        var states: [[String: Any]] = []
        for (shard, t) in read {
            for (_, c) in t.controls.sorted(by: { $0.key.field < $1.key.field }) {
                var o = Dictionary(uniqueKeysWithValues: c.fields.map { ($0.0, $0.1 as Any) })
                if layout.isTagged { o["shard"] = shard.description }
                states.append(o)
            }
            for (scope, problem) in t.unreadable.sorted(by: { $0.key.field < $1.key.field }) {
                // Read as HALTED (fail closed); when and by whom cannot be read.
                states.append(["scope": scope.field, "mode": "HALTED", "from": "HALTED", "reason": "its state cannot be read: \(problem)", "by": "unknown",
                               "at": iso8601(0)] as [String: Any])
            }
        }
        return jsonResponse(.ok, ["states": states])
    }

    func changeTrading(_ mode: TradingMode, _ request: Request, _ context: APIContext) async throws -> Response {
        try Self.requireJSON(request)
        let body = try await Self.readBody(of: request, expected: nil, upTo: TradingChangeRequest.maxBytes,
                                           tooLarge: "the body is over \(TradingChangeRequest.maxBytes) bytes: send {\"reason\": \"why\", \"account\": \"name\"}")
        let change: TradingChangeRequest
        do {
            change = try TradingChangeRequest.parse(body)
        } catch {
            throw APIError(.badRequest, "invalid_request", error.description)
        }
        let (url, layout) = (settings.redisURL, settings.shardLayout)
        let by = "api:" + (context.client.subject ?? "unknown")
        let set = try await withDeadline(settings.requestTimeout, onTimeout: .unavailable("Redis did not answer within \(settings.requestTimeout): whether the state changed is unknown; GET /v1/trading says")) {
            do {
                return try TradingStateStore.set(mode, scope: change.account.map { .account($0) } ?? .global, reason: change.reason, by: by, layout: layout, url: url)
            } catch let e as TradingStateStore.Problem {
                throw APIError(.badRequest, "invalid_request", e.description)
            } catch {
                throw APIError.unavailable("the trading state cannot be set: Redis is unreachable or refused; nothing changed. Retry later", retryAfter: 2)
            }
        }
        context.logger.notice("trading state set", metadata: [
            "mode": .string(mode.rawValue), "scope": .string(set.first?.scope.field ?? ""), "by": .string(by), "reason": .string(change.reason),
        ])
        return jsonResponse(.ok, ["changes": set.map { c -> [String: Any] in Dictionary(uniqueKeysWithValues: c.fields.map { ($0.0, $0.1 as Any) }) }])
    }

    // MARK: health

    /// 200 healthy, 200 degraded (signals are taken, but traces cannot be read yet), 503
    /// unhealthy (Redis is unreachable: nothing can be taken).
    func health() async -> Response {
        let redis = await queue.ping()
        let storeProblem: String?
        do { _ = try store.get(); storeProblem = nil } catch { storeProblem = error.message }
        let status = redis != nil ? "unhealthy" : storeProblem != nil ? "degraded" : "healthy"
        return jsonResponse(redis == nil ? .ok : .serviceUnavailable, [
            "status": status,
            "checks": [
                "redis": ["status": redis == nil ? "ok" : "failed", "detail": redis?.description ?? "reachable: signals are accepted"],
                "state_store": ["status": storeProblem == nil ? "ok" : "failed", "detail": storeProblem ?? "readable: traces and decisions are served"],
            ],
        ])
    }

    /// Ready when a signal sent now would be taken: Redis answers.
    func ready() async -> Response {
        if let problem = await queue.ping() {
            return jsonResponse(.serviceUnavailable, ["ready": false, "detail": "Redis unreachable: \(problem)"])
        }
        return jsonResponse(.ok, ["ready": true, "detail": "accepting signals"])
    }
}

/// The state store, opened read-only on first use: the API may start before Aletheia has
/// created it, and answers 503 for reads until then.
final class StoreHandle: Sendable {
    let path: String
    private let store = Mutex<StateStore?>(nil)

    init(path: String) { self.path = path }

    func get() throws(APIError) -> StateStore {
        let result = store.withLock { cached -> Result<StateStore, APIError> in
            if let cached { return .success(cached) }
            do {
                let opened = try StateStore(path: path, readOnly: true)
                cached = opened
                return .success(opened)
            } catch {
                // The path and SQLite's text stay in the log: a client learns nothing of the host.
                Logger(label: "ark.api").error("state store cannot be opened", metadata: ["path": .string(path), "error": .string("\(error)")])
                return .failure(.unavailable("the state store cannot be read yet; it appears once Aletheia records the first pass", retryAfter: 5))
            }
        }
        return try result.get()
    }
}
