// A witness's rounds: fetch the newest head, prove it consistent, cosign it or alarm.

import ARKCore
import ARKHTTPClient
import Foundation
import Logging
import Synchronization

/// Where a witness fetches the log from, and how.
public struct WitnessSettings: Sendable {
    /// The ARK API's base URL (`http://host:port`).
    public var apiURL: String
    /// A file holding the bearer token (re-read every round, so it can be renewed).
    public var tokenFile: String
    public var interval: Duration
    public var store: WitnessStore

    public init(apiURL: String, tokenFile: String, interval: Duration, store: WitnessStore) {
        self.apiURL = apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
        self.tokenFile = tokenFile
        self.interval = interval
        self.store = store
    }
}

/// What one round found.
public enum WitnessRound: Sendable, Equatable {
    case cosigned(size: Int)
    case unchanged(size: Int)
    /// The log could not be asked (network, token, server): no verdict, no alarm.
    case unreachable(String)
    case alarmed(WitnessAlarm)
}

/// The witness's figures, for its `/metrics` and `/healthz`.
public struct WitnessStatus: Sendable {
    public var alarm: WitnessAlarm?
    public var cosignedSize = 0
    public var cosignedTotal = 0
    public var lastSuccessNs: Int64 = 0
    public var lastProblem: String?
    public var rounds = 0
}

/// `ark witness run`: on a host of its own, each round fetches the log's newest signed head
/// (`GET /v1/audit/checkpoint`), checks its signature from the pinned log key and, with a
/// consistency proof (`GET /v1/audit/consistency`), that it extends the last head cosigned;
/// then cosigns it, keeps it, and hands the cosignature to the log
/// (`POST /v1/audit/cosignatures`). A rollback, a fork, a foreign key or an unprovable head
/// raises an alarm that stays until `ark witness reset`.
public final class Witness: Sendable {
    public let settings: WitnessSettings
    let key: Ed25519.PrivateKey
    let judge: WitnessJudge
    let logger: Logger
    public let status = Mutex(WitnessStatus())

    public init(settings: WitnessSettings, logger: Logger = Logger(label: "ark.witness")) throws(WitnessStore.Problem) {
        self.settings = settings
        key = try settings.store.key()
        judge = WitnessJudge(logKey: try settings.store.logKey())
        self.logger = logger
        let alarm = settings.store.alarm()
        let held = settings.store.held()
        status.withLock {
            $0.alarm = alarm
            $0.cosignedSize = held?.checkpoint.size ?? 0
        }
    }

    public var keyID: String { key.publicKey.keyID }

    /// Rounds every `settings.interval` until cancelled.
    public func run() async {
        logger.info("witness running", metadata: ["api": .string(settings.apiURL), "witness_key_id": .string(keyID), "log_key_id": .string(judge.logKey.keyID)])
        while !Task.isCancelled {
            _ = await round()
            try? await Task.sleep(for: settings.interval)
        }
    }

    /// One round. An alarm already raised is reported again, and nothing is cosigned.
    public func round() async -> WitnessRound {
        status.withLock { $0.rounds += 1 }
        if let alarm = status.withLock({ $0.alarm }) { return .alarmed(alarm) }
        let outcome: WitnessRound
        do {
            outcome = try await check()
        } catch let e as Unreachable {
            outcome = .unreachable(e.description)
        } catch {
            outcome = .unreachable("\(error)")
        }
        switch outcome {
        case .cosigned(let size), .unchanged(let size):
            status.withLock {
                $0.lastSuccessNs = wallClockNanoseconds()
                $0.lastProblem = nil
                $0.cosignedSize = size
            }
        case .unreachable(let why):
            status.withLock { $0.lastProblem = why }
            logger.warning("the log could not be checked this round", metadata: ["problem": .string(why)])
        case .alarmed(let alarm):
            status.withLock { $0.alarm = alarm }
            do { try settings.store.raise(alarm) } catch { logger.error("cannot keep the alarm on disk", metadata: ["error": .string(error.description)]) }
            logger.critical("AUDIT LOG ALARM: the witness stopped cosigning", metadata: ["kind": .string(alarm.kind.rawValue), "problem": .string(alarm.message)])
        }
        return outcome
    }

    struct Unreachable: Error, CustomStringConvertible { var description: String }

