/// Where a PostgreSQL database is and how to log in, as `DATABASE_URL` names it.
public struct PostgresSettings: Sendable, Equatable, CustomStringConvertible {
    /// `sslmode`, with libpq's meanings: `prefer` and `require` encrypt without verifying the
    /// server's certificate (libpq verifies only with `verify-ca` and `verify-full`).
    public enum SSLMode: String, Sendable, Equatable, CaseIterable {
        /// Plain TCP (the default: a cluster's database usually sits on a private network).
        case disable
        /// TLS when the server offers it, else plain TCP.
        case prefer
        /// TLS or no connection.
        case require
    }

    public var host: String
    public var port: Int
    public var username: String
    /// Nil when the URL gives none (the server then trusts the user or asks in vain).
    public var password: String?
    public var database: String
    public var sslMode: SSLMode

    public init(host: String, port: Int = 5432, username: String, password: String?, database: String, sslMode: SSLMode = .disable) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.sslMode = sslMode
    }

    /// The URL with the password masked, for logs and error messages.
    public var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        let login = password == nil ? username : "\(username):***"
        return "postgres://\(login)@\(host):\(port)/\(database)?sslmode=\(sslMode.rawValue)"
    }
}
