@testable import ChorusSDK
import Testing

@Suite("which topics a subscription covers")
struct TopicFilterTests {
    @Test(
        "patterns match by the node's rules",
        arguments: [
            ("chat.lobby", "chat.lobby", true),
            ("chat.*", "chat.lobby", true),
            ("chat.*", "chat.lobby.typing", false),
            ("chat.*", "chat", false),
            ("chat.**", "chat.lobby", true),
            ("chat.**", "chat.lobby.typing", true),
            ("chat.**", "chat", false),
            ("**.typing", "chat.lobby.typing", true),
            ("a.**.z", "a.b.c.z", true),
            ("a.**.z", "a.z", false),
            ("*.lobby", "chat.lobby", true),
            ("chat.lobby", "chat.lobby2", false),
        ])
    func matches(pattern: String, topic: String, expected: Bool) {
        #expect(TopicFilter.matches(pattern, topic) == expected)
    }

    @Test("only wildcard segments make a pattern")
    func isPattern() {
        #expect(TopicFilter.isPattern("chat.*"))
        #expect(TopicFilter.isPattern("**"))
        #expect(!TopicFilter.isPattern("chat.lobby"))
        #expect(!TopicFilter.isPattern("chat.a*b"))
    }
}
