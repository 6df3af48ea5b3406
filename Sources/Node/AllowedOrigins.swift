import Foundation

/// Browser origins a node accepts (`WEBSOCKET_ALLOWED_ORIGINS`, `CORS_ALLOWED_ORIGINS`): `*`
/// for any, or a list of `scheme://host[:port]` compared as browsers serialize an `Origin`
/// header (RFC 6454 §6.2): lowercase, no path, no trailing slash.
public struct AllowedOrigins: Sendable, Equatable {
    /// Any origin (`*`).
    public var any: Bool
    /// The listed origins, normalized; empty when `any`.
    public var origins: Set<String>

    public static let all = AllowedOrigins(any: true, origins: [])

    public init(any: Bool = false, origins: Set<String>) {
        self.any = any
        self.origins = Set(origins.map(Self.normalized))
    }

    /// Parses a comma-separated list; the error names the first entry that is not an origin.
    public init(parsing list: String) throws(Problem) {
        var origins: Set<String> = []
        for entry in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            if entry == "*" {
                self = .all
                return
            }
            guard let components = URLComponents(string: entry), let scheme = components.scheme,
                let host = components.host, !host.isEmpty, components.user == nil, components.password == nil,
                components.path.isEmpty || components.path == "/", components.query == nil, components.fragment == nil
            else {
                throw Problem(entry: entry)
            }
            // Browsers never send a wildcard, nor a scheme's default port: such an entry could
            // never match, so it is refused rather than kept.
            guard !host.contains("*") else { throw Problem(entry: entry) }
            let port = components.port.flatMap { $0 == Self.defaultPorts[scheme.lowercased()] ? nil : ":\($0)" } ?? ""
            origins.insert("\(scheme)://\(host)\(port)".lowercased())
        }
        guard !origins.isEmpty else { throw Problem(entry: list) }
        self.init(any: false, origins: origins)
    }

    /// Ports an `Origin` header leaves out (RFC 6454 §6.2 serializes the default port away).
    static let defaultPorts = ["http": 80, "https": 443, "ws": 80, "wss": 443]

    /// An entry that is not `*` or `scheme://host[:port]`.
    public struct Problem: Error, CustomStringConvertible {
        public let entry: String
        public var description: String {
            "expected * or comma-separated origins such as https://app.example.com (no wildcards in a host), got '\(entry)'"
        }
    }

    /// Whether a request whose `Origin` header is `origin` is allowed. `null` (sandboxed pages,
    /// `file:` URLs) is allowed only by `*`.
    public func allows(_ origin: String) -> Bool {
        any || origins.contains(Self.normalized(origin))
    }

    private static func normalized(_ origin: String) -> String {
        var text = origin.trimmingCharacters(in: .whitespaces).lowercased()
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }
}
