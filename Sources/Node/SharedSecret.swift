import Crypto

/// A secret a client must present (`API_KEY`, `STATS_TOKEN`), compared in constant time.
///
/// Both sides are hashed with SHA-256 first and the 32-byte digests compared with no early
/// exit, so neither the time taken nor a length check tells a client how much of its guess
/// was right, or how long the secret is.
public struct SharedSecret: Sendable, Equatable {
    private let digest: [UInt8]

    public init(_ value: String) {
        digest = Array(SHA256.hash(data: Array(value.utf8)))
    }

    /// Whether `candidate` is the secret.
    public func matches(_ candidate: String) -> Bool {
        let other = Array(SHA256.hash(data: Array(candidate.utf8)))
        var difference: UInt8 = 0
        for index in 0..<digest.count { difference |= digest[index] ^ other[index] }
        return difference == 0
    }
}
