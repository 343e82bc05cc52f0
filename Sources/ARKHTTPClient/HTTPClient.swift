// A plain HTTP/1.1 client on SwiftNIO for the CLI and the tests.

import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A response as read off the wire.
public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object, when it is one.
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
}

public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A plain HTTP/1.1 client on SwiftNIO, one connection per request: enough for the
/// synthetic loop's `--api-url` and the tests, without an HTTP client library and its TLS
/// stack in the build. Only `http://` (ARK's API is reached on loopback, or through a
/// TLS-terminating proxy).
public enum HTTPClient {
    public static func request(_ method: String, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
                               timeout: Duration = .seconds(10)) async throws -> HTTPClientResponse {
        guard let parsed = URL(string: url), parsed.scheme == "http", let host = parsed.host else {
            throw HTTPClientError("'\(url)' is not an http:// URL with a host")
        }
        let port = parsed.port ?? 80
        // The path as written, percent-encoding kept: a decoded "%20" would put a space in
        // the request line.
        let encodedPath = URLComponents(url: parsed, resolvingAgainstBaseURL: false)?.percentEncodedPath ?? parsed.path
        var target = encodedPath.isEmpty ? "/" : encodedPath
        if let query = parsed.query { target += "?" + query }
        let path = target
        return try await withThrowingTaskGroup(of: HTTPClientResponse.self) { group in
            group.addTask {
                try await exchange(method: method, host: host, port: port, target: path, headers: headers, body: body)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw HTTPClientError("\(method) \(url): no answer within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    static func exchange(method: String, host: String, port: Int, target: String, headers: [(String, String)], body: [UInt8]?) async throws -> HTTPClientResponse {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(3))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: target)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            head.headers.add(name: "Connection", value: "close")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            if let body, !headers.contains(where: { $0.0.lowercased() == "content-length" }) {
                head.headers.add(name: "Content-Length", value: String(body.count))
            }
            // A server may answer before the body is all sent (413 on Content-Length) and
            // close: the answer is still read, as curl does.
            do {
                try await outbound.write(.head(head))
                if let body, !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                try await outbound.write(.end(nil))
            } catch {}
            var response = HTTPClientResponse(status: 0, headers: [], body: [])
            for try await part in inbound {
                switch part {
                case .head(let h):
                    response.status = Int(h.status.code)
                    response.headers = h.headers.map { ($0.name, $0.value) }
                case .body(var buffer):
                    response.body += buffer.readBytes(length: buffer.readableBytes) ?? []
                case .end:
                    return response
                }
            }
            throw HTTPClientError("the server closed the connection before the response ended")
        }
    }
}
