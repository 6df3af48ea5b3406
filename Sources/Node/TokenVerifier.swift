import Crypto
import Foundation
import _CryptoExtras

/// Verifies JWS compact tokens (JWT) synchronously, so a NIO handler can authenticate a client
/// without leaving its event loop.
///
/// The header's `alg` must name exactly the algorithm of the configured key: HS256 for
/// `JWT_SECRET`, RS256 for an RSA public key, ES256 for a P-256 public key. `none` and every
/// other label are refused before any signature check, and so is a `crit` header (RFC 7515
/// §4.1.11: this node understands no extension, so it may accept none it is told is critical).
/// After the signature, the claims are checked against ``Rules``: `exp` (required unless
/// `JWT_REQUIRE_EXP=false`) and `nbf` with `JWT_LEEWAY` of clock skew, and `iss` and `aud`
/// when `JWT_ISSUER` and `JWT_AUDIENCE` are set. The subject must be a valid user id
/// (``UserID``). The signature math is swift-crypto's; only the JWS framing is ours.
public struct TokenVerifier: Sendable {
    /// What a token's claims must hold, beyond a valid signature and a subject.
    public struct Rules: Sendable, Equatable {
        /// `JWT_ISSUER`: the `iss` every token must carry; nil accepts any (or none).
        public var issuer: String?
        /// `JWT_AUDIENCE`: a value the token's `aud` (a string or an array of strings) must
        /// hold; nil accepts any (or none).
        public var audience: String?
        /// `JWT_REQUIRE_EXP`: refuse a token without `exp` (such a token would never expire).
        public var requireExpiry: Bool
        /// `JWT_LEEWAY`: clock skew allowed past `exp` and before `nbf`.
        public var leeway: Duration

        public init(issuer: String? = nil, audience: String? = nil, requireExpiry: Bool = true, leeway: Duration = .seconds(5)) {
            self.issuer = issuer
            self.audience = audience
            self.requireExpiry = requireExpiry
            self.leeway = leeway
        }
    }

    private enum Key: Sendable {
        case hs256(SymmetricKey)
        case rs256(_RSA.Signing.PublicKey)
        case es256(P256.Signing.PublicKey)

        var algorithm: String {
            switch self {
            case .hs256: "HS256"
            case .rs256: "RS256"
            case .es256: "ES256"
            }
        }
    }

    private struct Header: Decodable {
        var alg: String
        /// Whether the header names `crit` at all (whatever its value): that alone refuses it.
        var hasCritical: Bool

        private enum CodingKeys: String, CodingKey { case alg, crit }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            alg = try container.decode(String.self, forKey: .alg)
            hasCritical = container.contains(.crit)
        }
    }

    /// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
    private struct Audience: Decodable {
        var values: [String]

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let one = try? container.decode(String.self) {
                values = [one]
            } else {
                values = try container.decode([String].self)
            }
        }
    }

    private struct Claims: Decodable {
        var sub: String?
        var userId: String?
        var exp: Double?
        var nbf: Double?
        var iss: String?
        var aud: Audience?
        var grants: Grants?
    }

    /// Errors found in the configured key (reported at start).
    public struct KeyError: Error, CustomStringConvertible {
        public let description: String
    }

    private let key: Key
    public let rules: Rules
    private var leeway: TimeInterval {
        Double(rules.leeway.components.seconds) + Double(rules.leeway.components.attoseconds) / 1e18
    }

    /// The `alg` every accepted token must carry.
    public var algorithm: String { key.algorithm }

    public init(key: NodeConfiguration.TokenKey, rules: Rules = Rules()) throws {
        self.rules = rules
        switch key {
        case .hmacSecret(let secret):
            self.key = .hs256(SymmetricKey(data: secret))
        case .publicKeyPEM(let pem):
            if let ec = try? P256.Signing.PublicKey(pemRepresentation: pem) {
                self.key = .es256(ec)
            } else if let rsa = try? _RSA.Signing.PublicKey(pemRepresentation: pem) {
                guard rsa.keySizeInBits >= 2048 else {
                    throw KeyError(description: "RSA key is \(rsa.keySizeInBits) bits; at least 2048 are required")
                }
                self.key = .rs256(rsa)
            } else {
                throw KeyError(description: "not a PEM RSA or P-256 public key")
            }
        }
    }

    /// Verifies `token` and returns its user.
    /// - Parameter now: the instant `exp` and `nbf` are checked against.
    public func verify(_ token: String, now: Date = Date()) throws(TokenError) -> AuthenticatedUser {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let headerBytes = Base64URL.decode(parts[0]),
            let payloadBytes = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2])
        else { throw .malformed }
        guard let header = try? JSONDecoder().decode(Header.self, from: headerBytes) else { throw .malformed }
        guard !header.hasCritical else { throw .criticalHeader }
        guard header.alg == key.algorithm else {
            if ["HS256", "RS256", "ES256"].contains(header.alg) {
                throw .algorithmMismatch(expected: key.algorithm, got: header.alg)
            }
            throw .unsupportedAlgorithm(header.alg)
        }
        let signingInput = Data(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard isValid(signature: signature, for: signingInput) else { throw .badSignature }

        let claims: Claims
        do {
            claims = try JSONDecoder().decode(Claims.self, from: payloadBytes)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.contains(where: { $0.stringValue == "grants" }) {
                throw .invalidGrants(context.debugDescription)
            }
            // A payload that is JSON but has a claim of another type: name the claim.
            switch error {
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                guard let claim = context.codingPath.first?.stringValue else { throw .malformed }
                throw .invalidClaim(claim)  // one of the claims type's own keys
            default:
                throw .malformed
            }
        } catch {
            throw .malformed
        }
        let seconds = now.timeIntervalSince1970
        if let exp = claims.exp, seconds >= exp + leeway { throw .expired }
        if claims.exp == nil, rules.requireExpiry { throw .missingExpiry }
        if let nbf = claims.nbf, seconds + leeway < nbf { throw .notYetValid }
        if let issuer = rules.issuer, claims.iss != issuer { throw .wrongIssuer(claims.iss) }
        if let audience = rules.audience, !(claims.aud?.values.contains(audience) ?? false) {
            throw .wrongAudience(claims.aud?.values ?? [])
        }
        guard let id = claims.sub ?? claims.userId, !id.isEmpty else { throw .missingSubject }
        if let problem = UserID.problem(id) { throw .invalidSubject(id, reason: problem) }
        return AuthenticatedUser(
            id: id,
            // The leeway is the token's too: a session ends when the token stops being accepted.
            expiresAt: claims.exp.map { Date(timeIntervalSince1970: $0 + leeway) },
            grants: claims.grants
        )
    }

    private func isValid(signature: Data, for input: Data) -> Bool {
        switch key {
        case .hs256(let secret):
            return HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: input, using: secret)
        case .rs256(let publicKey):
            let rsaSignature = _RSA.Signing.RSASignature(rawRepresentation: signature)
            return publicKey.isValidSignature(rsaSignature, for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5)
        case .es256(let publicKey):
            guard let ecSignature = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return publicKey.isValidSignature(ecSignature, for: SHA256.hash(data: input))
        }
    }
}
