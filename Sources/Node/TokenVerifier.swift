import Crypto
import Foundation
import _CryptoExtras

/// Verifies JWS compact tokens (JWT) synchronously, so a NIO handler can authenticate a client
/// without leaving its event loop.
///
/// The header's `alg` must name exactly the algorithm of the configured key: HS256 for
/// `JWT_SECRET`, RS256 for an RSA public key, ES256 for a P-256 public key. `none` and every
/// other label are refused before any signature check. `exp` and `nbf` are enforced with no leeway
/// beyond `leeway`. The subject must be a valid user id (``UserID``). The signature math is swift-crypto's; only the JWS framing is ours.
public struct TokenVerifier: Sendable {
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
    }

    private struct Claims: Decodable {
        var sub: String?
        var userId: String?
        var exp: Double?
        var nbf: Double?
        var grants: Grants?
    }

    /// Errors found in the configured key (reported at start).
    public struct KeyError: Error, CustomStringConvertible {
        public let description: String
    }

    private let key: Key
    private let leeway: TimeInterval

    /// The `alg` every accepted token must carry.
    public var algorithm: String { key.algorithm }

    public init(key: NodeConfiguration.TokenKey, leeway: TimeInterval = 0) throws {
        self.leeway = leeway
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
            throw .malformed
        } catch {
            throw .malformed
        }
        let seconds = now.timeIntervalSince1970
        if let exp = claims.exp, seconds >= exp + leeway { throw .expired }
        if let nbf = claims.nbf, seconds + leeway < nbf { throw .notYetValid }
        guard let id = claims.sub ?? claims.userId, !id.isEmpty else { throw .missingSubject }
        if let problem = UserID.problem(id) { throw .invalidSubject(id, reason: problem) }
        return AuthenticatedUser(
            id: id,
            expiresAt: claims.exp.map { Date(timeIntervalSince1970: $0) },
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
