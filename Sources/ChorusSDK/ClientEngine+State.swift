import Foundation

/// The state the engine keeps per topic, per awaited reply, per publish and per typing topic.
extension ClientEngine {
    /// One subscriber of a topic: its three sequences.
    struct Handle {
        var messages: AsyncStream<ChorusMessage>.Continuation
        /// False for a join held for presence only: its `messages` get nothing (and never
        /// overflow), and finish with the handle.
        var feedsMessages: Bool
        var presence: AsyncStream<PresenceEvent>.Continuation
        var typing: AsyncStream<TypingEvent>.Continuation
        /// A `join`'s data: the user is a member of the topic while this handle lasts. Nil for
        /// a plain subscriber.
        var joinedWith: JSONValue?
        var joined: Bool { joinedWith != nil }

        func finish() {
            messages.finish()
            presence.finish()
            typing.finish()
        }
    }

    /// A topic or pattern as the node should see it: subscribed while any handle remains.
    struct TopicState {
        var handles: [Int: Handle] = [:]
        /// Subscribers waiting for the first `subscribed` reply (or the error).
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        /// Subscribed on the current connection.
        var confirmed = false
        /// A `subscribe` request is in flight on the current connection.
        var inFlight = false
        /// The `subscribe` in flight asked for history (`since` or `replay`): until its reply,
        /// this subscription takes no message of its topic with a position, which a pattern
        /// of this client may deliver meanwhile; the node sends each of them in the page, or
        /// after it.
        var awaitingPage = false
        /// The subscription changed while a `subscribe` was in flight: subscribe again once it
        /// is answered (the node refuses a second subscribe of a history topic with 409 while
        /// the first still reads its history), before the waiters resume.
        var resendWhenAnswered = false
        /// The last `join` ended while plain subscribers remain: unsubscribe before that
        /// subscribe, so that the node lets the membership go (a node without `presenceLeave`).
        var leaveFirst = false
        /// The same on a node with `presenceLeave`: its subscribes say `presence: false`, the
        /// subscription going on, until one of them is answered.
        var leaving = false
        /// The `subscribe` in flight says `presence: false`.
        var leaveInFlight = false
        /// A subscribe went in place of the topic's catch-up after an expired token (which
        /// ``ClientEngine/catchUp(on:)`` skips for a topic with one in flight): it and its
        /// retries carry `since` until one is answered.
        var catchUpOwed = false
        /// The subscription changed while the token was expired (the node would refuse a
        /// subscribe with 401): subscribe again once a fresh token is accepted.
        var resendWhenAuthenticated = false
        /// The node has confirmed it once: it was live, so a later refusal ends it for the app.
        var everConfirmed = false
        /// Confirmed on a connection that was lost, not yet on a later one: its next
        /// confirmation is a reconnect's (`resubscribed`). Not `everConfirmed`: a subscribe sent
        /// again on the same connection is no reconnect.
        var reconnecting = false
        /// Presence events may have been missed since the node last confirmed it: a connection
        /// that had it confirmed was lost, or it was unsubscribed to end its last membership.
        var missedPresence = false
        /// Presence data to join with, and whether presence events are wanted.
        var presence: JSONValue?
        var presenceEvents = false
        /// Asked of the first subscribe only.
        var replay: Int?
        var since: StreamPosition?
        /// The `since` of later subscribers that came before the topic had a position (its
        /// subscribe unanswered): each starts live, and is checked against the position the
        /// reply gives (``ClientEvent/recoveryFailed(topic:since:)`` when behind it).
        var lateSince: [StreamPosition] = []
        /// The last position this subscription delivered, per topic. Each subscription keeps its
        /// own: a pattern that delivered a topic's newest message must not make the history page
        /// of that topic's own subscription look like repeats.
        var positions = StreamPositions()
        /// Messages without a position it delivered lately, to drop a repeated `messageId`.
        var recentIds = RecentMessageIds()
        /// Subscribes sent again on this connection (``retrySubscribe(_:after:)``), and the wait
        /// before the next.
        var retries = 0
        var retry: Task<Void, Never>?
    }

    /// A reply being waited for, by request id.
    enum Awaited {
        case request(CheckedContinuation<[String: JSONValue], any Error>, timer: Task<Void, Never>?)
        /// With what the `subscribe` asked for: history after `since`, or the last `replay` messages.
        case subscribe(topic: String, since: StreamPosition?, replay: Int?, timer: Task<Void, Never>?)
        case publish(key: Int, timer: Task<Void, Never>?)
        /// A `subscribe` with `since` for a live topic after a token renewed late
        /// (``catchUp(on:)``); `attempt` counts its resends after rate refusals.
        case catchUp(topic: String, since: StreamPosition, attempt: Int, timer: Task<Void, Never>?)
        /// `ahead`: a renewal before the expiry, whose refusal leaves the connection as it is;
        /// `attempt` counts its resends after rate refusals.
        case auth(ahead: Bool, token: String, attempt: Int)
        /// An `unsubscribe` of a topic no longer subscribed here; `attempt` as for `auth`.
        case unsubscribe(topic: String, attempt: Int)
        /// A `ping` sent behind an unacknowledged publish (request `publishId`): the node
        /// answers in order, so its `pong` means the publish was not refused.
        case fence(publishId: Int)
    }

    /// A publish waiting for a connection or for its acknowledgement.
    struct QueuedPublish {
        /// The `message` object's text without `id` and `data`.
        var head: String
        /// `data` as JSON text, sent as it is (what the app encoded, digits and all).
        var data: String
        var topic: String
        var messageId: String
        var continuation: CheckedContinuation<PublishReceipt, any Error>
        /// The request id it was sent with on the current connection; nil while unsent.
        var requestId: Int?
        /// Times the node dropped it past its message rate and it was sent again.
        var rateRetries = 0
    }

    /// Typing sent on one topic.
    struct Typing {
        var lastStart: ContinuousClock.Instant
        var stopTimer: Task<Void, Never>?
    }

    /// What a parked caller waits for.
    enum Wait {
        /// `connect()`: the client connected (or failed, or was closed).
        case connected
        /// A request made while the token is expired: the `auth` with a fresh one, or the
        /// connection's end, after which it tries again on the next.
        case freshToken
    }
}
