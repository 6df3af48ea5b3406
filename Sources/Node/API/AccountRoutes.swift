import Broker
import Foundation
import HTTPTypes
import Hummingbird
import Store

/// `POST /api/auth/register` and `POST /api/auth/login`: accounts with bcrypt-hashed
/// passwords, answered with `{token, expiresAt, user}`, a token the WebSocket accepts; and
/// `GET /api/users/{user}`, how a client finds the id to send a direct message to (by name) or
/// the name to show for an author (by id).
///
/// Tokens are HS256 with `JWT_SECRET` (subject: the user's id), valid for `AUTH_TOKEN_TTL`.
/// A node configured with a public key only verifies tokens and cannot issue them: these
/// routes then answer 501.
struct AccountRoutes {
    let node: NodeContext
    let store: any ChatStore
    let hasher: PasswordHasher
    /// This node's own counts of logins and registrations.
    let throttle: KeyedThrottle
    /// The cluster's counts of the same (Redis), so that the limits hold whichever node a
    /// balancer sends each attempt to; nil with the memory adapter.
    let clusterAttempts: (any AttemptCounter)?

    init(node: NodeContext, store: any ChatStore, clusterAttempts: (any AttemptCounter)?) {
        self.node = node
        self.store = store
        self.hasher = PasswordHasher(cost: node.configuration.bcryptCost)
        self.throttle = KeyedThrottle(perMinute: node.configuration.loginAttemptsPerMinute)
        self.clusterAttempts = clusterAttempts
    }

    /// User names: 3 to 32 of `A-Z a-z 0-9 _ . -`.
    static let usernameCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    static func isValidUsername(_ name: String) -> Bool {
        (3...32).contains(name.count) && name.allSatisfy(usernameCharacters.contains)
    }

    /// An address may try this many times the per-name budget, over any names.
    static let namesPerAddress = 5
    /// bcrypt reads at most 72 bytes; longer passwords are refused rather than cut silently.
    static let passwordBytes = 8...72
    /// The largest register or login body: a name of 32 bytes and a password of 72, escaped,
    /// fit many times over (larger: 413).
    static let maxCredentialsBody = 4_096

    func register(on router: Router<NodeRequestContext>) {
        router.post("/api/auth/register") { request, context in
            var request = request
            return try await register(&request, context: context)
        }
        router.post("/api/auth/login") { request, context in
            var request = request
            return try await login(&request, context: context)
        }
        // Finds a user by name (the id a direct message needs) or by id (the name to show for an
        // author); any user may ask. An id (a 36-character UUID) cannot be a name (32 at most).
        router.get("/api/users/:user") { request, context in
            _ = try Caller.user(request, node: node)
            let key = context.parameters.get("user") ?? ""
            let account: UserAccount?
            if Self.isValidUsername(key) {
                account = try await store.user(named: key)
            } else if let id = UUID(uuidString: key) {
                account = try await store.user(id: id.uuidString.lowercased())
            } else {
                account = nil
            }
            guard let account else { throw APIError(404, "no user '\(key.prefix(36))'") }
            return Response.json(account.json)
        }
    }

    private func register(_ request: inout Request, context: NodeRequestContext) async throws -> Response {
        guard node.configuration.registrationEnabled else {
            throw APIError(403, "registration is disabled on this node (AUTH_REGISTRATION=false)")
        }
        // Registrations count against the same per-address budget, so one client cannot mint
        // accounts (or burn bcrypt time) without bound.
        let network = node.clientNetwork(request, context)
        let key = "register \(network)"
        guard throttle.attempt(key), await overClusterLimit([key], limits: [perMinute]) == nil else {
            throw APIError(429, "too many registrations from this address: try again in a minute")
        }
        let minter = try minter()
        let body = try await RequestBody(&request, limit: Self.maxCredentialsBody, budget: node.bodies, holder: .network(network))
        let username = try body.string("username")
        let password = try body.string("password")
        guard Self.isValidUsername(username) else {
            throw APIError.invalid("username", "'username' must be 3 to 32 of A-Z a-z 0-9 _ . -")
        }
        guard Self.passwordBytes.contains(password.utf8.count), !password.utf8.contains(0) else {
            throw APIError.invalid("password", "'password' must be 8 to 72 bytes long, without NUL characters")
        }
        let account: UserAccount
        do {
            account = try await store.createUser(username: username, passwordHash: try await hasher.hash(password))
        } catch StoreError.duplicateUsername {
            throw APIError(409, "user name '\(username)' is taken", field: "username")
        }
        node.logger.info("account registered", metadata: ["user": .string(account.id)])
        return session(for: account, minter: minter, status: .created)
    }

