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

    @Test("at most N distinct topics a minute: the N+1st waits until the oldest leaves the window; a topic used again stays in it; another user has a window of its own")
    func slidingWindow() {
        let budget = HistoryTopicBudget(perMinute: 3)
        let start = ContinuousClock.now
        for name in ["a", "b", "c"] { #expect(budget.admit("u", topic: Self.topic(name), now: start) == nil) }
        #expect(budget.admit("u", topic: Self.topic("d"), now: start) == .seconds(60))
        #expect(budget.admit("v", topic: Self.topic("d"), now: start) == nil, "another user")
        #expect(budget.admit("u", topic: Self.topic("a"), now: start + .seconds(30)) == nil, "a topic of the window")
        // A minute on, b and c have left the window; a, used 30 s ago, has not.
        #expect(budget.admit("u", topic: Self.topic("d"), now: start + .seconds(60)) == nil)
        #expect(budget.admit("u", topic: Self.topic("e"), now: start + .seconds(60)) == nil)
        #expect(budget.admit("u", topic: Self.topic("f"), now: start + .seconds(60)) == .seconds(30))
    }

    @Test("a topic used again leaves the window a minute after its last use, even when a newer topic came in between")
    func reusedTopicLeaves() {
        let budget = HistoryTopicBudget(perMinute: 2)
        let start = ContinuousClock.now
        #expect(budget.admit("u", topic: Self.topic("a"), now: start) == nil)
        #expect(budget.admit("u", topic: Self.topic("a"), now: start + .seconds(1)) == nil)
        #expect(budget.admit("u", topic: Self.topic("b"), now: start + .seconds(2)) == nil)
        // At 61 s, a (last used at 1 s) has left; b (2 s) has not: one place free.
        #expect(budget.admit("u", topic: Self.topic("c"), now: start + .seconds(61)) == nil)
        #expect(budget.admit("u", topic: Self.topic("d"), now: start + .seconds(61)) == .seconds(1))
    }

    @Test("past the topics remembered over all users, the least recently active user is forgotten, never the one asking")
    func boundedOverUsers() {
        let budget = HistoryTopicBudget(perMinute: 3, maxEntries: 4)
        let start = ContinuousClock.now
        for name in ["a", "b", "c"] { #expect(budget.admit("old", topic: Self.topic(name), now: start) == nil) }
        #expect(budget.admit("old", topic: Self.topic("d"), now: start) != nil)
        for name in ["a", "b", "c"] { #expect(budget.admit("new", topic: Self.topic(name), now: start) == nil) }
        // "old" was forgotten to make room: its window starts empty again.
        #expect(budget.admit("old", topic: Self.topic("d"), now: start) == nil)
    }

    @Test("a user moving between as many rooms as the budget, again and again, is never refused")
    func rotation() {
        let budget = HistoryTopicBudget(perMinute: 20)
        let start = ContinuousClock.now
        for round in 0..<100 {
            for room in 0..<20 {
                #expect(budget.admit("u", topic: Self.topic("room\(room)"), now: start + .milliseconds(round * 100 + room)) == nil)
            }
        }
    }

    @Test("0 turns the limit off")
    func off() {
        let budget = HistoryTopicBudget(perMinute: 0)
        for n in 0..<1000 { #expect(budget.admit("u", topic: Self.topic("t\(n)")) == nil) }
    }

    @Test("a node refuses a user's publish or subscribe to a new topic with history past HISTORY_USER_TOPICS_PER_MINUTE with 429 and availableIn (Retry-After over HTTP), over WebSocket and HTTP; its recent topics, topics without history and the API key go on")
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
            #expect((details["availableIn"] as? Int).map { $0 > 0 && $0 <= 60_000 } == true, "\(details)")
            #expect(details["retryAfter"] == nil, "not a message-rate refusal, which the SDKs answer by pausing every request")
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
