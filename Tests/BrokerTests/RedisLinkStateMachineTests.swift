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
}
