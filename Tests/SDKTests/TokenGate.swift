import Node
import Testing
import TestSupport

/// A token provider for tests: mints tokens for one user (lifetimes in turn from `lifetimes`,
/// then an hour), counts the calls, throws on the calls numbered in `failing` (as a provider
/// whose server is down), and can hold callers until ``open()`` so that a test knows the
/// client is between connections.
actor TokenGate {
    private let user: String
    private var lifetimes: [Duration]
    private let failing: Set<Int>
    private(set) var calls = 0
    private var closed = false
    private var held: [CheckedContinuation<Void, Never>] = []
    private var callWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

    struct Unavailable: Error {}

    init(user: String, lifetimes: [Duration] = [], failing: Set<Int> = []) {
        self.user = user
        self.lifetimes = lifetimes
        self.failing = failing
    }

    /// The provider to hand the client.
    nonisolated var provider: @Sendable () async throws -> String {
        { try await self.token() }
    }

    func token() async throws -> String {
        calls += 1
        let ready = callWaiters.filter { $0.count <= calls }
        callWaiters.removeAll { $0.count <= calls }
        for waiter in ready { waiter.continuation.resume() }
        if closed { await withCheckedContinuation { held.append($0) } }
        if failing.contains(calls) { throw Unavailable() }
        let ttl = lifetimes.isEmpty ? Duration.seconds(3600) : lifetimes.removeFirst()
        return TokenMinter(secret: Array(Cluster.secret.utf8)).mint(subject: user, ttl: ttl)
    }

    /// From now on callers wait until ``open()``.
    func close() { closed = true }

    func open() {
        closed = false
        let waiting = held
        held = []
        for caller in waiting { caller.resume() }
    }

    /// Returns once the provider has been called `count` times in all, or records a failure
    /// after `timeout` and returns, so a call that never comes fails the test instead of
    /// hanging it until its time limit.
    func waitForCalls(
        _ count: Int, within timeout: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        do {
            try await withDeadline(timeout, "\(count) calls of the token provider") { await self.called(count) }
        } catch {
            Issue.record(error, sourceLocation: sourceLocation)
        }
    }

    /// Returns once the provider has been called `count` times in all.
    private func called(_ count: Int) async {
        if calls >= count { return }
        await withCheckedContinuation { callWaiters.append((count, $0)) }
    }
}

/// The first element of `stream` that satisfies `predicate` (nil if it ends first).
func first<T>(in stream: AsyncStream<T>, where predicate: (T) -> Bool) async -> T? {
    for await element in stream where predicate(element) { return element }
    return nil
}

