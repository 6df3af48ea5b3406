import Broker
import Testing

@testable import Node

@Suite("History settings (HISTORY_SIZE, HISTORY_TTL, HISTORY_TOPICS, HISTORY_MAX_BYTES)")
struct HistoryConfigurationTests {
    static let base = ["JWT_SECRET": "0123456789abcdef0123"]

    @Test("defaults: 100 messages per topic, 300000 ms, every topic, 64 MiB in all")
    func defaults() throws {
        let history = try NodeConfiguration(environment: Self.base).history
        #expect(history.size == 100 && history.ttlMilliseconds == 300_000)
        #expect(history.covers(try Topic("any.topic")))
        #expect(history.maxBytes == 64 << 20)
        let larger = try NodeConfiguration(environment: Self.base.merging(["HISTORY_MAX_BYTES": "1073741824"]) { $1 }).history
        #expect(larger.maxBytes == 1 << 30)
    }

    @Test("patterns choose the topics; size 0 turns history off")
    func patterns() throws {
        let history = try NodeConfiguration(
            environment: Self.base.merging(["HISTORY_TOPICS": "chat.**, messages.user.*", "HISTORY_TTL": "1000"]) { $1 }
        ).history
        let (chat, inbox, typing) = (try Topic("chat.lobby"), try Topic("messages.user.u1"), try Topic("typing.lobby"))
        #expect(history.covers(chat) && history.covers(inbox))
        #expect(!history.covers(typing))
        #expect(history.ttlMilliseconds == 1000)
        let off = try NodeConfiguration(environment: Self.base.merging(["HISTORY_SIZE": "0"]) { $1 }).history
        #expect(!off.isEnabled && !off.covers(chat))
    }

    @Test("bad values name their variable", arguments: [
        ("HISTORY_SIZE", "-1"), ("HISTORY_SIZE", "10001"), ("HISTORY_TTL", "0"), ("HISTORY_TTL", "soon"),
        ("HISTORY_TOPICS", "chat..x"), ("HISTORY_MAX_BYTES", "1000"), ("HISTORY_MAX_BYTES", "lots"),
    ])
    func refused(variable: String, value: String) {
        #expect {
            _ = try NodeConfiguration(environment: Self.base.merging([variable: value]) { $1 })
        } throws: { error in
            "\(error)".contains(variable)
        }
    }
}
