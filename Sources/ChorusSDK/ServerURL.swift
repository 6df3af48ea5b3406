/// A node's WebSocket address, `ws://host[:port][/path][?query]`, taken apart for the
/// transport. `wss` is refused: this client has no TLS (put it behind a TLS-terminating proxy
/// on the same host, or use the node's plain port).
struct ServerURL: Sendable, Equatable {
    var host: String
    var port: Int
    /// The request target: path and query, `/ws` when the URL has no path.
    var target: String

    init(host: String, port: Int, target: String) {
        self.host = host
        self.port = port
        self.target = target
    }

    init(_ text: String) throws {
        guard text.hasPrefix("ws://") else { throw ChorusError.invalidURL(text) }
        let rest = text.dropFirst("ws://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var target = String(rest.dropFirst(authority.count))
        if target.isEmpty || target.hasPrefix("?") { target = "/ws" + target }
        var host = Substring(authority)
        var port = 80
        if host.hasPrefix("[") {  // [::1]:3000
            guard let close = host.firstIndex(of: "]") else { throw ChorusError.invalidURL(text) }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()) else { throw ChorusError.invalidURL(text) }
                port = value
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let value = Int(host[host.index(after: colon)...]) else { throw ChorusError.invalidURL(text) }
            port = value
            host = host[..<colon]
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw ChorusError.invalidURL(text) }
        self.host = String(host)
        self.port = port
        self.target = target
    }

    /// The `Host` header's value.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? name : "\(name):\(port)"
    }
}
