/// A node's WebSocket address, `ws[s]://host[:port][/path][?query]`, taken apart for the
/// transport. `wss` is TLS (to a TLS-terminating proxy in front of the nodes, such as nginx).
struct ServerURL: Sendable, Equatable {
    var host: String
    var port: Int
    /// The request target: path and query, `/ws` when the URL has no path.
    var target: String
    /// `wss`: the connection is TLS, checked against ``host``.
    var tls: Bool

    init(host: String, port: Int, target: String, tls: Bool = false) {
        self.host = host
        self.port = port
        self.target = target
        self.tls = tls
    }

    init(_ text: String) throws {
        let scheme = text.hasPrefix("wss://") ? "wss://" : "ws://"
        guard text.hasPrefix(scheme) else { throw ChorusError.invalidURL(text) }
        tls = scheme == "wss://"
        let rest = text.dropFirst(scheme.count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var target = String(rest.dropFirst(authority.count))
        if target.isEmpty || target.hasPrefix("?") { target = "/ws" + target }
        var host = Substring(authority)
        var port = tls ? 443 : 80
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
        return port == (tls ? 443 : 80) ? name : "\(name):\(port)"
    }
}
