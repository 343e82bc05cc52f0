// The API's errors as clients read them: status, code and message, never a stack trace.

import ARKState
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error a client is meant to read: status, a stable code, a message that says what to
/// do, and any headers the status calls for (Retry-After, WWW-Authenticate, Allow).
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// `{"error":{"code","message","trace_id"}}`; `trace_id` is the request's correlation id
    /// (also the X-Request-ID header), which the server's log line for the request carries.
    func response(requestID: String, extra: [String: Any] = [:]) -> Response {
        var body = extra
        body["error"] = ["code": code, "message": message, "trace_id": requestID]
        var response = jsonResponse(status, body)
        response.headers.append(contentsOf: headers)
        return response
    }

    static func unavailable(_ message: String, retryAfter: Int = 1) -> APIError {
        APIError(.serviceUnavailable, "unavailable", message, headers: [.retryAfter: String(retryAfter)])
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-ID")!
    static let rateLimitLimit = HTTPField.Name("X-RateLimit-Limit")!
    static let rateLimitRemaining = HTTPField.Name("X-RateLimit-Remaining")!
}

/// Compact JSON with sorted keys.
func jsonResponse(_ status: HTTPResponse.Status, _ object: Any) -> Response {
    let data = (try? JSONDocument.data(object)) ?? Data("{}".utf8)
    return bytesResponse(status, data)
}

func bytesResponse<Bytes: Sequence>(_ status: HTTPResponse.Status, _ bytes: Bytes, contentType: String = "application/json") -> Response where Bytes.Element == UInt8 {
    var buffer = ByteBuffer()
    buffer.writeBytes(bytes)
    return Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: buffer))
}
