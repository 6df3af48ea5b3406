import Foundation

/// What the node sends: replies, messages, presence, subscription confirmations and catch-ups.
extension ClientEngine {
    /// Handles one message of the node; a ``ConnectionEnding`` when the connection must end.
    func receive(_ text: String, on connection: WebSocketConnection) -> ConnectionEnding? {
        guard let fields = Self.fields(of: text), let type = fields["type"]?.stringValue else {
            emit(.error(.protocolViolation(String(text.prefix(200)))))
            return nil
        }
        let id = fields["id"]?.intValue
        switch type {
        case "message":
            deliver(fields, text: text)
        case "presence":
            deliverPresence(PresenceEvent.events(in: fields))
        case "typing":
            if let event = TypingEvent(fields), event.userId != userId {
                forEachHandle(covering: event.topic) { $0.typing.yield(event) }
            }
        case "auth_success":
            let user = fields["userId"]?.stringValue ?? ""
            if !authenticated {
                // The node's limit (older nodes do not say: their default). The configuration's
                // may lower an announced one (a proxy's), and replaces the default.
                let announced = fields["maxMessageSize"]?.intValue.flatMap { $0 > 0 ? $0 : nil }
                if let own = configuration.maxMessageSize, own > 0 {
                    maxMessageSize = min(own, announced ?? own)
                } else {
                    maxMessageSize = announced ?? Self.defaultMaxMessageSize
                }
                presenceLeave = fields["presenceLeave"]?.boolValue ?? false
                didAuthenticate(as: user, on: connection)
                scheduleRenewal(fields["expiresIn"]?.intValue, on: connection)
            } else if let id, case .auth? = awaited.removeValue(forKey: id) {
                userId = user
                let wasExpired = tokenExpired
                tokenExpired = false
                resume(.freshToken, with: nil)
                emit(.reauthenticated(userId: user))
                if wasExpired {
                    sendWaiting(on: connection)
                    catchUp(on: connection)
                }
                scheduleRenewal(fields["expiresIn"]?.intValue, on: connection)
            }
        case "auth_error":
            let code = fields["code"]?.intValue ?? 401
            let message = fields["message"]?.stringValue ?? "token refused"
            if let id, code == 401, case .auth(ahead: true, _, _)? = awaited[id] {
                // A token asked for ahead of the expiry was refused: the connection goes on with
                // the one it has (the `auth_expired` path renews, or fails, at the expiry). A
                // token of another user (409) ends it, as before: it is not this user's any more.
                awaited[id] = nil
                emit(.error(.authenticationFailed(code: code, message: message)))
                return nil
            }
            if let id { awaited[id] = nil }
            if code == 409, authenticated {
                // A token of another user on this connection (``setToken(_:)`` after a change of
                // account): a new connection with it, where subscriptions are made again for
                // that user. Not a refused token.
                return .tokenOfAnotherUser
            }
            return .authRefused(code: code, message: message)
        case "gap":
            // Sent once the Redis link is live again: reloading now misses nothing after it.
            emit(.gap(topic: fields["topic"]?.stringValue))
        case "auth_expired":
            tokenExpired = true
            emit(.tokenExpired)
            if tokenProvider != nil { Task { await self.refreshAuthentication(on: connection) } }
        case "subscribed":
            switch id.flatMap({ awaited[$0] }) {
            case .subscribe(let topic, let since, let replay, let timer)?:
                awaited[id!] = nil
                timer?.cancel()
                if topics[topic]?.leaveInFlight == true {
                    topics[topic]?.leaving = false
                    topics[topic]?.leaveInFlight = false
                }
                subscribed(topic, since: since, replay: replay, fields)
            case .catchUp(let topic, let since, _, let timer)?:
                awaited[id!] = nil
                timer?.cancel()
                subscribed(topic, since: since, replay: nil, fields)
            default:
                break
            }
        case "published":
            if let id, case .publish(let key, let timer)? = awaited.removeValue(forKey: id) {
                timer?.cancel()
                publishRefusals = 0
                if let publish = publishes.removeValue(forKey: key) {
                    publish.continuation.resume(returning: PublishReceipt(
                        topic: publish.topic, messageId: fields["messageId"]?.stringValue ?? publish.messageId,
                        position: StreamPosition(fields), duplicate: fields["duplicate"]?.boolValue ?? false,
                        acknowledged: true, nodeOnly: fields["scope"]?.stringValue == "node",
                        uncertain: fields["uncertain"]?.boolValue ?? false))
                }
            }
        case "error":
            let error = ChorusError.server(
                code: fields["code"]?.intValue ?? 0, message: fields["message"]?.stringValue ?? "",
                details: fields["details"])
            if let id, let entry = awaited.removeValue(forKey: id) {
                failed(entry, with: error)
            } else if let topic = fields["details"]?["topic"]?.stringValue, fields["details"]?["subscriptionEnded"] == .bool(true),
                topics[topic] != nil
            {
                // The node ended it (a new token's grants do not cover it); other errors naming
                // a topic (a typing there refused) leave the subscription as it is.
                endTopic(topic, with: error)
            } else {
                emit(.error(error))
            }
        default:
            // Replies to requests (pong, presence.state, read_recorded, ...) by id.
            switch id.flatMap({ awaited.removeValue(forKey: $0) }) {
            case .request(let continuation, let timer)?:
                timer?.cancel()
                continuation.resume(returning: fields)
            case .fence(let publishId)?:
                // The publish was not refused: done, unacknowledged.
                if case .publish(let key, let timer)? = awaited.removeValue(forKey: publishId) {
                    timer?.cancel()
                    publishRefusals = 0
                    if let publish = publishes.removeValue(forKey: key) {
                        publish.continuation.resume(returning: PublishReceipt(
                            topic: publish.topic, messageId: publish.messageId, position: nil, duplicate: false,
                            acknowledged: false))
                    }
                }
            default:
                break
            }
        }
        return nil
    }

