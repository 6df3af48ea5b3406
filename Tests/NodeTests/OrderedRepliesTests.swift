import Testing

@testable import Node

@Suite("Replies in the order of their requests")
struct OrderedRepliesTests {
    @Test("a reply ready before those it follows waits for them, whichever of them is filled first")
    func order() {
        var replies = OrderedReplies()
        let first = replies.reserve()
        let second = replies.reserve()
        replies.append(.unsubscribed(topic: "c", id: nil))
        #expect(replies.takeReady().isEmpty, "the first still waits")
        replies.fill(second, with: .subscribed(topic: "b", id: nil))
        #expect(replies.takeReady().isEmpty)
        replies.fill(first, with: .subscribed(topic: "a", id: nil))
        let ready = replies.takeReady().map { String(decoding: $0.encoded(), as: UTF8.self) }
        #expect(ready.count == 3)
        #expect(ready[0].contains(#""topic":"a""#) && ready[1].contains(#""topic":"b""#) && ready[2].contains(#""unsubscribed""#))
        #expect(replies.isEmpty)
    }
}