    private func login(_ request: inout Request, context: NodeRequestContext) async throws -> Response {
        let minter = try minter()
        let address = node.clientNetwork(request, context)
        // Two budgets: per address (so one client cannot try name after name) and per address
        // and name (guesses at one account). The first is taken before the body is read, so that
        // nobody gets bodies read and parsed without limit; names that cannot exist are refused
        // before they take a key in the throttle's table or a bcrypt check.
        guard throttle.attempt("login \(address)", cost: 1.0 / Double(Self.namesPerAddress)) else {
            throw APIError(429, "too many login attempts from this address: try again in a minute")
        }
        let body = try await RequestBody(&request, limit: Self.maxCredentialsBody, budget: node.bodies, holder: .network(address))
        let username = try body.string("username")
        let password = try body.string("password")
        guard Self.isValidUsername(username) else { throw APIError(401, "invalid user name or password") }
        guard throttle.attempt("login \(address) \(username)") else {
            throw APIError(429, "too many login attempts for '\(username)': try again in a minute")
        }
        switch await overClusterLimit(
            ["login \(address)", "login \(address) \(username)"], limits: [perMinute * Self.namesPerAddress, perMinute])
        {
        case 0: throw APIError(429, "too many login attempts from this address: try again in a minute")
        case 1: throw APIError(429, "too many login attempts for '\(username)': try again in a minute")
        default: break
        }
        let account = try await store.user(named: username)
        // An unknown name costs a bcrypt check too, so timing does not tell which names exist.
        let valid = try await hasher.verify(password, hash: account?.passwordHash)
        guard let account, valid else { throw APIError(401, "invalid user name or password") }
        return session(for: account, minter: minter, status: .ok)
    }

    private var perMinute: Int { node.configuration.loginAttemptsPerMinute }

    /// Counts an attempt under each of `keys` for the whole cluster, once this node's own
    /// counts allowed it, and returns the index of the first key over its limit in `limits`
    /// (attempts in a minute from the key's first); nil when none is. Decided by this node's
    /// counts alone (nil) without Redis, while this node's link to the server holding the
    /// counts is not connected (no login waits on a Redis that is down), or when Redis does not
    /// answer within `PUBSUB_REDIS_TIMEOUT`.
    private func overClusterLimit(_ keys: [String], limits: [Int]) async -> Int? {
        guard let clusterAttempts, node.broker.adapter.status().backends.first?.state == .connected,
            let counts = await clusterAttempts.count(keys, window: .seconds(60))
        else { return nil }
        return counts.indices.first { counts[$0] > limits[$0] }
    }

    private func minter() throws(APIError) -> TokenMinter {
        guard case .hmacSecret(let secret) = node.configuration.tokenKey else {
            throw APIError(501, "this node verifies tokens but cannot issue them: accounts need JWT_SECRET")
        }
        return TokenMinter(secret: secret)
    }

    private func session(for account: UserAccount, minter: TokenMinter, status: HTTPResponse.Status) -> Response {
        let now = Date()
        let ttl = node.configuration.authTokenTTL
        let rules = node.configuration.tokenRules
        let token = minter.mint(subject: account.id, ttl: ttl, issuer: rules.issuer, audience: rules.audience, now: now)
        let expiresAt = now.addingTimeInterval(Double(ttl.components.seconds))
        return .json(.object([
            "token": .string(token), "expiresAt": .string(ISO8601.string(expiresAt)), "user": account.json,
        ]), status: status)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
}
