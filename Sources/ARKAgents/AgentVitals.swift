// What an agent's loop and its heartbeat share, and the heartbeat that publishes it.

import ARKBus
import ARKCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// What an agent's loop and its heartbeat share: the loop records batches, the heartbeat
/// publishes them and brings back what the watchdog decided. Locked, because the heartbeat
/// runs on its own thread: a batch that takes seconds (or never ends) must not stop it, or a
/// slow instance would look like a dead one.
final class AgentVitals: Sendable {
    struct Counts {
        var processed = 0
        var failed = 0
        var batchesOK = 0
        var batchesFailed = 0
        var consecutiveFailures = 0
        /// When the batch in progress started (wall clock); 0 when idle.
        var batchStartNs: Int64 = 0
        /// Batch durations since the last heartbeat.
        var window = LogHistogram()
    }

    struct Orders: Equatable {
        var quarantined = false
        /// Quarantined instances of this stage, other than this one: their pending entries
        /// are taken over at once.
        var quarantinedPeers: [String] = []
    }

    private let counts = Mutex(Counts())
    private let orders = Mutex(Orders())
    /// The output stream over its backlog bound, while the loop takes no input for it.
    let backpressure = Mutex<String?>(nil)

    func batchStarted(atNs ns: Int64) { counts.withLock { $0.batchStartNs = ns } }

    func batchSucceeded(processed: Int, failed: Int, durationNs: Int64) {
        counts.withLock {
            $0.processed += processed
            $0.failed += failed
            $0.batchesOK += 1
            $0.consecutiveFailures = 0
            $0.batchStartNs = 0
            $0.window.record(micros: Double(durationNs) / 1000)
        }
    }

    func batchFailed() {
        counts.withLock {
            $0.failed += 1
            $0.batchesFailed += 1
            $0.consecutiveFailures += 1
            $0.batchStartNs = 0
        }
    }

    func entriesDeadLettered(_ n: Int) { counts.withLock { $0.failed += n } }

    /// The counts, with the latency window restarted.
    func takeForHeartbeat() -> Counts {
        counts.withLock {
            let c = $0
            $0.window = LogHistogram()
            return c
        }
    }

    var current: Counts { counts.withLock { $0 } }

    var standing: Orders { orders.withLock { $0 } }

    /// Returns the previous orders.
    func update(_ new: Orders) -> Orders {
        orders.withLock {
            let old = $0
            $0 = new
            if old.quarantined && !new.quarantined {
                // Released: the failures that led here are history, or the first heartbeat
                // of probation would read as a relapse.
                counts.withLock { $0.consecutiveFailures = 0 }
            }
            return old
        }
    }
}

/// Applies an `AgentFault` to the batches of one agent.
struct FaultInjector {
    let fault: AgentFault
    private var errorCredit = 0.0

    init(fault: AgentFault) { self.fault = fault }

    struct InjectedFailure: Error, CustomStringConvertible {
        var description: String { "injected failure (ARK_FAULT)" }
    }

    /// Before a batch: sleeps the injected latency, then fails when the error rate says so.
    mutating func beforeBatch() throws {
        if fault.crash {
            // A rehearsed crash: the batch stays unacknowledged, as after a real one.
            writeStandard(.error, "ARK_FAULT: \(fault.stage.rawValue) crashes on its first batch (exit 70)\n")
            exit(70)
        }
        if fault.latencyMs > 0 { sleepThread(seconds: Double(fault.latencyMs) / 1000) }
        errorCredit += fault.errorRate
        if errorCredit >= 1 - 1e-9 {
            errorCredit -= 1
            throw InjectedFailure()
        }
    }

    struct InjectedPoison: Error, CustomStringConvertible {
        var description: String { "injected poison entry (ARK_FAULT fail_on)" }
    }

    /// Before `handle`: a rehearsed poison entry kills the process or makes handling throw.
    func beforeHandle(_ batch: [StreamEntry]) throws {
        func holds(_ needle: [UInt8]?) -> Bool {
            guard let needle else { return false }
            // A dead letter recorded raw is not decoded, where the rehearsed crash would be.
            return batch.contains { e in !e.recordRaw && (e.payload.map { contains($0, needle) } ?? false) }
        }
        if holds(fault.crashOn) {
            writeStandard(.error, "ARK_FAULT: \(fault.stage.rawValue) handles a killer entry (crash_on): abort\n")
            abort()
        }
        if holds(fault.failOn) { throw InjectedPoison() }
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}

/// Publishes an agent's heartbeat every interval from its own thread and Redis connection,
/// and reads the watchdog's quarantine list back into the agent's vitals. On shutdown it
/// removes the heartbeat, so an instance that stopped cleanly is not taken for a hung one.
actor HeartbeatPulse {
    private nonisolated let executor: ThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    let stage: Stage
    let instance: String
    let streams: [String]
    let interval: Duration
    private let vitals: AgentVitals
    private let connection: RedisConnection
    private let bus: StreamBus
    private let logger: Logger

    init(stage: Stage, instance: String, streams: [String], settings: AgentSettings, vitals: AgentVitals, logger: Logger) {
        executor = ThreadExecutor(name: instance + "-heartbeat")
        self.stage = stage
        self.instance = instance
        self.streams = streams
        interval = settings.heartbeatInterval
        self.vitals = vitals
        self.logger = logger
        connection = RedisConnection(url: settings.redisURL, commandTimeout: .seconds(5))
        bus = StreamBus(connection: connection, group: stage.group, consumer: instance)
    }

    func run() async {
        while !Task.isCancelled {
            do {
                if !connection.isConnected { try connection.connect() }
                try beat()
            } catch {
                // The agent's own loop reports Redis trouble; the next beat reconnects.
                connection.close()
            }
            try? await Task.sleep(for: interval)
        }
        if !connection.isConnected { try? connection.connect() }
        if connection.isConnected {
            try? ControlPlane(connection).forgetHeartbeat(of: instance)
        }
        connection.close()
        executor.shutdown()
    }

    private func beat() throws {
        let orders = try readOrders()
        let old = vitals.update(orders)
        if orders.quarantined != old.quarantined {
            if orders.quarantined {
                logger.warning("quarantined by the watchdog: taking no new entries; healthy instances take over the pending ones")
            } else {
                logger.notice("released from quarantine: taking entries again")
            }
        }
        let c = vitals.takeForHeartbeat()
        let now = wallClockNanoseconds()
        var pending = 0
        for s in streams { pending += try bus.pendingCount(s) }
        var beat = HeartbeatRecord(
            instance: instance, stage: stage.rawValue, host: ProcessInfo.processInfo.hostName, pid: Int(getpid()), processed: c.processed, failed: c.failed,
            pending: pending, p50Ms: (c.window.quantile(0.5) ?? 0) / 1000, p95Ms: (c.window.quantile(0.95) ?? 0) / 1000, tsNs: now,
            quarantined: orders.quarantined, batchesOK: c.batchesOK, batchesFailed: c.batchesFailed, consecutiveFailures: c.consecutiveFailures,
            busyMs: c.batchStartNs == 0 ? 0 : Double(now - c.batchStartNs) / 1e6)
        beat.backpressure = vitals.backpressure.withLock { $0 }
        try ControlPlane(connection).publish(beat)
    }

    /// This instance's standing, and the quarantined peers of its stage.
    private func readOrders() throws -> AgentVitals.Orders {
        var orders = AgentVitals.Orders()
        for (name, entry) in try ControlPlane(connection).quarantined() {
            guard entry.stage == stage else { continue }
            if name == instance { orders.quarantined = true } else { orders.quarantinedPeers.append(name) }
        }
        return orders
    }
}
