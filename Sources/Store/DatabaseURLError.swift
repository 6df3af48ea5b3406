/// Why a `DATABASE_URL` string was refused. The description is one line that names the variable,
/// what is wrong and what is expected; the node prints it and exits 78. No case carries a password.
public enum DatabaseURLError: Error, Equatable, CustomStringConvertible {
    case empty
    /// The part before `:` is not `sqlite`, `postgres` or `postgresql`.
    case unsupportedScheme(String)
    /// `sqlite:` with nothing after it.
    case missingSQLitePath
    /// `postgres:` not followed by `//`.
    case missingSlashes
    case missingUsername
    case missingHost
    case missingDatabase
    /// The database part has a `/` in it.
    case invalidDatabase(String)
    /// The port is not a number in 1...65535.
    case invalidPort(String)
    /// A bracketed IPv6 host without its closing `]`, or text after it that is not `:port`.
    case invalidHost(String)
    /// `sslmode` other than disable, prefer or require.
    case invalidSSLMode(String)
    /// A query parameter other than `sslmode`.
    case unknownParameter(String)
    /// A `%` not followed by two hex digits (or not UTF-8) in the named part.
    case invalidPercentEncoding(part: String)

    static let forms = "sqlite:PATH, sqlite::memory: or postgres://user:password@host:port/database"
    static let postgresForm = "postgres://user:password@host:port/database[?sslmode=disable|prefer|require]"

    public var description: String {
        switch self {
        case .empty:
            "DATABASE_URL: empty; expected \(Self.forms)"
        case .unsupportedScheme(let scheme):
            "DATABASE_URL: unsupported scheme '\(scheme)'; expected \(Self.forms)"
        case .missingSQLitePath:
            "DATABASE_URL: sqlite: needs a file path (sqlite:chorus.db, sqlite:/var/lib/chorus/chorus.db) or :memory:"
        case .missingSlashes:
            "DATABASE_URL: expected \(Self.postgresForm); '//' is missing after the scheme"
        case .missingUsername:
            "DATABASE_URL: the user name is missing; expected \(Self.postgresForm)"
        case .missingHost:
            "DATABASE_URL: the host is missing; expected \(Self.postgresForm)"
        case .missingDatabase:
            "DATABASE_URL: the database name is missing; expected \(Self.postgresForm)"
        case .invalidDatabase(let name):
            "DATABASE_URL: '\(name)' is not a database name (no '/' allowed); expected \(Self.postgresForm)"
        case .invalidPort(let port):
            "DATABASE_URL: expected a port in 1...65535, got '\(port)'"
        case .invalidHost(let host):
            "DATABASE_URL: malformed host '\(host)'; write IPv6 addresses as [::1]:5432"
        case .invalidSSLMode(let mode):
            "DATABASE_URL: expected sslmode=disable, prefer or require, got '\(mode)'"
        case .unknownParameter(let name):
            "DATABASE_URL: unknown parameter '\(name)'; only sslmode is supported"
        case .invalidPercentEncoding(let part):
            "DATABASE_URL: bad percent-encoding in the \(part); write a character as %XX (for example @ as %40)"
        }
    }
}
