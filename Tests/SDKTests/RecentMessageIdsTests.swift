import Testing

@testable import ChorusSDK

@Suite("Recent message ids of a subscription")
struct RecentMessageIdsTests {
    @Test("a repeated id on the same topic is refused, the same id on another topic is not, and the oldest is forgotten past capacity")
    func window() {
        var recent = RecentMessageIds(capacity: 3)
        let answers = [("a", "t"), ("a", "t"), ("a", "u"), ("b", "t"), ("c", "t"), ("a", "t"), ("c", "t"), ("b", "t")]
            .map { recent.insert($0.0, on: $0.1) }
        // The fourth new key (c on t) makes the window forget the first (a on t).
        #expect(answers == [true, false, true, true, true, true, false, false])
    }

    @Test("ids are compared by bytes: composed and decomposed text are two ids, as the node counts them")
    func bytes() {
        var recent = RecentMessageIds()
        let answers = ["caf\u{E9}", "cafe\u{301}", "caf\u{E9}"].map { recent.insert($0, on: "t") }
        #expect(answers == [true, true, false])
    }
}
