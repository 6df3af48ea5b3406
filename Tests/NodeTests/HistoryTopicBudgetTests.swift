import Broker
import Foundation
import Testing
import TestSupport

@testable import Node

/// How many topics with history one user may bring into use a minute (``HistoryTopicBudget``,
/// `HISTORY_USER_TOPICS_PER_MINUTE`).
@Suite("Topics with history per user and minute")
struct HistoryTopicBudgetTests {
    static func topic(_ name: String) -> Topic { try! Topic(name) }

    @Test("past the allowance a new topic waits for the refill; the user's recent topics cost nothing; another user has an allowance of its own")
    func allowance() {
        let budget = HistoryTopicBudget(perMinute: 3)
        let start = ContinuousClock.now
        for name in ["a", "b", "c"] { #expect(budget.admit("u", topic: Self.topic(name), now: start) == nil) }
        let wait = budget.admit("u", topic: Self.topic("d"), now: start)
        #expect(wait == .seconds(20), "one topic back every 20 s at 3 a minute")
        #expect(budget.admit("u", topic: Self.topic("a"), now: start) == nil, "a recent topic")
        #expect(budget.admit("v", topic: Self.topic("d"), now: start) == nil, "another user")
        #expect(budget.admit("u", topic: Self.topic("d"), now: start + .seconds(20)) == nil)
        #expect(budget.admit("u", topic: Self.topic("e"), now: start + .seconds(20)) != nil)
    }

    @Test("only the most recent topics are free: one used 17 topics ago costs again")
    func recentAreBounded() {
        let start = ContinuousClock.now
        // An allowance of 17, all used: t0 then fell out of the 16 recent topics, t16 did not.
        let busy = HistoryTopicBudget(perMinute: HistoryTopicBudget.recentPerUser + 1)
        for n in 0...HistoryTopicBudget.recentPerUser { #expect(busy.admit("u", topic: Self.topic("t\(n)"), now: start) == nil) }
        #expect(busy.admit("u", topic: Self.topic("t\(HistoryTopicBudget.recentPerUser)"), now: start) == nil)
        #expect(busy.admit("u", topic: Self.topic("t0"), now: start) != nil)
    }

    @Test("0 turns the limit off")
    func off() {
        let budget = HistoryTopicBudget(perMinute: 0)
        for n in 0..<1000 { #expect(budget.admit("u", topic: Self.topic("t\(n)")) == nil) }
    }

    @Test("a node refuses a user's publish or subscribe to a new topic with history past HISTORY_USER_TOPICS_PER_MINUTE with 429 and retryAfter, over WebSocket and HTTP; its recent topics, topics without history and the API key go on")
    func node() async throws {
        try await withNode(["HISTORY_USER_TOPICS_PER_MINUTE": "3", "HISTORY_TOPICS": "chat.**", "API_KEY": "k"]) { node in
            let client = try await node.connect(as: "flood")
            for (n, topic) in ["chat.a", "chat.b"].enumerated() {
                let reply = try await client.request(["type": "message", "topic": topic, "data": n, "id": n])
                #expect(reply["type"] as? String == "published", "\(reply)")
            }
            #expect(try await client.request(["type": "subscribe", "topic": "chat.c"])["type"] as? String == "subscribed")
            let refused = try await client.request(["type": "message", "topic": "chat.d", "data": 3, "id": 3])
            #expect(refused["type"] as? String == "error" && refused["code"] as? Int == 429, "\(refused)")
            let details = try #require(refused["details"] as? [String: Any])
            #expect(details["topic"] as? String == "chat.d")
            #expect((details["retryAfter"] as? Int).map { $0 > 0 && $0 <= 20_000 } == true, "\(details)")
            let subscribe = try await client.request(["type": "subscribe", "topic": "chat.e", "replay": 1])
            #expect(subscribe["code"] as? Int == 429, "\(subscribe)")
            #expect(try await client.request(["type": "message", "topic": "chat.a", "data": 4, "id": 4])["type"] as? String == "published")
            #expect(try await client.request(["type": "message", "topic": "news.x", "data": 5, "id": 5])["type"] as? String == "published")

            let url = "\(node.baseURL)/api/publish"
            let asUser = try await HTTP.post(
                url, json: ["topic": "chat.f", "data": 1], headers: ["Authorization": "Bearer \(node.token("flood"))"])
            #expect(asUser.status == 429 && asUser.headers["retry-after"] != nil, "\(asUser.status) \(asUser.text)")
            let history = try await HTTP.get("\(node.baseURL)/api/history/chat.g", headers: ["Authorization": "Bearer \(node.token("flood"))"])
            #expect(history.status == 429, "\(history.text)")
            #expect(try await HTTP.post(url, json: ["topic": "chat.f", "data": 1], headers: ["X-API-Key": "k"]).status == 202)
            let other = try await node.connect(as: "calm")
            #expect(try await other.request(["type": "message", "topic": "chat.f", "data": 6, "id": 6])["type"] as? String == "published")
            await client.close()
            await other.close()
        }
    }
}
