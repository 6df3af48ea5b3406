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
