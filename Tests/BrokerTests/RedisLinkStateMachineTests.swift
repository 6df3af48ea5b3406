import Testing

@testable import Broker

/// The failover state machine of one Redis server link, without sockets or threads.
@Suite("Redis link state machine")
struct RedisLinkStateMachineTests {
    typealias Machine = RedisLinkStateMachine

    /// A machine taken to `connected` (subscriber ready, then publisher connected).
    static func connected() -> Machine {
        var machine = Machine()
        _ = machine.subscriberConnecting()
        _ = machine.subscriberReady()
        _ = machine.publisherConnecting()
        _ = machine.publisherConnected()
        return machine
    }

    static func transition(_ actions: [Machine.Action]) -> Machine.Transition? {
        for case .report(let transition) in actions { return transition }
        return nil
    }

    @Test("a fresh link is connecting, delivers locally, and wants no publisher before the subscriber is ready")
    func fresh() {
        var machine = Machine()
        #expect(machine.phase == .connecting)
        #expect(!machine.publishesThroughRedis)
        #expect(machine.subscriberConnecting() == [])
        #expect(!machine.publisherWanted)
    }

    @Test("a failed Sentinel look-up keeps the error and changes nothing else, connecting or in fallback; none once stopping")
    func masterLookUpFailed() {
        var machine = Machine()
        #expect(machine.masterLookUpFailed("no master") == [])
        #expect(machine.phase == .connecting && machine.lastError == "no master" && machine.errors == 1)
        machine = Self.connected()
        _ = machine.subscriberFailed("gone")
        #expect(machine.masterLookUpFailed("still no master") == [])
        #expect(machine.phase == .fallback && machine.lastError == "still no master" && machine.errors == 2)
        _ = machine.stop()
        #expect(machine.masterLookUpFailed("late") == [])
        #expect(machine.lastError == "still no master")
    }

    @Test("the readiness marker asks for the publisher; the publisher connecting makes the link connected")
    func startUp() {
        var machine = Machine()
        _ = machine.subscriberConnecting()
        #expect(machine.subscriberReady() == [.connectPublisher])
        #expect(machine.publisherWanted)
        #expect(machine.publisherConnecting() == [])
        #expect(!machine.publisherWanted)
        let actions = machine.publisherConnected()
        #expect(actions == [.report(.init(from: .connecting, to: .connected, error: nil, count: 1))])
        #expect(machine.phase == .connected)
        #expect(machine.publishesThroughRedis)
    }

    @Test("a marker answered twice, or without a connection attempt, changes nothing")
    func staleReady() {
        var machine = Self.connected()
        #expect(machine.subscriberReady() == [])
        #expect(machine == Self.connected())
    }

    @Test("the subscriber failing falls back at once, hands the pending messages to local delivery, and keeps the publisher")
    func subscriberFails() {
        var machine = Self.connected()
        let actions = machine.subscriberFailed("read: no answer")
        #expect(actions == [.report(.init(from: .connected, to: .fallback, error: "read: no answer", count: 2)), .deliverPendingLocally])
        #expect(machine.phase == .fallback)
        #expect(machine.publisher == .up, "the publisher's session goes on")
        #expect(machine.lastError == "read: no answer")
        #expect(!machine.publishesThroughRedis)
    }

    @Test("after a subscriber failure its readiness alone reconnects the link: the publisher stayed up")
    func subscriberRecovers() {
        var machine = Self.connected()
        _ = machine.subscriberFailed("closed")
        _ = machine.subscriberConnecting()
        #expect(machine.subscriberReady() == [.report(.init(from: .fallback, to: .connected, error: nil, count: 3))])
        #expect(machine.transitions == 3)
    }

    @Test("a second failure while in fallback is not a new transition but still hands pending messages over")
    func failureInFallback() {
        var machine = Self.connected()
        _ = machine.subscriberFailed("one")
        #expect(machine.subscriberFailed("two") == [.deliverPendingLocally])
        #expect(machine.publisherFailed("three", .timeout, retryable: true) == [.deliverPendingLocally])
        #expect(machine.transitions == 2)
        #expect(machine.lastError == "three")
        #expect(machine.errors == 3, "each error counts, so that the link stamps its time")
    }

    @Test("the publisher's connection closing under a healthy link is retried at once, with no failover counted")
    func publisherClosedIsRetried() {
        var machine = Self.connected()
        #expect(machine.publisherFailed("read: Server closed the connection", .closed, retryable: true) == [.connectPublisher])
        #expect(machine.phase == .connected)
        #expect(machine.publishesThroughRedis, "publishes wait in the queue for the retry")
        #expect(machine.publisherWanted && machine.publisherRetrying)
        _ = machine.publisherConnecting()
        #expect(machine.publisherConnected() == [], "still connected: nothing to report")
        #expect(!machine.publisherRetrying)
        #expect(machine.transitions == 1)
        #expect(machine.subscriber == .up, "the subscriber's session never ended")
    }

    @Test("a failed retry falls back")
    func publisherRetryFails() {
        var machine = Self.connected()
        _ = machine.publisherFailed("closed", .closed, retryable: true)
        _ = machine.publisherConnecting()
        let actions = machine.publisherFailed("connect: Connection refused", .closed, retryable: false)
        #expect(Self.transition(actions)?.to == .fallback)
        #expect(actions.contains(.deliverPendingLocally))
        #expect(!machine.publisherRetrying)
        #expect(machine.publisherWanted, "the subscriber is up: reconnect (after the backoff)")
    }

    @Test("a late answer on the publisher falls back at once")
    func publisherTimeout() {
        var machine = Self.connected()
        let actions = machine.publisherFailed("read: no answer within the timeout", .timeout, retryable: true)
        #expect(actions == [.report(.init(from: .connected, to: .fallback, error: "read: no answer within the timeout", count: 2)), .deliverPendingLocally])
        #expect(machine.subscriber == .up, "the subscriber's session goes on")
    }

