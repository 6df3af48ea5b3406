import Foundation

/// The one parser of `Authorization: Bearer <credential>` (RFC 6750 §2.1), for tokens at the
/// upgrade and on the API, the API key as a bearer value, and `STATS_TOKEN`.
enum BearerCredential {
    /// The credential of an `Authorization` header value; nil when it is absent or not Bearer.
    static func from(_ header: String?) -> String? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }
}
