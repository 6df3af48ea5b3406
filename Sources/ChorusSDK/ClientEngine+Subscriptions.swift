import Foundation

/// Subscribing and unsubscribing topics, for the handles of the app.
extension ClientEngine {
    /// Adds a subscriber of `topic` and waits until the node has confirmed the subscription
    /// (at once when it already has); throws the node's refusal.
    func subscribe(
        _ topic: String, handleId: Int, messages: AsyncStream<ChorusMessage>.Continuation,
        presence: AsyncStream<PresenceEvent>.Continuation, typing: AsyncStream<TypingEvent>.Continuation,
        feedsMessages: Bool, replay: Int?, since: StreamPosition?, presenceData: JSONValue?, presenceEvents: Bool
    ) async throws {
        if case .failed(let error) = state { throw error }
        if runner == nil, case .disconnected = state { start() }
        var state = topics[topic] ?? TopicState()
        let isNew = topics[topic] == nil
        state.handles[handleId] = Handle(
            messages: messages, feedsMessages: feedsMessages, presence: presence, typing: typing, joinedWith: presenceData)
        var changed = isNew
        if let presenceData, presenceData != state.presence {
            state.presence = presenceData
            changed = true
        }
        if presenceEvents, !state.presenceEvents {
            state.presenceEvents = true
            changed = true
        }
        if isNew {
            state.replay = replay
            state.since = since
        } else if let since, !TopicFilter.isPattern(topic) {
            // The topic is subscribed for another subscriber of this client: this one starts
            // live, and what came between `since` and the topic's position is not replayed to
            // it. Without a position yet (the subscribe unanswered), its reply tells.
            if let position = state.positions[topic] {
                if since.epoch != position.epoch || since.offset < position.offset {
                    emit(.recoveryFailed(topic: topic, since: since))
                }
            } else if state.confirmed {
                emit(.recoveryFailed(topic: topic, since: since))  // answered without one: no history
            } else {
                state.lateSince.append(since)
            }
        }
        topics[topic] = state
        if state.confirmed, !changed { return }
        // A join whose data is over the size limit ends the topic: this caller hears why.
        if changed, let error = subscribeAgain(topic) { throw error }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled || topics[topic]?.handles[handleId] == nil {
                    continuation.resume(throwing: Task.isCancelled ? CancellationError() : ChorusError.closed)
                } else if topics[topic]?.confirmed == true, !changed {
                    continuation.resume()
                } else {
                    topics[topic]?.waiters[handleId] = continuation
                }
            }
        } onCancel: {
            Task { await self.removeHandle(handleId, of: topic) }
        }
    }

    func subscriberCount(of topic: String) -> Int {
        topics[topic]?.handles.count ?? 0
    }

    /// Sends `topic`'s subscribe as it stands now, once the one in flight is answered, or once
    /// a fresh token is accepted. Not connected, nothing is sent: the next connection
    /// subscribes everything afresh.
    /// The size limit's error when the subscribe was over it (the topic has ended).
    @discardableResult
    func subscribeAgain(_ topic: String) -> ChorusError? {
        guard var state = topics[topic], authenticated, let connection else { return nil }
        if state.inFlight {
            state.resendWhenAnswered = true
        } else if !canSend {
            state.resendWhenAuthenticated = true
        } else {
            return sendSubscribe(topic, on: connection)
        }
        topics[topic] = state
        return nil
    }

    /// Returns the size limit's error when the subscribe was over it: the topic has ended, and a
    /// node that held it live is told to let it go.
    @discardableResult
    func sendSubscribe(_ topic: String, on connection: WebSocketConnection) -> ChorusError? {
        guard var state = topics[topic] else { return nil }
        if state.leaveFirst {
            // Answered by `unsubscribed`, which nothing waits for; the subscribe follows in order.
            // Dropped past the node's message rate, it is sent again before this subscribe's
            // retry (``failed(_:with:)``), which the same rate drops too.
            sendUnsubscribe(topic, on: connection)
            state.leaveFirst = false
        }
        let id = newId()
        var fields: [String: JSONValue] = ["type": "subscribe", "topic": .string(topic), "id": .integer(Int64(id))]
        var since = state.since
        // Live on this connection, on a node that keeps a live subscription's messages through a
        // subscribe that only changes presence: no `since`, which would cost a history read and
        // hold the topic's messages back until its page. Not when the token expired meanwhile:
        // this subscribe then stands in for the topic's catch-up (``catchUp(on:)`` skips it).
        if state.confirmed, state.resendWhenAuthenticated { state.catchUpOwed = true }
        let live = state.confirmed && presenceLeave && !state.catchUpOwed
        if state.everConfirmed, !live, !TopicFilter.isPattern(topic), let position = state.positions[topic] { since = position }
        if let since { fields["since"] = ["offset": .integer(Int64(since.offset)), "epoch": .string(since.epoch)] }
        let replay = since == nil ? state.replay : nil
        if let replay { fields["replay"] = .integer(Int64(replay)) }
        if let presence = state.presence {
            fields["presence"] = ["data": presence]
            state.leaving = false  // joined again: the membership goes on
        } else if state.leaving {
            fields["presence"] = false
        }
        state.leaveInFlight = state.leaving
        if state.presenceEvents { fields["presenceEvents"] = true }
        if let error = oversize(JSONValue.object(fields).jsonText) {
            // Presence data over the limit: this subscription ends (its subscribers throw).
            topics[topic] = state
            endTopic(topic, with: error)
            if state.confirmed { sendUnsubscribe(topic, on: connection) }
            return error
        }
        state.inFlight = true
        state.resendWhenAuthenticated = false
        state.awaitingPage = since != nil || replay != nil
        state.retry?.cancel()
        state.retry = nil
        topics[topic] = state
        awaited[id] = .subscribe(topic: topic, since: since, replay: replay, timer: timer(for: id))
        send(fields, on: connection)
        return nil
    }

    /// Forgets the subscribes of `topic` still waiting for a reply (their timers too): a later
    /// subscription of the topic must not take their answer, or their timeout, for its own.
    func dropAwaitedSubscribes(of topic: String) {
        awaited = awaited.filter { _, entry in
            switch entry {
            case .subscribe(topic, _, _, let timer), .catchUp(topic, _, _, let timer):
                timer?.cancel()
                return false
            default:
                return true
            }
        }
    }

    /// One subscriber is gone (cancelled, released or ended): its sequences finish, and the
    /// node is told to unsubscribe once the topic has no subscriber left.
    func removeHandle(_ handleId: Int, of topic: String) {
        guard var state = topics[topic] else { return }
        state.waiters.removeValue(forKey: handleId)?.resume(throwing: CancellationError())
        guard let handle = state.handles.removeValue(forKey: handleId) else {
            topics[topic] = state
            return
        }
        handle.finish()
        guard state.handles.isEmpty else {
            // The member's data is the newest join's still here: when that one ends, an earlier
            // one's data goes back to the node (an `update`); none left, the membership ends.
            let newest = state.handles.filter { $0.value.joined }.max { $0.key < $1.key }?.value.joinedWith
            let lastJoinEnded = handle.joined && newest == nil
            let dataChanged = handle.joined && newest != state.presence
            if dataChanged { state.presence = newest }
            if lastJoinEnded, presenceLeave {
                // Subscribed again with `presence: false`: the subscription goes on. Also when
                // no subscribe was answered yet: one that timed out may have joined on the node.
                state.leaving = true
            } else if lastJoinEnded, state.confirmed || state.inFlight {
                // Unsubscribed and subscribed again: presence events between are missed, and on
                // a topic without history the messages too.
                state.leaveFirst = true
                state.missedPresence = true
            }
            topics[topic] = state
            if dataChanged { subscribeAgain(topic) }
            return
        }
        topics[topic] = nil
        keepPosition(of: topic, state)
        state.retry?.cancel()
        // A node that cancels a history read for the unsubscribe never answers its subscribe.
        dropAwaitedSubscribes(of: topic)
        if authenticated, let connection { sendUnsubscribe(topic, on: connection) }
    }

    /// Tells the node to unsubscribe `topic`, which no handle here subscribes any more. With an
    /// id, so that one dropped past the node's message rate is sent again (`failed(_:with:)`).
    func sendUnsubscribe(_ topic: String, on connection: WebSocketConnection, attempt: Int = 0) {
        let id = newId()
        awaited[id] = .unsubscribe(topic: topic, attempt: attempt)
        send(["type": "unsubscribe", "topic": .string(topic), "id": .integer(Int64(id))], on: connection)
    }

    /// A subscription of `topic` is gone: where it was stays known (``LeftPositions``).
    func keepPosition(of topic: String, _ state: TopicState) {
        guard !TopicFilter.isPattern(topic), let position = state.positions[topic] else { return }
        leftPositions.left(topic, at: position)
    }
}
