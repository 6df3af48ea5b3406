import Crypto
import Foundation
@testable import Node

/// Target `token`: the JWT parser and verifier (HS256).
///
/// The first input byte picks a mode:
/// - 0 (and anything not below): the rest, as text, is a token; verifying it must not crash.
/// - 1: the rest is split at the first `.` into a header and a payload of arbitrary bytes, which
///   are encoded and signed with the node's secret, so the claims parser sees arbitrary JSON
///   behind a valid signature; a token that verifies must name a non-empty user.
/// - 2: a token minted by `TokenMinter` for a subject taken from the input must verify as that
///   subject when it is a valid user id (`UserID`), and must not verify when it is not; then one
///   byte of it, at a position and to a value taken from the input, is changed: the changed token
///   must not verify at all. The signature covers the header and payload as written, and
///   `Base64URL.decode` accepts only the one canonical spelling (no padding, zero unused trailing
///   bits), so no other spelling of the same signature bytes exists.
enum TokenTarget {
    static let secret = Array("chorus-fuzz-secret-of-at-least-32-bytes".utf8)
    static let verifier = try! TokenVerifier(key: .hmacSecret(secret))
    /// A fixed instant, so that runs are reproducible; minted tokens are valid around it.
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// The adapter to the code under test: the user a token verifies as, or nil.
    static func verify(_ token: String) -> AuthenticatedUser? {
        try? verifier.verify(token, now: now)
    }

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        switch input.byte() {
        case 1:
            let rest = input.rest()
            let dot = rest.firstIndex(of: UInt8(ascii: ".")) ?? rest.endIndex
            let header = Array(rest[..<dot])
            let payload = dot < rest.endIndex ? Array(rest[(dot + 1)...]) : []
            let signingInput = base64URL(header) + "." + base64URL(payload)
            let signature = HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: secret))
            if let user = verify(signingInput + "." + base64URL(Array(signature))), user.id.isEmpty {
                fuzzFailure(.token, "a signed token verified with an empty user id")
            }
        case 2:
            let position = input.uint16()
            let value = input.byte()
            let subject = String(decoding: input.rest().prefix(64), as: UTF8.self)
            guard !subject.isEmpty else { return }
            let token = TokenMinter(secret: secret).mint(subject: subject, ttl: .seconds(600), now: now)
            if let problem = UserID.problem(subject) {
                // Not a user id: refused, however it is signed.
                if let user = verify(token) { fuzzFailure(.token, "the subject \(subject.debugDescription) \(problem), yet its token verifies as \(user)") }
                return
            }
            guard let user = verify(token), user.id == subject else {
                fuzzFailure(.token, "a minted token for \(subject.debugDescription) does not verify as it: \(token)")
            }
            var mutated = Array(token.utf8)
            let index = position % mutated.count
            guard mutated[index] != value else { return }
            mutated[index] = value
            let text = String(decoding: mutated, as: UTF8.self)
            if let other = verify(text) {
                fuzzFailure(.token, "changing byte \(index) to \(value) of \(token) still verifies, as \(other) (minted for \(user))")
            }
        default:
            _ = verify(String(decoding: input.rest(), as: UTF8.self))
        }
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