    @Test("a retry connection that fails before answering anything is not retried again at once")
    func unservedConnection() {
        var machine = Self.connected()
        let actions = machine.publisherFailed("closed", .closed, retryable: false)
        #expect(Self.transition(actions)?.to == .fallback)
    }

    @Test("a closed publisher while in fallback does not retry: it reconnects with the backoff")
    func closedInFallback() {
        var machine = Self.connected()
        _ = machine.subscriberFailed("x")
        #expect(machine.publisherFailed("closed", .closed, retryable: true) == [.deliverPendingLocally])
        #expect(!machine.publisherRetrying)
        #expect(!machine.publisherWanted, "the subscriber is down: the publisher waits for it")
    }

    @Test("the first connection failing goes from connecting to fallback")
    func firstAttemptFails() {
        var machine = Machine()
        _ = machine.subscriberConnecting()
        let actions = machine.subscriberFailed("connect: Connection refused")
        #expect(Self.transition(actions) == .init(from: .connecting, to: .fallback, error: "connect: Connection refused", count: 1))
    }

    @Test("the link waits for both sides after a fall back: subscriber then publisher")
    func bothSidesBack() {
        var machine = Self.connected()
        _ = machine.publisherFailed("late", .timeout, retryable: true)
        _ = machine.subscriberFailed("late")
        _ = machine.subscriberConnecting()
        #expect(machine.subscriberReady() == [.connectPublisher])
        #expect(machine.phase == .fallback)
        _ = machine.publisherConnecting()
        #expect(Self.transition(machine.publisherConnected())?.to == .connected)
    }

    @Test("a stopped link ignores every event")
    func stopped() {
        var machine = Self.connected()
        #expect(machine.stop() == [.closeConnections])
        #expect(machine.stop() == [])
        #expect(machine.subscriberFailed("x") == [])
        #expect(machine.publisherFailed("x", .timeout, retryable: true) == [])
        #expect(machine.subscriberConnecting() == [])
        #expect(!machine.publishesThroughRedis)
        #expect(!machine.publisherWanted)
        #expect(machine.phase == .connected && machine.transitions == 1)
    }

    // MARK: - Sentinel: the master moved

    @Test("Sentinel naming a new master falls back at once, hands the pending messages over, and reconnects both connections without the backoff")
    func masterMoved() {
        var machine = Self.connected()
        let actions = machine.masterMoved("master moved from A to B (Sentinel)")
        #expect(actions == [
            .report(.init(from: .connected, to: .fallback, error: "master moved from A to B (Sentinel)", count: 2)),
            .deliverPendingLocally, .followMaster,
        ])
        #expect(machine.subscriber == .down && machine.publisher == .down, "both connections are to the old master")
        #expect(!machine.publishesThroughRedis)
        #expect(!machine.publisherWanted, "the publisher waits for the subscriber on the new master")
    }

    @Test("after a move, the old subscriber's marker or a late report of the old publisher cannot reconnect the link")
    func oldConnectionsAfterMove() {
        var machine = Self.connected()
        _ = machine.masterMoved("moved")
        #expect(machine.subscriberReady() == [], "a marker from the old master is ignored")
        #expect(machine.publisherConnected() == [], "so is a publisher that was up before the move")
        #expect(machine.publisherFailed("moved", .closed, retryable: false) == [.deliverPendingLocally], "dropping it is no new transition")
        #expect(machine.subscriberFailed("moved") == [.deliverPendingLocally])
        #expect(machine.phase == .fallback && machine.transitions == 2)
    }

    @Test("after a move the link is connected again once the subscriber is ready on the new master and the publisher connected there")
    func reconnectAfterMove() {
        var machine = Self.connected()
        _ = machine.masterMoved("moved")
        _ = machine.subscriberConnecting()
        #expect(machine.subscriberReady() == [.connectPublisher])
        #expect(machine.phase == .fallback)
        _ = machine.publisherConnecting()
        #expect(machine.publisherConnected() == [.report(.init(from: .fallback, to: .connected, error: nil, count: 3))])
        #expect(machine.publishesThroughRedis)
    }

    @Test("a publisher still connecting when the master moves is left to report: connected to the new master it counts once the subscriber is ready")
    func publisherConnectingDuringMove() {
        var machine = Self.connected()
        _ = machine.publisherFailed("late", .timeout, retryable: true)
        _ = machine.publisherConnecting()
        _ = machine.masterMoved("moved")
        #expect(machine.publisher == .connecting)
        #expect(machine.publisherConnected() == [], "up, but the subscriber is not")
        _ = machine.subscriberConnecting()
        #expect(Self.transition(machine.subscriberReady())?.to == .connected)
    }

    @Test("a move while already in fallback is no new transition; while connecting it falls back; while stopping it is ignored")
    func masterMovedElsewhere() {
        var fallback = Self.connected()
        _ = fallback.subscriberFailed("closed")
        #expect(fallback.masterMoved("moved") == [.deliverPendingLocally, .followMaster])
        #expect(fallback.transitions == 2)

        var connecting = Machine()
        _ = connecting.subscriberConnecting()
        #expect(Self.transition(connecting.masterMoved("moved")) == .init(from: .connecting, to: .fallback, error: "moved", count: 1))

        var retrying = Self.connected()
        _ = retrying.publisherFailed("closed", .closed, retryable: true)
        _ = retrying.masterMoved("moved")
        #expect(!retrying.publisherRetrying, "no quick retry to the old master")

        var stopped = Self.connected()
        _ = stopped.stop()
        #expect(stopped.masterMoved("moved") == [])
        #expect(stopped.phase == .connected)
    }
}
