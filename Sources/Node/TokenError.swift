import Broker

/// Why a token was refused. The description is what the client reads in `auth_error`.
public enum TokenError: Error, Equatable, CustomStringConvertible {
    case malformed
    case unsupportedAlgorithm(String)
    case algorithmMismatch(expected: String, got: String)
    case badSignature
    case expired
    case notYetValid
    case missingSubject
    case invalidGrants(String)
    /// A claim of the wrong type (`exp` as a string, `sub` as a number): its name.
    case invalidClaim(String)
    case criticalHeader
    case missingExpiry
    case wrongIssuer(String?)
    case wrongAudience([String])
    /// The subject breaks the user-id rule (``UserID``): the id and why.
    case invalidSubject(String, reason: String)

    public var description: String {
        switch self {
        case .malformed: "malformed token: expected a JWS compact token (header.payload.signature)"
        case .unsupportedAlgorithm(let alg): "unsupported token algorithm '\(EchoedText.cut(alg))'"
        case .algorithmMismatch(let expected, let got):
            "token algorithm '\(got)' does not match the node's key (\(expected))"
        case .badSignature: "invalid token signature"
        case .expired: "token expired"
        case .notYetValid: "token not yet valid (nbf is in the future)"
        case .missingSubject: "token has no 'sub' or 'userId' claim"
        case .invalidGrants(let reason): "token grants are invalid: \(EchoedText.cut(reason))"
        case .invalidClaim(let name): "token claim '\(EchoedText.cut(name))' has the wrong type"
        case .criticalHeader: "token header has 'crit': this node understands no critical JWS extension"
        case .missingExpiry: "token has no 'exp' claim: this node accepts only tokens that expire"
        case .wrongIssuer(let issuer?): "token issuer '\(EchoedText.cut(issuer))' is not the one this node trusts"
        case .wrongIssuer(nil): "token has no 'iss' claim: this node requires its issuer"
        case .wrongAudience(let audience) where audience.isEmpty: "token has no 'aud' claim: this node requires its audience"
        case .wrongAudience: "token audience does not include this node's"
        case .invalidSubject(let id, let reason):
            "token subject '\(EchoedText.cut(id))' cannot be a user id: it \(reason)"
        }
    }
}
