/// Something the app may want to react to, beside messages: watch them with
/// ``ChorusClient/events()``.
public enum ClientEvent: Sendable, Equatable {
    /// The node confirmed a subscription. `resubscribed` is true only for the first
    /// confirmation on a new connection of a subscription confirmed on an earlier one (a
    /// reconnect, also when that resubscribe was confirmed after a 409 or 429 retry): the time
    /// to reload a topic without history. It is false for the first subscribe and for a
    /// subscribe sent again on the same connection (a join of a live topic, new presence data,
    /// the last join ending, a catch-up after a late token renewal). `recovered` is the node's
    /// answer to the `since` position the client sent (nil when the topic has no history or no
    /// position was known); `position` the topic's current one.
    case subscribed(topic: String, resubscribed: Bool, recovered: Bool?, position: StreamPosition?)
    /// A resubscription could not recover what was published while the client was away
    /// (history too short, or a new epoch): reload what the app shows for `topic`, then
    /// carry on with live messages.
    case recoveryFailed(topic: String, since: StreamPosition)
    /// The node's link to Redis came back after an outage: messages other nodes published
    /// meanwhile never reached this client, though the connection stayed up. With a `topic`
    /// (as subscribed, a pattern too): that subscription's messages; nil: those addressed to
    /// this user (``ChorusClient/userMessages()``). Reload what the app shows for it (for
    /// instance `GET /api/messages`), as after ``recoveryFailed(topic:since:)``; everything
    /// published after the event arrives. Positions are unchanged: the offsets do not say what
    /// was lost.
    case gap(topic: String?)
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
