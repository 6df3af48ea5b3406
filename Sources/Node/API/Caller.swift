import HTTPTypes
import Hummingbird

/// Who made an HTTP API request: the application itself (the node's `API_KEY`) or a user with
/// a valid token (`Authorization: Bearer`).
enum Caller: Sendable {
    case server
    case user(AuthenticatedUser)

    /// Identifies the caller of `request`, or throws 401.
    /// - Parameter allowAPIKey: whether `X-API-Key` (or the key as a bearer token) is accepted.
    static func identify(_ request: Request, node: NodeContext, allowAPIKey: Bool) throws(APIError) -> Caller {
        // User-only routes read Authorization alone, so a stray X-API-Key cannot shadow it.
        var credential = allowAPIKey ? request.headers[HTTPField.Name("X-API-Key")!] : nil
        if credential == nil, let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            credential = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        guard let credential else {
            throw APIError(401, allowAPIKey
                ? "missing credentials: send X-API-Key or Authorization: Bearer <token>"
                : "missing credentials: send Authorization: Bearer <token>")
        }
        if allowAPIKey, let apiKey = node.configuration.apiKey, constantTimeEqual(credential, apiKey) {
            return .server
        }
        do {
            return .user(try node.verifier.verify(credential))
        } catch {
            throw APIError(401, allowAPIKey ? "invalid API key or token: \(error)" : "invalid token: \(error)")
        }
    }

    /// The user behind a token; throws 401 for anything else.
    static func user(_ request: Request, node: NodeContext) throws(APIError) -> AuthenticatedUser {
        guard case .user(let user) = try identify(request, node: node, allowAPIKey: false) else {
            throw APIError(401, "a user token is required")
        }
        return user
    }

    private static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
