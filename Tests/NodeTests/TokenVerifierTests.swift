import Crypto
import Foundation
import Node
import Testing
import _CryptoExtras

@Suite("JWT verification")
struct TokenVerifierTests {
    static let secret = Array("unit-test-secret-0123456789".utf8)
    let verifier = try! TokenVerifier(key: .hmacSecret(TokenVerifierTests.secret))
    let minter = TokenMinter(secret: TokenVerifierTests.secret)

    @Test("a valid HS256 token yields its subject, expiry and grants")
    func validHS256() throws {
        let token = minter.mint(subject: "alice", ttl: .seconds(60), grants: .init(subscribe: [try .init("chat.*")]))
        let user = try verifier.verify(token)
        #expect(user.id == "alice")
        #expect(user.expiresAt != nil)
        #expect(user.grants?.subscribe.map(\.text) == ["chat.*"])
    }

    @Test("userId is accepted when there is no sub")
    func userIdClaim() throws {
        let token = sign(["alg": "HS256"], ["userId": "u-1"])
        #expect(try verifier.verify(token).id == "u-1")
    }

    @Test("expired tokens are refused")
    func expired() {
        let token = minter.mint(subject: "a", ttl: .seconds(10), now: Date().addingTimeInterval(-60))
        #expect(throws: TokenError.expired) { try verifier.verify(token) }
    }

    @Test("tokens whose nbf is in the future are refused")
    func notYetValid() {
        let token = minter.mint(subject: "a", notBefore: Date().addingTimeInterval(120))
        #expect(throws: TokenError.notYetValid) { try verifier.verify(token) }
    }

    @Test("a token signed with another secret is refused")
    func wrongKey() {
        let token = TokenMinter(secret: Array("another-secret-0123456789".utf8)).mint(subject: "a")
        #expect(throws: TokenError.badSignature) { try verifier.verify(token) }
    }

    @Test("alg none is refused even without a signature")
    func algNone() {
        let unsigned = Self.part(["alg": "none"]) + "." + Self.part(["sub": "mallory"]) + "."
        #expect(throws: TokenError.unsupportedAlgorithm("none")) { try verifier.verify(unsigned) }
    }

    @Test("a token whose alg differs from the configured key is refused")
    func algMismatch() throws {
        // HS384 over the same secret, and RS256 labelled on an HMAC key (key confusion).
        let hs384 = sign(["alg": "HS384"], ["sub": "a"])
        #expect(throws: TokenError.unsupportedAlgorithm("HS384")) { try verifier.verify(hs384) }
        let rs = sign(["alg": "RS256"], ["sub": "a"])
        #expect(throws: TokenError.algorithmMismatch(expected: "HS256", got: "RS256")) { try verifier.verify(rs) }
    }

    @Test("ES256 with a P-256 public key: valid, and an HS256 token made with the public key as secret is refused")
    func es256() throws {
        let key = P256.Signing.PrivateKey()
        let es = try TokenVerifier(key: .publicKeyPEM(key.publicKey.pemRepresentation))
        let token = try TokenMinter.sign(header: ["alg": "ES256"], claims: ["sub": "e", "exp": Date().timeIntervalSince1970 + 60]) {
            try key.signature(for: $0).rawRepresentation
        }
        #expect(try es.verify(token).id == "e")
        let confused = TokenMinter(secret: Array(key.publicKey.pemRepresentation.utf8)).mint(subject: "mallory")
        #expect(throws: TokenError.algorithmMismatch(expected: "ES256", got: "HS256")) { try es.verify(confused) }
    }

    @Test("RS256 with an RSA public key")
    func rs256() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let rs = try TokenVerifier(key: .publicKeyPEM(key.publicKey.pemRepresentation))
        let token = try TokenMinter.sign(header: ["alg": "RS256"], claims: ["sub": "r"]) {
            try key.signature(for: SHA256.hash(data: $0), padding: .insecurePKCS1v1_5).rawRepresentation
        }
        #expect(try rs.verify(token).id == "r")
        let other = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let forged = try TokenMinter.sign(header: ["alg": "RS256"], claims: ["sub": "r"]) {
            try other.signature(for: SHA256.hash(data: $0), padding: .insecurePKCS1v1_5).rawRepresentation
        }
        #expect(throws: TokenError.badSignature) { try rs.verify(forged) }
    }

    @Test("garbage is refused as malformed", arguments: ["", "abc", "a.b", "a.b.c.d", "!!.??.**"])
    func malformed(token: String) {
        #expect(throws: TokenError.malformed) { try verifier.verify(token) }
    }

    @Test("a token without sub or userId is refused")
    func missingSubject() {
        #expect(throws: TokenError.missingSubject) { try verifier.verify(sign(["alg": "HS256"], ["exp": 9_999_999_999])) }
    }

    private func sign(_ header: [String: Any], _ claims: [String: Any]) -> String {
        TokenMinter.sign(header: header, claims: claims) {
            Data(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: Self.secret)))
        }
    }

    private static func part(_ object: [String: Any]) -> String {
        let data = try! JSONSerialization.data(withJSONObject: object)
        return data.base64EncodedString().replacingOccurrences(of: "=", with: "")
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
}
