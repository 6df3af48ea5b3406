import Crypto
import Foundation

/// Signs HS256 tokens with the node's `JWT_SECRET`: `chorus token` uses it so a newcomer can try
/// a node in a minute, and tests use it to make real tokens.
public struct TokenMinter: Sendable {
    private let secret: SymmetricKey

    public init(secret: [UInt8]) {
        self.secret = SymmetricKey(data: secret)
    }

    /// A token for `subject` that expires `ttl` from `now` (no `exp` when nil: a node refuses it
    /// unless `JWT_REQUIRE_EXP=false`), with `iss` and `aud` when given (a node with
    /// `JWT_ISSUER` / `JWT_AUDIENCE` requires them).
    public func mint(
        subject: String, ttl: Duration? = .seconds(3600), notBefore: Date? = nil, grants: Grants? = nil,
        issuer: String? = nil, audience: String? = nil, now: Date = Date()
    ) -> String {
        var claims: [String: Any] = ["sub": subject, "iat": Int(now.timeIntervalSince1970)]
        if let issuer { claims["iss"] = issuer }
        if let audience { claims["aud"] = audience }
        if let ttl {
            // Whole seconds (rounded up), as most JWT libraries expect of a NumericDate.
            claims["exp"] = Int((now.timeIntervalSince1970 + Double(ttl.components.seconds)
                + Double(ttl.components.attoseconds) / 1e18).rounded(.up))
        }
        if let notBefore { claims["nbf"] = Int(notBefore.timeIntervalSince1970) }
        if let grants {
            claims["grants"] = [
                "subscribe": grants.subscribe.map(\.text),
                "publish": grants.publish.map(\.text),
            ]
        }
        return Self.sign(header: ["alg": "HS256", "typ": "JWT"], claims: claims) { input in
            Data(HMAC<SHA256>.authenticationCode(for: input, using: secret))
        }
    }

    /// Assembles a JWS compact token; `signer` signs the `header.payload` input.
    public static func sign(header: [String: Any], claims: [String: Any], signer: (Data) throws -> Data) rethrows
        -> String
    {
        let headerPart = Base64URL.encode(try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        let claimsPart = Base64URL.encode(try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
        let input = "\(headerPart).\(claimsPart)"
        let signature = try signer(Data(input.utf8))
        return "\(input).\(Base64URL.encode(signature))"
    }
}
