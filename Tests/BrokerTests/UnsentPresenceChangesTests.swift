import Testing

@testable import Broker

/// Which presence keys a renewal must resend (``UnsentPresenceChanges``).
@Suite("Presence changes not yet in Redis")
struct UnsentPresenceChangesTests {
    @Test("a leave set aside while Redis was unreachable stays to resend when a join queued before it succeeds (the member stayed listed for good)")
    func earlierSuccessKeepsLaterChange() {
        var unsent = UnsentPresenceChanges<String>()
        let join = unsent.sending("alice")
        unsent.setAside("alice", announcing: false)  // the leave, server marked unreachable
        unsent.written("alice", change: join)
        #expect(Array(unsent.keys) == ["alice"])
    }

    @Test("a change that failed is resent; the resend's success clears it, and a change of data stays announced until then")
    func failedThenResent() {
        var unsent = UnsentPresenceChanges<String>()
        let update = unsent.sending("bob")
        unsent.failed("bob", announcing: true)
        #expect(unsent.announcing("bob"))
        let resend = unsent.sending("bob")
        unsent.written("bob", change: update)  // a late answer of the first: not the latest
        #expect(Array(unsent.keys) == ["bob"])
        unsent.written("bob", change: resend)
        #expect(unsent.keys.isEmpty && !unsent.announcing("bob"))
    }

    @Test("the success of a key's latest change clears it even after earlier failures; other keys are untouched")
    func latestSuccessClears() {
        var unsent = UnsentPresenceChanges<String>()
        unsent.setAside("carol", announcing: false)
        unsent.setAside("dave", announcing: false)
        let latest = unsent.sending("carol")
        unsent.written("carol", change: latest)
        #expect(Array(unsent.keys) == ["dave"])
    }
}
