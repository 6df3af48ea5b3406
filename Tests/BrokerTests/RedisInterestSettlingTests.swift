import Testing

@testable import Broker

/// Who waits for Redis to confirm interest changes, without sockets or threads.
@Suite("Redis interest settling")
struct RedisInterestSettlingTests {
    typealias Settling = RedisInterestSettling<String>

    @Test("with no change pending a waiter runs at once")
    func nothingPending() {
        var settling = Settling()
        #expect(settling.wait("a") == "a")
        settling.changeRequested()
        #expect(settling.confirm(through: 1) == [])
        #expect(settling.wait("b") == "b", "the change is confirmed already")
        #expect(settling.waiting == 0)
    }

    @Test("a waiter waits for the marker after every change requested before it, not for later ones")
    func waitsForEarlierChanges() {
        var settling = Settling()
        settling.changeRequested()
        settling.changeRequested()
        #expect(settling.wait("first") == nil)
        settling.changeRequested()
        #expect(settling.wait("second") == nil)
        #expect(settling.waiting == 2)

        #expect(settling.confirm(through: 1) == [], "only part of the first waiter's changes")
        #expect(settling.confirm(through: 2) == ["first"])
        #expect(settling.confirm(through: 2) == [], "an answer seen twice releases nothing more")
        #expect(settling.confirm(through: 3) == ["second"])
        #expect(settling.waiting == 0)
    }

    @Test("one marker answered for several batches releases every waiter it covers, in order")
    func oneMarkerReleasesMany() {
        var settling = Settling()
        for name in ["a", "b", "c"] {
            settling.changeRequested()
            #expect(settling.wait(name) == nil)
        }
        #expect(settling.confirm(through: 3) == ["a", "b", "c"])
    }

    @Test("an older marker answered after a newer one does not move the confirmation back")
    func confirmationOnlyGrows() {
        var settling = Settling()
        settling.changeRequested()
        settling.changeRequested()
        _ = settling.confirm(through: 2)
        #expect(settling.confirm(through: 1) == [])
        #expect(settling.confirmed == 2)
        #expect(settling.wait("a") == "a")
    }

    @Test("a fall back or a stop releases every waiter, and later waiters still wait for their changes")
    func releaseAll() {
        var settling = Settling()
        settling.changeRequested()
        #expect(settling.wait("a") == nil)
        #expect(settling.wait("b") == nil)
        #expect(settling.releaseAll() == ["a", "b"])
        #expect(settling.waiting == 0)
        #expect(settling.releaseAll() == [])

        // After a reconnect the new connection's opening marker confirms what it subscribed.
        #expect(settling.wait("c") == nil)
        #expect(settling.confirm(through: 1) == ["c"])
    }
}
