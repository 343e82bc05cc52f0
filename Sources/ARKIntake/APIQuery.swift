// The API's path and query parameters, checked before anything uses them.

import ARKCore
import Foundation

/// What the API reads from a request's path and query, checked before anything uses it:
/// pure, so it is fuzzed (Fuzz/) and tested without a server.
public enum APIQuery {
    public static let maxPage = 1000

    /// Where a page of `GET /v1/decisions` starts.
    public enum Since: Sendable, Equatable {
        case afterSeq(Int64)
        case fromTimeNs(Int64)
    }

    /// `limit` and `since` of `GET /v1/decisions`; a bad one is a 400 with its reason.
    public static func decisionsPage(limit rawLimit: String?, since rawSince: String?) throws(IntakeError) -> (limit: Int, since: Since) {
        var limit = 100
        if let rawLimit {
            guard let n = Int(rawLimit), (1...maxPage).contains(n) else {
                throw IntakeError(status: 400, code: "invalid_limit", message: "limit must be a whole number from 1 to \(maxPage)")
            }
            limit = n
        }
        guard let rawSince else { return (limit, .afterSeq(0)) }
        if let seq = Int64(rawSince), seq >= 0 { return (limit, .afterSeq(seq)) }
        if let ns = rfc3339Nanoseconds(rawSince) { return (limit, .fromTimeNs(ns)) }
        throw IntakeError(status: 400, code: "invalid_since",
                          message: "since must be a cursor (the next_since of the previous page, a whole number ≥ 0) or an RFC 3339 time such as 2026-11-23T10:00:00Z")
    }

    /// Nanoseconds since the epoch; a time outside what Int64 nanoseconds hold (before 1678
    /// or after 2262) is clamped, so it pages from the first or past the last outcome.
    public static func rfc3339Nanoseconds(_ text: String) -> Int64? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var date = f.date(from: text)
        if date == nil {
            f.formatOptions = [.withInternetDateTime]
            date = f.date(from: text)
        }
        guard let ns = date.map({ $0.timeIntervalSince1970 * 1e9 }), ns.isFinite else { return nil }
        return ns >= 9.2e18 ? Int64.max : ns <= -9.2e18 ? Int64.min : Int64(ns)
    }
}
