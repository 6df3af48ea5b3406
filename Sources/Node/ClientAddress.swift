import Foundation

/// The address a request comes from, as per-IP limits count it: the peer's, or, when the peer
/// is a trusted proxy (`TRUSTED_PROXIES`: addresses or CIDR ranges), the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy. Nobody else can choose the
/// address they are counted under.
enum ClientAddress {
    static func resolve(peer: String?, forwardedFor: [String], trusted: [IPRange]) -> String {
        let peer = peer ?? "unknown"
        guard isTrusted(peer, trusted) else { return peer }
        let entries = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        return entries.last { !$0.isEmpty && !isTrusted($0, trusted) } ?? peer
    }

    /// Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of `ranges`.
    static func isTrusted(_ address: String, _ ranges: [IPRange]) -> Bool {
        guard !ranges.isEmpty, let parsed = IPAddress(address) else { return false }
        return ranges.contains { $0.contains(parsed) }
    }
}
