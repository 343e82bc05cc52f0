// The witness's own `/healthz` and `/metrics`.

import ARKCore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The witness's own `/healthz` and `/metrics`, beside its rounds: one service for
/// ServiceLifecycle, stopped by a graceful shutdown.
public struct WitnessService: Service {
    public let witness: Witness
    public let host: String
    public let port: Int
    let logger: Logger

    public init(witness: Witness, host: String, port: Int, logger: Logger = Logger(label: "ark.witness")) {
        self.witness = witness
        self.host = host
        self.port = port
        self.logger = logger
    }

    public func run() async throws {
        let router = Router()
        router.get("healthz") { [witness] _, _ -> Response in
            let (status, body) = witness.health(nowNs: wallClockNanoseconds())
            let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data("{}".utf8)
            return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("metrics") { [witness] _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: witness.metricsText())))
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "ark-witness"), logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await app.run() }
            group.addTask {
                await cancelWhenGracefulShutdown { await witness.run() }
            }
        }
    }
}
