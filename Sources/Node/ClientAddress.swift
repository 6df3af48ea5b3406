import Foundation

/// The address a request comes from, as per-IP limits count it: the peer's, or, when the peer
/// is a trusted proxy (`TRUSTED_PROXIES`), the right-most `X-Forwarded-For` entry that is not
/// itself a trusted proxy. Nobody else can choose the address they are counted under.
enum ClientAddress {
    static func resolve(peer: String?, forwardedFor: [String], trusted: Set<String>) -> String {
        let peer = peer ?? "unknown"
        guard trusted.contains(peer) else { return peer }
        let entries = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        return entries.last { !trusted.contains($0) && !$0.isEmpty } ?? peer
    }
}
