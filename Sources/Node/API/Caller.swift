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
        if allowAPIKey, let key = request.headers[.xAPIKey] {
            // X-API-Key is an API key and nothing else: it is never tried as a token.
            guard let apiKey = node.configuration.apiKey else {
                throw APIError(401, "this node has no API_KEY configured: send Authorization: Bearer <token>")
            }
            guard SharedSecret(apiKey).matches(key) else { throw APIError(401, "invalid API key") }
            return .server
        }
        guard let credential = BearerCredential.from(request.headers[.authorization]) else {
            throw APIError(401, allowAPIKey
                ? "missing credentials: send X-API-Key or Authorization: Bearer <token>"
                : "missing credentials: send Authorization: Bearer <token>")
        }
        if allowAPIKey, let apiKey = node.configuration.apiKey, SharedSecret(apiKey).matches(credential) {
            return .server
        }
        do {
            return .user(try node.verifier.verify(credential))
        } catch {
            throw APIError(
                401, allowAPIKey && node.configuration.apiKey != nil ? "invalid API key or token: \(error)" : "invalid token: \(error)")
        }
    }

    /// The user behind a token; throws 401 for anything else.
    static func user(_ request: Request, node: NodeContext) throws(APIError) -> AuthenticatedUser {
        guard case .user(let user) = try identify(request, node: node, allowAPIKey: false) else {
            throw APIError(401, "a user token is required")
        }
        return user
    }
}

extension HTTPField.Name {
    static let xAPIKey = Self("X-API-Key")!
}
