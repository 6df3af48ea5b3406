import Foundation

/// One Redis server of `PUBSUB_REDIS_URL`: `redis://[user:password@]host:port[/db]`, or
/// `rediss://...` for TLS (``RedisTLS``).
///
/// The port defaults to 6379 and the database to 0. With `user:password` the node
/// authenticates as an ACL user (`AUTH user password`); with `:password` (empty user) it sends
/// the classic `AUTH password`. Characters such as `@`, `:` or `/` inside the user or password
/// are written percent-encoded (`%40`). An IPv6 host is written in brackets: `redis://[::1]:6379`.
///
/// `PUBSUB_REDIS_URL` may list several servers separated by commas; see ``parseList(_:)``.
public struct RedisURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?
    /// The database selected after connecting. Pub/sub ignores it; it matters only to commands
    /// that touch keys.
    public var database: Int
    /// TLS to the server (`rediss://`); nil for plain TCP.
    public var tls: RedisTLS?

    public init(
        host: String, port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0,
        tls: RedisTLS? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// Parses one URL.
    public init(parsing text: String) throws(RedisConfigurationError) {
        let value = text.trimmingWhitespace()
        func fail(_ reason: String) -> RedisConfigurationError {
            .malformedURL(value, reason: reason)
        }
        guard let schemeEnd = value.range(of: "://") else { throw fail("missing redis:// scheme") }
        let scheme = value[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "redis" || scheme == "rediss" else {
            throw fail("the scheme must be redis:// (or rediss:// for TLS)")
        }
        var rest = value[schemeEnd.upperBound...]
        guard !rest.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) else {
            throw fail("no spaces, query or fragment allowed")
        }

        // Credentials: everything before the last `@`.
        var user: String? = nil
        var password: String? = nil
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = credentials.firstIndex(of: ":") else {
                throw fail("credentials must be user:password or :password")
            }
            guard let decodedUser = String(credentials[..<colon]).removingPercentEncoding,
                let decodedPassword = String(credentials[credentials.index(after: colon)...]).removingPercentEncoding
            else { throw fail("bad percent-encoding in the credentials") }
            user = decodedUser.isEmpty ? nil : decodedUser
            password = decodedPassword
        }

        // Database: an optional `/n` at the end.
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard path.allSatisfy(\.isASCIIDigit), let number = Int(path), number <= 1_000_000 else {
                    throw fail("the database must be a number")
                }
                database = number
            }
        }

        // Host and port.
        let host: Substring
        var portText: Substring? = nil
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { throw fail("unclosed [ in the host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let afterHost = rest[rest.index(after: close)...]
            if !afterHost.isEmpty {
                guard afterHost.first == ":" else { throw fail("expected :port after the host") }
                portText = afterHost.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw fail("missing host") }
        var port = 6379
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy(\.isASCIIDigit), let number = Int(portText),
                (1...65_535).contains(number)
            else { throw fail("the port must be a number from 1 to 65535") }
            port = number
        }
        self.init(
            host: String(host), port: port, user: user, password: password, database: database,
            tls: scheme == "rediss" ? RedisTLS() : nil)
    }

    /// Parses `PUBSUB_REDIS_URL`: one URL, or several separated by commas (one per Redis server;
    /// see ``RedisAdapter`` for how topics are spread over them).
    public static func parseList(_ text: String) throws(RedisConfigurationError) -> [RedisURL] {
        var urls: [RedisURL] = []
        var servers: Set<String> = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = String(entry).trimmingWhitespace()
            guard !trimmed.isEmpty else {
                if text.trimmingWhitespace().isEmpty { throw .noURL }
                throw .malformedURL(text.trimmingWhitespace(), reason: "empty entry in the list")
            }
            let url = try RedisURL(parsing: trimmed)
            guard servers.insert(url.server).inserted else { throw .duplicateServer(url.server) }
            urls.append(url)
        }
        return urls
    }

    /// `host:port` (IPv6 hosts in brackets): the server, whatever the database.
    public var server: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The URL without its password, safe for logs and `/stats`.
    public var description: String {
        let credentials = user.map { "\($0)@" } ?? ""
        return "\(tls == nil ? "redis" : "rediss")://\(credentials)\(server)/\(database)"
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
