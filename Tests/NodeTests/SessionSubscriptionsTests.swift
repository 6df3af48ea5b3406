import Broker
import Testing

@testable import Node

@Suite("A session's subscriptions: one held inline, a set from the second")
struct SessionSubscriptionsTests {
    static func pattern(_ text: String) -> TopicPattern { try! TopicPattern(text) }

    @Test("insert, contains, count and remove through none, one and many, and back")
    func oneManyAndBack() {
        var subscriptions = SessionSubscriptions()
        let (a, b, c) = (Self.pattern("rooms.a"), Self.pattern("rooms.*"), Self.pattern("rooms.c"))
        #expect(subscriptions.count == 0 && !subscriptions.contains(a))
        let first = subscriptions.insert(a)
        let again = subscriptions.insert(a)
        #expect(first && !again, "already there")
        #expect(subscriptions.count == 1 && subscriptions.contains(a) && !subscriptions.contains(b))
        let second = subscriptions.insert(b)
        let third = subscriptions.insert(c)
        #expect(second && third)
        #expect(subscriptions.count == 3 && subscriptions.contains(b))
        #expect(Set(subscriptions) == [a, b, c])
        let removedB = subscriptions.remove(b)
        let removedBAgain = subscriptions.remove(b)
        let removedA = subscriptions.remove(a)
        #expect(removedB == b && removedBAgain == nil && removedA == a)
        #expect(subscriptions.count == 1 && Array(subscriptions) == [c])
        let notHeld = subscriptions.remove(a)
        #expect(notHeld == nil, "not the one held")
        let last = subscriptions.remove(c)
        #expect(last == c)
        #expect(subscriptions.count == 0 && Array(subscriptions).isEmpty)
    }
}