    func failed(_ entry: Awaited, with error: ChorusError) {
        if case .server(code: 401, _, _) = error, authenticated, sendAfterRenewal(entry) { return }
        switch entry {
        case .request(let continuation, let timer):
            timer?.cancel()
            continuation.resume(throwing: error)
        case .publish(let key, let timer):
            timer?.cancel()
            if var publish = publishes[key], publish.rateRetries < Self.rateRetries, let connection,
                let wait = Self.retryAfter(of: error)
            {
                // Dropped past the node's message rate: back in the queue (same messageId), which
                // pauses and then goes out in order (``pausePublishes(after:wait:on:)``).
                publish.rateRetries += 1
                publish.requestId = nil
                publishes[key] = publish
                pausePublishes(after: error, wait: wait, on: connection)
                return
            }
            publishes.removeValue(forKey: key)?.continuation.resume(throwing: error)
        case .subscribe(let topic, let since, let replay, let timer):
            timer?.cancel()
            // Not a pattern, nor a negative replay: the node refuses those with the same fields,
            // and they are the caller's mistakes.
            if case .server(code: 400, _, let details) = error, let field = details?["field"]?.stringValue,
                field == "replay" || field == "since", !TopicFilter.isPattern(topic), (replay ?? 0) >= 0,
                var state = topics[topic]
            {
                // The topic has no history (any more: a configuration changed): subscribed live
                // instead. A position sent is a recovery that failed, which the app must hear.
                state.inFlight = false
                state.awaitingPage = false
                state.replay = nil
                state.since = nil
                state.positions.forget(topic)
                topics[topic] = state
                if let since { emit(.recoveryFailed(topic: topic, since: since)) }
                subscribeAgain(topic)
                return
            }
            // A resubscription over the subscription limit (429) may find room later on this
            // connection; a 409 means a history read of the topic still runs (a subscribe sent
            // again after a timeout); a subscribe dropped past the message rate (429 with
            // `retryAfter`) goes again after that. A first subscribe's limit 429 is the caller's.
            if case .server(code: let code, _, _) = error,
                code == 409 || (code == 429 && topics[topic]?.everConfirmed == true) || Self.retryAfter(of: error) != nil
            {
                retrySubscribe(topic, after: error)
            } else {
                // A refused change of a live subscription (new join data over the node's size
                // limit: 413) leaves the node's subscription, and membership, as they were:
                // ended here, so let go there.
                let confirmed = topics[topic]?.confirmed == true
                endTopic(topic, with: error)
                if confirmed, let connection { sendUnsubscribe(topic, on: connection) }
            }
        case .catchUp(let topic, let since, let attempt, let timer):
            timer?.cancel()
            if attempt < Self.rateRetries, let connection, topics[topic] != nil, let delay = rateRetryDelay(error, attempt: attempt + 1) {
                // Dropped past the node's message rate (many topics caught up at once): sent
                // again after the delay it named; the topic's live messages wait meanwhile. Kept
                // as the topic's retry, which its end (or the connection's) cancels.
                topics[topic]?.retry = Task {
                    do { try await Task.sleep(for: delay) } catch { return }
                    guard self.connection === connection, self.topics[topic]?.confirmed == true else { return }
                    self.topics[topic]?.retry = nil
                    // The token expired again meanwhile: the catch-up after that renewal asks.
                    guard self.canSend else { return self.catchUpFailed(topic, since: since) }
                    self.sendCatchUp(topic, since: since, attempt: attempt + 1, on: connection)
                }
                return
            }
            catchUpFailed(topic, since: since)
        case .auth(let ahead, let token, let attempt):
            // Dropped past the node's message rate (a renewal during a burst of publishes, a
            // setToken behind a reconnect's resubscribes): sent again after the wait it names
            // while it is still the token to present, instead of letting it expire unsent.
            if attempt < Self.rateRetries, let connection, let delay = rateRetryDelay(error, attempt: attempt + 1) {
                Task {
                    try? await Task.sleep(for: delay)
                    guard self.connection === connection, self.authenticated, self.token == token else { return }
                    self.sendAuth(token, ahead: ahead, on: connection, attempt: attempt + 1)
                }
                return
            }
            emit(.error(error))
        case .unsubscribe(let topic, let attempt):
            // Dropped past the node's message rate: the node would go on delivering the topic
            // (and keep the user a member of its presence). Sent again while it stays unsubscribed here.
            // Still subscribed here, it was a last join's end: the subscribe sent right behind it
            // was dropped too, and its retry leaves first again.
            if Self.retryAfter(of: error) != nil, topics[topic] != nil {
                topics[topic]?.leaveFirst = true
                return
            }
            if attempt < Self.rateRetries, let connection, let delay = rateRetryDelay(error, attempt: attempt + 1) {
                Task {
                    try? await Task.sleep(for: delay)
                    guard self.connection === connection, self.authenticated, self.topics[topic] == nil else { return }
                    self.sendUnsubscribe(topic, on: connection, attempt: attempt + 1)
                }
            }
        case .fence:
            break
        }
    }

