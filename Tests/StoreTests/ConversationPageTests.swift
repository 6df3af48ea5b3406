import Store
import Testing

@Suite("ConversationPage: filtering and cutting a page")
struct ConversationPageTests {
    private static func summary(_ topic: String) -> ConversationSummary {
        ConversationSummary(scope: .topic(topic), lastMessage: nil, unreadCount: 0, lastRead: nil, readers: [])
    }

    @Test("conversations a token may not read leave with their cursors: a cut page continues after its last shown one")
    func filterKeepsCursors() {
        var page = ConversationPage(
            conversations: ["hidden.1", "shown.1", "hidden.2", "shown.2", "shown.3"].map(Self.summary),
            nextCursor: "c5", cursors: ["c1", "c2", "c3", "c4", "c5"])
        page.filter { $0.scope != .topic("hidden.1") && $0.scope != .topic("hidden.2") }
        #expect(page.conversations.map(\.scope) == [.topic("shown.1"), .topic("shown.2"), .topic("shown.3")])
        // Cut after two (the answer's byte bound): the next page starts after shown.2, not
        // after hidden.1, which would list shown.1 and shown.2 again.
        #expect(page.prefix(2).nextCursor == "c4")
        #expect(page.nextCursor == "c5")
    }
}
