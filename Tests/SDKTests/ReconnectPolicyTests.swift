@testable import ChorusSDK
import Testing

@Suite("reconnection rules")
struct ReconnectPolicyTests {
    private func policy() -> ReconnectPolicy {
        ReconnectPolicy(minimumDelay: .milliseconds(500), maximumDelay: .seconds(20), factor: 2, stableAfter: .seconds(10))
    }

    @Test("failed attempts back off exponentially up to the cap, each delay a random fraction of it (full jitter)")
    func backoff() {
        var policy = policy()
        let start = ContinuousClock.now
        var ceilings: [Duration] = []
        for _ in 0..<8 {
            guard case .reconnect(let delay, _, _) = policy.next(after: .connectFailed, now: start, canRefreshToken: false, random: 0.5)
            else { Issue.record("expected a reconnect"); return }
            ceilings.append(delay * 2)
        }
        #expect(ceilings == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(20), .seconds(20)])
        #expect(policy.delay(attempt: 3, random: 0) == .zero)
        #expect(policy.delay(attempt: 30, random: 1) == .seconds(20))
    }

    @Test("a connection that stayed up past the stable time resets the backoff; a short one does not")
    func stableConnectionResets() {
        var policy = policy()
        let start = ContinuousClock.now
        for _ in 0..<5 { _ = policy.next(after: .connectFailed, now: start, canRefreshToken: false, random: 1) }
        policy.connected(at: start)
        #expect(policy.next(after: .closed(code: 1006), now: start + .seconds(3), canRefreshToken: false, random: 1)
            == .reconnect(after: .seconds(16), attempt: 6, refreshToken: false))
        policy.connected(at: start)
        #expect(policy.next(after: .closed(code: 1006), now: start + .seconds(10), canRefreshToken: false, random: 1)
            == .reconnect(after: .milliseconds(500), attempt: 1, refreshToken: false))
    }

    @Test("a node's drain (1001) reconnects at once, with a fresh token when there is a provider")
    func drainReconnectsAtOnce() {
        var policy = policy()
        let now = ContinuousClock.now
        for _ in 0..<4 { _ = policy.next(after: .connectFailed, now: now, canRefreshToken: true, random: 1) }
        policy.connected(at: now)
        #expect(policy.next(after: .closed(code: 1001), now: now, canRefreshToken: true, random: 1)
            == .reconnect(after: .zero, attempt: 5, refreshToken: true))
    }

    @Test("a refused token is retried once at once with a fresh token from the provider, then the client stops")
    func refusedTokenWithProvider() {
        var policy = policy()
        let now = ContinuousClock.now
        let refused = ConnectionEnding.authRefused(code: 401, message: "token expired")
        #expect(policy.next(after: refused, now: now, canRefreshToken: true, random: 1)
            == .reconnect(after: .zero, attempt: 1, refreshToken: true))
        #expect(policy.next(after: refused, now: now, canRefreshToken: true, random: 1)
            == .stop(.authenticationFailed(code: 401, message: "token expired")))
    }

    @Test("a refused token without a provider stops the client: no reconnect loop")
    func refusedTokenWithoutProvider() {
        var policy = policy()
        #expect(policy.next(after: .authRefused(code: 401, message: "bad signature"), now: .now, canRefreshToken: false, random: 1)
            == .stop(.authenticationFailed(code: 401, message: "bad signature")))
    }

    @Test("after a successful connection a refused token gets its one retry again")
    func retryAgainAfterSuccess() {
        var policy = policy()
        let now = ContinuousClock.now
        let refused = ConnectionEnding.authRefused(code: 401, message: "expired")
        _ = policy.next(after: refused, now: now, canRefreshToken: true, random: 1)
        policy.connected(at: now)
        _ = policy.next(after: .closed(code: 1006), now: now, canRefreshToken: true, random: 1)
        #expect(policy.next(after: refused, now: now, canRefreshToken: true, random: 1)
            == .reconnect(after: .zero, attempt: 2, refreshToken: true))
    }

    @Test("a close with 4001 counts as a refused token")
    func authCloseCode() {
        let code: UInt16 = 4001
        var policy = policy()
        policy.connected(at: .now)
        #expect(policy.next(after: .closed(code: code), now: .now, canRefreshToken: false, random: 1)
            == .stop(.authenticationFailed(code: Int(code), message: "connection closed with \(code)")))
    }
}