    /// A publish or subscribe the node refused with 401 on an authenticated connection: it
    /// crossed the token's expiry (the node said `auth_expired` just before). Sent again once
    /// a fresh token is accepted (``sendWaiting(on:)``), at once if one already is: the guide
    /// promises that requests wait for the renewal; a catch-up likewise. False for other
    /// requests (``request(_:)`` sends those again itself).
    func sendAfterRenewal(_ entry: Awaited) -> Bool {
        switch entry {
        case .publish(let key, let timer):
            timer?.cancel()
            publishes[key]?.requestId = nil
            if let connection { resendPublish(key, on: connection) }
            return true
        case .subscribe(let topic, _, _, let timer):
            timer?.cancel()
            topics[topic]?.inFlight = false
            subscribeAgain(topic)
            return true
        case .catchUp(let topic, let since, let attempt, let timer):
            // The fresh token expired too before the node read the catch-up. Nothing was
            // delivered meanwhile, so the catch-up after the next renewal (``catchUp(on:)``)
            // asks from the same position; at once if that renewal is done already.
            timer?.cancel()
            topics[topic]?.inFlight = false
            topics[topic]?.awaitingPage = false
            if canSend, let connection, topics[topic]?.confirmed == true {
                sendCatchUp(topic, since: since, attempt: attempt, on: connection)
            }
            return true
        case .request, .auth, .unsubscribe, .fence:
            return false
        }
    }

