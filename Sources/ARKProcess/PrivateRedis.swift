// A redis-server of one's own on a unix socket, started and stopped by pid.

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

/// A `redis-server` of one's own, on a unix socket in `directory`, without persistence:
/// started by `ark bench` and by the Benchmarks package, stopped by its pid.
public struct PrivateRedis: Sendable {
    public let process: ChildProcess
    public let socket: String

    public var url: String { "unix://" + socket }

    public static func start(in directory: String) throws -> PrivateRedis {
        guard let server = ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw ChildProcess.SpawnError(description: "redis-server is not installed. Fix: apt-get install redis-server, or give --redis-url")
        }
        let socket = directory + "/redis.sock"
        let process = try ChildProcess.spawn(name: "redis", executable: server, arguments: [
            "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--dir", directory, "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
        ], environment: [:], log: directory + "/redis.log")
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(50_000) }
        guard FileManager.default.fileExists(atPath: socket) else {
            _ = process.stop(timeout: .seconds(2))
            throw ChildProcess.SpawnError(description: "redis-server did not start: see \(directory)/redis.log")
        }
        return PrivateRedis(process: process, socket: socket)
    }

    public func stop() { _ = process.stop(timeout: .seconds(5)) }
}