    func check() async throws -> WitnessRound {
        let headers = try authorization()
        let head = try await get("/v1/audit/checkpoint", headers)
        guard let newest = (head["checkpoint"] as? [String: Any]).flatMap(Self.checkpoint) else {
            throw Unreachable(description: "GET /v1/audit/checkpoint did not give a checkpoint")
        }
        let rotations = (head["rotations"] as? [[String: Any]] ?? []).compactMap(Self.checkpoint)
        let held = settings.store.held()
        let now = wallClockNanoseconds()
        switch judge.assess(held: held?.checkpoint, newest: newest, rotations: rotations) {
        case .alarm(let kind, let message):
            return .alarmed(WitnessAlarm(kind, message, atNs: now))
        case .unchanged:
            if let held { try await deliver(held, headers) }
            return .unchanged(size: newest.size)
        case .cosignFirst:
            logger.notice("no head held yet: the log is trusted from this one on", metadata: ["size": .stringConvertible(newest.size)])
        case .prove(let from, let to):
            let response = try await request("GET", "/v1/audit/consistency?from=\(from)&to=\(to)", headers)
            guard response.status == 200 else {
                if response.status == 404 || response.status == 400 || response.status == 409 {
                    return .alarmed(WitnessAlarm(.unprovable, "the log signed a head of \(to) leaves but cannot prove it extends the cosigned head of \(from): \(response.status) \(response.text.prefix(300))", atNs: now))
                }
                throw Unreachable(description: "GET /v1/audit/consistency: \(response.status) \(response.text.prefix(200))")
            }
            let hashes = (response.json?["proof"] as? [String] ?? []).map { bytes(fromHex: $0) }
            guard hashes.allSatisfy({ $0?.count == 32 }) else {
                return .alarmed(WitnessAlarm(.unprovable, "the consistency proof from \(from) to \(to) is not a list of SHA-256 hashes", atNs: now))
            }
            if let (kind, message) = judge.check(held: held!.checkpoint, newest: newest, proof: hashes.map { $0! }) {
                return .alarmed(WitnessAlarm(kind, message, atNs: now))
            }
        }
        let cosignature = try AuditCosignature.sign(newest, with: key, timeNs: now)
        try settings.store.append(cosignature)
        status.withLock { $0.cosignedTotal += 1 }
        try await deliver(cosignature, headers)
        return .cosigned(size: newest.size)
    }

    /// Hands a cosignature to the log (again each round until the log holds it: harmless).
    func deliver(_ c: AuditCosignature, _ headers: [(String, String)]) async throws {
        let r = try await request("POST", "/v1/audit/cosignatures", headers + [("Content-Type", "application/json")], body: c.json)
        if r.status != 200 {
            logger.warning("the log did not take the cosignature", metadata: ["status": .stringConvertible(r.status), "body": .string(String(r.text.prefix(300)))])
        }
    }

    func authorization() throws -> [(String, String)] {
        guard let token = try? readFileBytes(settings.tokenFile) else {
            throw Unreachable(description: "cannot read the token file \(settings.tokenFile)")
        }
        return [("Authorization", "Bearer " + String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))]
    }

    func get(_ path: String, _ headers: [(String, String)]) async throws -> [String: Any] {
        let r = try await request("GET", path, headers)
        guard r.status == 200, let o = r.json else { throw Unreachable(description: "GET \(path): \(r.status) \(r.text.prefix(200))") }
        return o
    }

    func request(_ method: String, _ path: String, _ headers: [(String, String)], body: [UInt8]? = nil) async throws -> HTTPClientResponse {
        do {
            return try await HTTPClient.request(method, settings.apiURL + path, headers: headers, body: body, timeout: .seconds(10))
        } catch {
            throw Unreachable(description: "\(method) \(settings.apiURL)\(path): \(error)")
        }
    }

    /// A checkpoint as the API writes one (`AuditCheckpoint.write`), read from its JSON object.
    public static func checkpoint(_ o: [String: Any]) -> AuditCheckpoint? {
        guard let kind = (o["kind"] as? String).flatMap(AuditCheckpoint.Kind.init(rawValue:)), let size = (o["size"] as? NSNumber)?.intValue, size >= 0,
              let root = (o["root"] as? String).flatMap(bytes(fromHex:)), root.count == 32, let time = (o["time_ns"] as? NSNumber)?.int64Value,
              let keyID = o["key_id"] as? String, let signature = (o["signature"] as? String).flatMap(bytes(fromHex:)) else { return nil }
        return AuditCheckpoint(kind: kind, size: size, root: root, timeNs: time, keyID: keyID, note: o["note"] as? String ?? "", signature: signature)
    }

    /// `/metrics` in Prometheus's text format.
    public func metricsText() -> String {
        let s = status.withLock { $0 }
        return """
            # HELP ark_witness_alarm 1 while the witness is alarmed (a rollback, a fork, a foreign key or an unprovable head): it cosigns nothing until reset.
            # TYPE ark_witness_alarm gauge
            ark_witness_alarm \(s.alarm == nil ? 0 : 1)
            # HELP ark_witness_cosigned_size Leaves of the newest head the witness cosigned.
            # TYPE ark_witness_cosigned_size gauge
            ark_witness_cosigned_size \(s.cosignedSize)
            # HELP ark_witness_cosigned_total Heads cosigned since the witness started.
            # TYPE ark_witness_cosigned_total counter
            ark_witness_cosigned_total \(s.cosignedTotal)
            # HELP ark_witness_last_success_seconds When a round last checked the log (Unix time).
            # TYPE ark_witness_last_success_seconds gauge
            ark_witness_last_success_seconds \(Double(s.lastSuccessNs) / 1e9)

            """
    }

    /// `/healthz`: 503 while alarmed; 200 `degraded` while the log could not be checked for
    /// three intervals; else 200 `healthy`.
    public func health(nowNs: Int64) -> (status: Int, body: [String: Any]) {
        let s = status.withLock { $0 }
        if let a = s.alarm {
            return (503, ["status": "alarm", "alarm": ["kind": a.kind.rawValue, "message": a.message, "at_ns": a.atNs], "cosigned_size": s.cosignedSize])
        }
        let c = settings.interval.components
        let intervalNs = c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
        if nowNs - s.lastSuccessNs > 3 * intervalNs {
            return (200, ["status": "degraded", "detail": s.lastProblem ?? "no round has checked the log yet", "cosigned_size": s.cosignedSize])
        }
        return (200, ["status": "healthy", "cosigned_size": s.cosignedSize, "witness_key_id": keyID])
    }
}
