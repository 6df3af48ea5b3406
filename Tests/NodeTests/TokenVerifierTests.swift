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
        let token = sign(["alg": "HS256"], ["userId": "u-1", "exp": Self.inAnHour])
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

    @Test("what a refusal repeats of the token is cut to 64 characters: a 100,000-character alg is not sent back (or logged) whole")
    func refusalRepeatsLittle() {
        let huge = String(repeating: "A", count: 100_000)
        let tokens = [
            Self.part(["alg": huge]) + "." + Self.part(["sub": "m"]) + ".",
            sign(["alg": "HS256"], ["sub": "m", "exp": Int(Date().timeIntervalSince1970) + 60, "iss": huge]),
        ]
        let issuerVerifier = try! TokenVerifier(key: .hmacSecret(Self.secret), rules: .init(issuer: "chorus"))
        for (token, verifier) in zip(tokens, [verifier, issuerVerifier]) {
            do {
                _ = try verifier.verify(token)
                Issue.record("accepted")
            } catch {
                #expect(error.description.count < 200, "\(error.description.prefix(300))")
            }
        }
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
        // Fixed test keys: generating RSA keys in a debug build takes seconds of CPU.
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: Self.rsaKey)
        let rs = try TokenVerifier(key: .publicKeyPEM(key.publicKey.pemRepresentation))
        let token = try TokenMinter.sign(header: ["alg": "RS256"], claims: ["sub": "r", "exp": Self.inAnHour]) {
            try key.signature(for: SHA256.hash(data: $0), padding: .insecurePKCS1v1_5).rawRepresentation
        }
        #expect(try rs.verify(token).id == "r")
        let other = try _RSA.Signing.PrivateKey(pemRepresentation: Self.otherRSAKey)
        let forged = try TokenMinter.sign(header: ["alg": "RS256"], claims: ["sub": "r", "exp": Self.inAnHour]) {
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

    // MARK: Claims rules (JWT_REQUIRE_EXP, JWT_LEEWAY, JWT_ISSUER, JWT_AUDIENCE) and crit

    static var inAnHour: Int { Int(Date().timeIntervalSince1970) + 3600 }

    @Test("a token without exp is refused by default, and accepted with JWT_REQUIRE_EXP=false")
    func expiryRequired() throws {
        let forever = minter.mint(subject: "a", ttl: nil)
        #expect(throws: TokenError.missingExpiry) { try verifier.verify(forever) }
        let lenient = try TokenVerifier(key: .hmacSecret(Self.secret), rules: .init(requireExpiry: false))
        #expect(try lenient.verify(forever).id == "a")
        #expect(try lenient.verify(forever).expiresAt == nil)
    }

    @Test("exp and nbf are allowed JWT_LEEWAY of clock skew, and no more")
    func leeway() throws {
        let now = Date()
        let strict = try TokenVerifier(key: .hmacSecret(Self.secret), rules: .init(leeway: .zero))
        let tenSeconds = try TokenVerifier(key: .hmacSecret(Self.secret), rules: .init(leeway: .seconds(10)))
        let expiredFiveAgo = sign(["alg": "HS256"], ["sub": "a", "exp": Int(now.timeIntervalSince1970) - 5])
        #expect(throws: TokenError.expired) { try strict.verify(expiredFiveAgo, now: now) }
        #expect(try tenSeconds.verify(expiredFiveAgo, now: now).id == "a")
        #expect(throws: TokenError.expired) { try tenSeconds.verify(expiredFiveAgo, now: now.addingTimeInterval(6)) }
        let validInFive = sign(["alg": "HS256"], ["sub": "a", "exp": Self.inAnHour, "nbf": Int(now.timeIntervalSince1970) + 5])
        #expect(throws: TokenError.notYetValid) { try strict.verify(validInFive, now: now) }
        #expect(try tenSeconds.verify(validInFive, now: now).id == "a")
    }

    @Test("the default leeway is 5 seconds")
    func defaultLeeway() {
        #expect(TokenVerifier.Rules().leeway == .seconds(5))
        #expect(verifier.rules.requireExpiry)
    }

    @Test("with JWT_ISSUER, only tokens from that issuer are accepted")
    func issuer() throws {
        let checked = try TokenVerifier(key: .hmacSecret(Self.secret), rules: .init(issuer: "https://auth.example"))
        #expect(try checked.verify(minter.mint(subject: "a", issuer: "https://auth.example")).id == "a")
        #expect(throws: TokenError.wrongIssuer("https://evil.example")) {
            try checked.verify(minter.mint(subject: "a", issuer: "https://evil.example"))
        }
        #expect(throws: TokenError.wrongIssuer(nil)) { try checked.verify(minter.mint(subject: "a")) }
        // Without JWT_ISSUER, any issuer (or none) is accepted.
        #expect(try verifier.verify(minter.mint(subject: "a", issuer: "anyone")).id == "a")
    }

    @Test("with JWT_AUDIENCE, aud (a string or an array) must name it")
    func audience() throws {
        let checked = try TokenVerifier(key: .hmacSecret(Self.secret), rules: .init(audience: "chorus"))
        #expect(try checked.verify(minter.mint(subject: "a", audience: "chorus")).id == "a")
        let many = sign(["alg": "HS256"], ["sub": "a", "exp": Self.inAnHour, "aud": ["billing", "chorus"]])
        #expect(try checked.verify(many).id == "a")
        let others = sign(["alg": "HS256"], ["sub": "a", "exp": Self.inAnHour, "aud": ["billing", "mail"]])
        #expect(throws: TokenError.wrongAudience(["billing", "mail"])) { try checked.verify(others) }
        #expect(throws: TokenError.wrongAudience(["billing"])) {
            try checked.verify(minter.mint(subject: "a", audience: "billing"))
        }
        #expect(throws: TokenError.wrongAudience([])) { try checked.verify(minter.mint(subject: "a")) }
        let notStrings = sign(["alg": "HS256"], ["sub": "a", "exp": Self.inAnHour, "aud": 7])
        #expect(throws: TokenError.invalidClaim("aud")) { try checked.verify(notStrings) }
    }

    @Test("a claim of the wrong type is refused naming the claim", arguments: [
        ("exp", ["sub": "a", "exp": "tomorrow"]), ("sub", ["sub": 7, "exp": Self.inAnHour]),
        ("nbf", ["sub": "a", "exp": Self.inAnHour, "nbf": [1]]),
    ] as [(String, [String: any Sendable])])
    func wrongClaimType(claim: String, claims: [String: any Sendable]) {
        let token = sign(["alg": "HS256"], claims)
        #expect(throws: TokenError.invalidClaim(claim)) { try verifier.verify(token) }
    }

    @Test("a header with crit is refused, whatever it lists", arguments: [["b64"], [], ["exp"]] as [[String]])
    func critical(crit: [String]) {
        let token = sign(["alg": "HS256", "crit": crit, "b64": false], ["sub": "a", "exp": Self.inAnHour])
        #expect(throws: TokenError.criticalHeader) { try verifier.verify(token) }
    }

    @Test("a signature spelled differently in its unused trailing bits is refused: one token, one spelling")
    func nonCanonicalSignature() throws {
        let token = minter.mint(subject: "alice", ttl: .seconds(60))
        #expect(try verifier.verify(token).id == "alice")
        // 32 signature bytes take 43 characters, whose last carries 2 unused bits.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let last = try #require(alphabet.firstIndex(of: token.last!))
        let forged = String(token.dropLast()) + String(alphabet[last ^ 1])
        #expect(forged != token)
        #expect(throws: TokenError.malformed) { try verifier.verify(forged) }
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

    /// Throwaway 2048-bit keys made for these tests only (`openssl genrsa 2048`).
    static let rsaKey = """
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDTYFR0wdkeXqEd
XHcgaLMO4WMySWfV5XE9BW1EvwYrgqHmb+w0LrdTs3H/3Smu4KmC3q9AfJS/b9i/
JGKQqZI6jCJv8SwFY1Sv/IS82kk9Eg6n1UnSW7oc7J6E5wVsc3jdjP4Q+kNzhmAZ
qfYDwEkEY89ELG05eqhzrKT2uMr60NrsVrohrhMeJfxAQ0VjUQYt+YrbTnfgsMGW
ClP5jNvd3O7FWY2n1b5j5jLMiUSqGxRrgvvj3DL4a7SQLVrcM8PPIc8EyQqQ0FND
A0k3Ktq0+DtUoCJl/e9veWmJpCq/4vCXtGO1tLRrKCnqnpK+XGahQtgjqrbneHWb
lzmlpQIXAgMBAAECggEAIJ7jKcmoujkcYC2e7M97orZB2sbdUXNBUIt/23Yne5uD
ZM6tAziabj5pP3VgM27Uei/nl+oiApE+P/FbjLu+p25s+h2cD5DOxwIPch2148jf
niMaa25ggIo7xILqoVwIsRhLNU+KDVAVkKBcKSQJoLXOjNTWXmKBkKh6JOFL4f0F
ckQHFb41GPuOoY9OZJJAdsxyXa475NZPEKICLotYewd41XZiPwmDAXM+LKRs72ty
Q3T2khh0n4idRm9WSZgZHXfIs9meyhBD0EeNv6W44askg0Wx7F2GoL+dubFGZQeh
pzgUmGh1Tn6ebypgH8Gm2LqAaRovcCb2BivOEyH8AQKBgQD5haeu9rnXPoH0FU39
mc99E3qwaD5mdDnWS1aIEiBHs3uftMKgfJsTAoVg9nuLzPHVHnTsJ4jc6qbIMQnh
55XUcYZxvPC9H23XcZQmYhuy/+NKXasvcn8GI34Dw7OqvbqW79cgxDkcZYDxBRPX
uXRCu0kI7hhnbKJjx4DO0mKnFwKBgQDY3SeX2skIAXC1xqz9+2djT+4kwrpfz7sc
UlG4JabR3YknDI89N+QabDSIvVWeCaYkWMS1S924kPPUjWR0OVpi2PO/ZadVf/zv
7umkjGDL5JDColxXYq11kN+k6t5s6ncnHM9YSzXksRBxmYlUwfA5gTO+aZjGyhoA
SMcVwUldAQKBgEmah3AxD3jS03qwniTkrjPy/wnydhW6yyTPbGMPFb6QzzK5G4BD
wWrGH5oOmzsN5Xg8V7khoFmqTjBXZtbgfW4BXutGFK11C+21b0IzRoBywxU4tDp2
x8mDxrRNkj4XYWcMsKTVvRMHThXKraPA7O6SWGTt9vzrKqvMOc7IeJlZAoGBANZ2
JtCS6dnD6t2pA60McVsSUbUC6eMUgLrqYaxVd9r1VcxLLGBjJG5I8c8ERmZKroYl
TyrnQvZiSu+5gE075rn4SVzPP6NbNh1lTKOQu60HdW01uVIl4NpyEel658oYOQtx
/08W2c42mMdvChPK0zFbJ3u33AFDHmGHl3JZOp8BAoGBAIlsBGf84L9AZFujdVrR
S+NN0i3GerZKsZHArT7MQYU4iLonjYm9w8YCS08xWyrCd+LXYN8mSzWQYmd11fna
Rl+WNr9uWdGnlLijFxIgHqKtDieLAngczhETnBF47CCdJN+crX5Ps6OYRxrxIKDX
UjOKaDWQ0I0ErjVkCkxfyRae
-----END PRIVATE KEY-----
"""

    static let otherRSAKey = """
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC1C1SGy55bojdj
gr11fWx7hGVGirKvsSAYf3/Lk/QuU+MQ0zEvcLRPobEHOLrQ/fBRq2HT8d+9+vOF
HlXaMSEG0LliIpuu9lU0yHrFuwfaZCJCOjPXiZ/7pcPfCUx682SuAS5UTCPH3FLV
sYMNKGE12w7tDAIH1uPqkHr3VkQgObDUYyeBme9HbSJGVkJE2uhIGUOKYdtvXOay
sct0laTF/YJsK+MbZyeH3kJsiO5r5SF2gV5LJw6V6mbDoRPs8qbaOizbWZnIoZBI
M++FYQxqNOrzw1jHePPgEtup/Kp4McTqx350KSZJleiMH3yWEB6nmjwF68sA/j1e
SLU7onU5AgMBAAECggEATXnxzFWrCS/cYDt89KCeIiXAaXXFjiZQw+scN3SzlHfV
vkeCzvh+UW2yopKGcBWcGHctQFRMGbMhL6CRwPQxXAdKrlJ9KVzFjfcVgzTM4Yrk
lk7uDJka28hOkE4caqlqNoTO3MhQr6D72fNDUAgtwaxjMNJotA4kLydxWBOUx+zt
/3Fgd/vH8CERrw5RSkFv6foAUrmLxQhK6xiZEelta9vtEMXxJQgc0EbjZSfhSDUn
MMf1xOJ4oe8/VQjxHwRfINbpJg17zL19b0NXDOdeRTrH56OgY09F/gOJ5bzs9MX9
guy9DmFW0lMu8rlNmETeHXSGA41u9XxdvUADm3g+eQKBgQD6ZNSgKbHQuPbxvVCM
6y6hUachoWvdnBKgXDz/SUtysEFTbslhesj2TyQVLnrfaU0+apYaSmfdd+o5T5tq
T377wislNphrIxkZZ2b/RndUs0IgLINKu88NRSCKIGj7i4qkYmwO08ZU7TaxdUji
9TGtHeMWyZ3jX36NLmEW99yJ6wKBgQC5GQMXn8ukImpFMxe0lAxRqndefn6mOqdJ
wdKTXvLwevgSd8xolwWvdNPrmCv5y9J5miOLAo1NqloOoo2vPPmXSzFQcEgql4A6
vKWq49l+7xM9jFfg2qZwRzY7COKBUwphfxS7V04DedGArcrlMVcqQ8DvdBlOLuCU
E6pYHNpwawKBgElMlRXhvsT8MIYpxlfKTRc6YPOuXnY8RxOcjNqqqSSExkrXRqp7
mDLKjiSJO70FBXC9IP3HREqH3RAz5qojZWfruleleM78Mk/GfldCWJJ5+2SRw0lw
WzdmQhVNUY45ljdy/HEGu6uG2ZjvXYva/VTRR/YWxVqXTOOlbRSdMHlLAoGBALRx
drtEE1DqH/Ff8p8eqLfAV+gtpqfEjCryIad7K5hWOJpAYWwgtfErEiEdUtmM4p2b
L0Un8rqg9HRJ8ZfA+IyOR//jxeaHlQEtwM9Mmk4NIROiSlUwsorIUUzRx4ZNftQ2
/+32GV54Fk28nww5woC4VlDZPIYkWtjgJvMJBcYLAoGAdfPGoVCYRLtrXHMDmLLH
f9BSHWIWExy9HFgmlWuafnjOZra+tnA2dQKmImJfqT7my91dsBGVkXp3x+cdPub4
ISuT++bZP0CGcSy1vhqyzj2ZF1HUSUhZEu+f/qhIYxGk/Hv10WbPxbbmAfhbXE6C
rfxvNKv0gIZLnobRc+BgkGc=
-----END PRIVATE KEY-----
"""
}
