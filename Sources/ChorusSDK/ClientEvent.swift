/// Something the app may want to react to, beside messages: watch them with
/// ``ChorusClient/events()``.
public enum ClientEvent: Sendable, Equatable {
    /// The node confirmed a subscription: the first time (`resubscribed` false) or after a
    /// reconnect. `recovered` is the node's answer to the `since` position the client sent
    /// (nil when the topic has no history or no position was known); `position` the topic's
    /// current one.
    case subscribed(topic: String, resubscribed: Bool, recovered: Bool?, position: StreamPosition?)
    /// A resubscription could not recover what was published while the client was away
    /// (history too short, or a new epoch): reload what the app shows for `topic`, then
    /// carry on with live messages.
    case recoveryFailed(topic: String, since: StreamPosition)
    /// The node ended a subscription (a refreshed token no longer allows it); its sequences
    /// have finished.
    case subscriptionEnded(topic: String, error: ChorusError)
    /// The node said the token expired; the client is fetching a new one.
    case tokenExpired
    /// A new token was accepted on the open connection.
    case reauthenticated(userId: String)
    /// An error the node sent without a request to blame (a rate limit, for instance), or a
    /// failed token refresh.
    case error(ChorusError)
}