    func deliver(_ fields: [String: JSONValue], text: String) {
        let data = RawJSON.member("data", in: text).map(String.init) ?? "null"
        guard fields["topic"] != nil else { return deliverToUser(ChorusMessage(addressedToUser: fields, data: data)) }
        guard let message = try? ChorusMessage(fields, data: data) else { return }
        var overflowed: [(topic: String, handleId: Int)] = []
        for pattern in topics.keys.filter({ TopicFilter.matches($0, message.topic) }) {
            if message.position != nil, pattern == message.topic, topics[pattern]?.awaitingPage == true { continue }
            if let position = message.position, topics[pattern]?.positions.advance(message.topic, to: position) == false { continue }
            if message.position == nil, let id = message.messageId,
                topics[pattern]?.recentIds.insert(id, on: message.topic) == false
            {
                continue
            }
            for (handleId, handle) in topics[pattern]?.handles ?? [:] where handle.feedsMessages {
                if case .dropped = handle.messages.yield(message) { overflowed.append((pattern, handleId)) }
            }
        }
        for (topic, handleId) in overflowed {
            emit(.subscriptionEnded(topic: topic, error: .bufferOverflow(limit: configuration.messageBufferLimit)))
            removeHandle(handleId, of: topic)
        }
    }

    /// A message the application addressed to this user (no topic): to every watcher of
    /// ``ChorusClient/userMessages()``; a watcher that fell `messageBufferLimit` behind is
    /// finished, as a subscription would be.
    func deliverToUser(_ message: ChorusMessage) {
        for (id, watcher) in userMessageWatchers {
            if case .dropped = watcher.yield(message) {
                userMessageWatchers[id] = nil
                watcher.finish()
                emit(.error(.bufferOverflow(limit: configuration.messageBufferLimit)))
            }
        }
    }

    /// Presence events to every subscriber of their topics that asked for them. A subscriber
    /// whose buffer was full (a join storm in one batch, a slow consumer) lost the oldest: it
    /// hears `resync` for those topics after the batch, the node's own signal to read the list again.
    func deliverPresence(_ events: [PresenceEvent]) {
        var lost: [String: (handle: Handle, topics: Set<String>)] = [:]
        for event in events {
            for (pattern, state) in topics where state.presenceEvents && TopicFilter.matches(pattern, event.topic) {
                for (handleId, handle) in state.handles {
                    guard case .dropped = handle.presence.yield(event) else { continue }
                    lost["\(handleId) \(pattern)", default: (handle, [])].topics.insert(event.topic)
                }
            }
        }
        for (handle, topics) in lost.values {
            for topic in topics.sorted() {
                handle.presence.yield(PresenceEvent(topic: topic, kind: .resync, member: nil, timestamp: PresenceEvent.now()))
            }
        }
    }

    /// The frame's members. A number no `Double` holds (`1e400`, `1e-400`) fails ``JSONValue``
    /// for the whole frame; in `data` or `metadata` (anything a publisher sent) it makes that
    /// member `null` in this view only, so that the message still arrives, with
    /// ``ChorusMessage/rawData`` (read from `text` itself) exactly as published, and the other
    /// member (`metadata.senderId`, which the node vouches for) as it was.
    static func fields(of text: String) -> [String: JSONValue]? {
        if let fields = (try? JSONValue(parsing: text))?.objectValue { return fields }
        var stripped = text
        for key in ["data", "metadata"] {
            guard let value = RawJSON.member(key, in: stripped), (try? JSONValue(parsing: String(value))) == nil
            else { continue }
            stripped.replaceSubrange(value.startIndex..<value.endIndex, with: "null")
        }
        guard stripped != text else { return nil }
        return (try? JSONValue(parsing: stripped))?.objectValue
    }

    func forEachHandle(covering topic: String, _ body: (Handle) -> Void) {
        for (pattern, state) in topics where TopicFilter.matches(pattern, topic) {
            for handle in state.handles.values { body(handle) }
        }
    }

