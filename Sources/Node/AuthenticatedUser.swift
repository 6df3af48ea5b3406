import Broker
import Foundation

/// Who a verified token says the client is, and what it may do.
public struct AuthenticatedUser: Sendable, Equatable {
    /// From the `sub` claim, or `userId` when there is no `sub`.
    public var id: String
    /// The `exp` claim; delivery stops at this instant until the client authenticates again.
    public var expiresAt: Date?
    /// Topic grants from the token's `grants` claim; nil means no restriction by grants.
    public var grants: Grants?

    public init(id: String, expiresAt: Date? = nil, grants: Grants? = nil) {
        self.id = id
        self.expiresAt = expiresAt
        self.grants = grants
    }

    /// A token valid for more than this counts as not expiring while connected: a far-future
    /// `exp` would overflow a deadline's nanoseconds.
    static let longestExpiry: TimeInterval = 365 * 86_400

    /// Milliseconds from `now` to `expiresAt` (0 once past it); nil without an expiry or past
    /// ``longestExpiry``.
    static func expiresIn(_ expiresAt: Date?, now: Date) -> Int? {
        guard let expiresAt else { return nil }
        let seconds = max(0, expiresAt.timeIntervalSince(now))
        return seconds < longestExpiry ? Int(seconds * 1000) : nil
    }
}

/// `"grants": {"subscribe": [patterns], "publish": [patterns]}` in a token.
public struct Grants: Sendable, Equatable, Codable {
    public var subscribe: [TopicPattern]
    public var publish: [TopicPattern]

    public init(subscribe: [TopicPattern] = [], publish: [TopicPattern] = []) {
        self.subscribe = subscribe
        self.publish = publish
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        subscribe = try container.decodeIfPresent([TopicPattern].self, forKey: .subscribe) ?? []
        publish = try container.decodeIfPresent([TopicPattern].self, forKey: .publish) ?? []
    }
}
