// Where Redis is, parsed from REDIS_URL.

/// Where Redis is: `redis://[:password@]host:port/db` or `unix:///path/redis.sock[?db=N]`.
/// A Redis Cluster is named by one or more of its nodes, comma-separated
/// (`redis://h1:7000,h2:7001`): any that answers tells where the others are.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unix(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): "\(host):\(port)"
            case .unix(let path): path
            }
        }
    }

    public var endpoint: Endpoint
    /// Every node the URL names, `endpoint` first (more than one only for a cluster's seeds).
    public var seeds: [Endpoint]
    public var password: String?
    public var username: String?
    public var database: Int

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(endpoint: Endpoint, password: String? = nil, username: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.seeds = [endpoint]
        self.password = password
        self.username = username
        self.database = database
    }

    public init(parsing text: String) throws(ParseError) {
        if text.hasPrefix("unix://") {
            var rest = String(text.dropFirst("unix://".count))
            var db = 0
            if let q = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: q)...]
                rest = String(rest[..<q])
                for part in query.split(separator: "&") {
                    let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
                    if kv.count == 2, kv[0] == "db" {
                        guard let n = Int(kv[1]), n >= 0 else { throw ParseError(description: "'\(kv[1])' is not a database number") }
                        db = n
                    }
                }
            }
            guard rest.hasPrefix("/") else { throw ParseError(description: "unix socket path must be absolute (unix:///path/redis.sock)") }
            self.init(endpoint: .unix(path: rest), database: db)
            return
        }
        guard text.hasPrefix("redis://") else {
            throw ParseError(description: "'\(Self.redacted(text))' is not a redis:// or unix:// URL")
        }
        var rest = Substring(text.dropFirst("redis://".count))
        var password: String?
        var username: String?
        if let at = rest.lastIndex(of: "@") {
            let auth = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = auth.firstIndex(of: ":") {
                let user = String(auth[..<colon])
                username = user.isEmpty ? nil : user
                password = String(auth[auth.index(after: colon)...])
            } else {
                password = String(auth)
            }
        }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let dbText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !dbText.isEmpty {
                guard let n = Int(dbText), n >= 0 else { throw ParseError(description: "'\(dbText)' is not a database number") }
                db = n
            }
        }
        var endpoints: [Endpoint] = []
        for part in rest.split(separator: ",", omittingEmptySubsequences: false) {
            endpoints.append(try Self.tcpEndpoint(part))
        }
        self.init(endpoint: endpoints[0], password: password, username: username, database: db)
        seeds = endpoints
    }

    static func tcpEndpoint(_ text: Substring) throws(ParseError) -> Endpoint {
        var host = String(text)
        var port = 6379
        if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            let portText = text[text.index(after: colon)...]
            guard let p = Int(portText), (1...65535).contains(p) else { throw ParseError(description: "'\(portText)' is not a port") }
            port = p
        }
        guard !host.isEmpty else { throw ParseError(description: "no host in the URL") }
        return .tcp(host: host, port: port)
    }

    /// The same credentials and database on another node (a cluster's redirect).
    public func at(_ endpoint: Endpoint) -> RedisURL {
        var u = self
        u.endpoint = endpoint
        u.seeds = [endpoint]
        return u
    }

    /// The URL with any password hidden, for logs and messages.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            let auth = password == nil ? "" : "\(username ?? ""):***@"
            let more = seeds.dropFirst().map { e -> String in
                if case .tcp(let h, let p) = e { return ",\(h):\(p)" }
                return ""
            }.joined()
            return "redis://\(auth)\(host):\(port)\(more)/\(database)"
        case .unix(let path):
            return "unix://\(path)" + (database == 0 ? "" : "?db=\(database)")
        }
    }

    static func redacted(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return text }
        return "***" + text[at...]
    }
}