    func subscribed(_ topic: String, since: StreamPosition?, replay: Int?, _ fields: [String: JSONValue]) {
        guard var state = topics[topic] else { return }
        // The first confirmation on a new connection is the reconnect's, even after a retry
        // (409, 429); later ones on this connection are not.
        let resubscribed = state.reconnecting
        state.reconnecting = false
        let missedPresence = state.missedPresence && state.presenceEvents
        state.missedPresence = false
        let recovered = fields["recovered"]?.boolValue
        let position = StreamPosition(fields)
        state.confirmed = true
        state.inFlight = false
        state.awaitingPage = false
        state.catchUpOwed = false
        state.everConfirmed = true
        state.retries = 0
        state.replay = nil
        state.since = nil
        let resend = state.resendWhenAnswered
        state.resendWhenAnswered = false
        let waiters = resend ? [:] : state.waiters
        if !resend { state.waiters = [:] }
        if let position {
            let asked: StreamPositions.Asked = since.map { .since($0, recovered: recovered ?? false) } ?? replay.map { .replay($0) } ?? .live
            state.positions.subscribed(topic, at: position, asked: asked)
        }
        let lateBehind = state.lateSince.filter { late in
            guard let current = state.positions[topic] else { return true }  // no history to recover from
            return late.epoch != current.epoch || late.offset < current.offset
        }
        state.lateSince = []
        topics[topic] = state
        for waiter in waiters.values { waiter.resume() }
        if missedPresence {
            // Events sent while the client was away are lost: the same signal as the node's.
            let resync = PresenceEvent(topic: topic, kind: .resync, member: nil, timestamp: PresenceEvent.now())
            for handle in state.handles.values { handle.presence.yield(resync) }
        }
        emit(.subscribed(topic: topic, resubscribed: resubscribed, recovered: since == nil ? nil : recovered, position: position))
        // A node without history for the topic (or an old one) answers a `since` without
        // `recovered`: what was missed is not coming either.
        if let since, recovered != true { emit(.recoveryFailed(topic: topic, since: since)) }
        for late in lateBehind { emit(.recoveryFailed(topic: topic, since: late)) }
        if resend { subscribeAgain(topic) }
    }

    /// After a token renewed late (past `auth_expired`): the node delivered nothing in between.
    /// Each confirmed subscription of a topic with a position asks for what came after it (a
    /// `subscribe` with `since`, without presence fields: the membership stays as it is); what
    /// the node no longer has is a ``ClientEvent/recoveryFailed(topic:since:)``, as after a
    /// reconnect. Its live messages wait meanwhile (`awaitingPage`): the node sends them after
    /// the page.
    func catchUp(on connection: WebSocketConnection) {
        for (topic, state) in topics.sorted(by: { $0.key < $1.key })
        where state.confirmed && !state.inFlight && !TopicFilter.isPattern(topic) {
            guard let position = state.positions[topic] else { continue }
            sendCatchUp(topic, since: position, attempt: 0, on: connection)
        }
    }

    func sendCatchUp(_ topic: String, since position: StreamPosition, attempt: Int, on connection: WebSocketConnection) {
        let id = newId()
        topics[topic]?.inFlight = true
        topics[topic]?.awaitingPage = true
        awaited[id] = .catchUp(topic: topic, since: position, attempt: attempt, timer: timer(for: id))
        let since: JSONValue = ["offset": .integer(Int64(position.offset)), "epoch": .string(position.epoch)]
        send(["type": "subscribe", "topic": .string(topic), "since": since, "id": .integer(Int64(id))], on: connection)
    }

    /// A catch-up the node refused or left unanswered: what was published during the expiry
    /// will not come, which the application hears as ``ClientEvent/recoveryFailed(topic:since:)``;
    /// the subscription goes on live. Never ends the subscription: it was fine before.
    func catchUpFailed(_ topic: String, since: StreamPosition) {
        guard var state = topics[topic] else { return }
        state.inFlight = false
        state.awaitingPage = false
        let resend = state.resendWhenAnswered
        state.resendWhenAnswered = false
        topics[topic] = state
        emit(.recoveryFailed(topic: topic, since: since))
        if resend { subscribeAgain(topic) }
    }

    /// The node refused or ended a subscription: every subscriber of it ends.
    func endTopic(_ topic: String, with error: ChorusError) {
        guard let state = topics.removeValue(forKey: topic) else { return }
        keepPosition(of: topic, state)
        state.retry?.cancel()
        dropAwaitedSubscribes(of: topic)
        for waiter in state.waiters.values { waiter.resume(throwing: error) }
        for handle in state.handles.values { handle.finish() }
        if state.everConfirmed { emit(.subscriptionEnded(topic: topic, error: error)) }
    }
}
