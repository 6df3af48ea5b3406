import ChorusClient
import Foundation
import Testing
import TestSupport

@Suite("History and recovery on one node (memory adapter)")
struct HistoryTests {
    static let environment = ["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "100000"]

    @Test("messages on a topic with history carry offsets 1, 2, 3 and an epoch; subscribed states the position")
    func offsetsAndPosition() async throws {
        try await withNode(Self.environment) { node in
            let alice = try await node.connect(as: "alice")
            let first = try await alice.subscribeWithHistory("chat.lobby")
            #expect(first["offset"] as? Int == 0)
            let epoch = try #require(first["epoch"] as? String)
            #expect(first["recovered"] == nil, "recovered answers a since only")
            let bob = try await node.connect(as: "bob")
            for seq in 1...3 {
                let ack = try await bob.publishAcknowledged(topic: "chat.lobby", data: ["seq": seq])
                #expect(ack["offset"] as? Int == seq)
                #expect(ack["epoch"] as? String == epoch)
                #expect(ack["duplicate"] as? Bool == false)
            }
            let messages = try await alice.messages(of: "chat.lobby", through: 3)
            #expect(messages.map { $0["offset"] as? Int } == [1, 2, 3])
            #expect(messages.allSatisfy { $0["epoch"] as? String == epoch })
            let again = try await bob.subscribeWithHistory("chat.lobby")
            #expect(HistoryMark(again) == HistoryMark(offset: 3, epoch: epoch))
        }
    }

    @Test("a topic subscribed while a pattern of the same connection receives it: the messages published while the node reads its position all arrive, once each (they were held and dropped as before the subscription)")
    func subscribeUnderAPattern() async throws {
        try await withNode(Self.environment) { node in
            let alice = try await node.connect(as: "alice")
            try await alice.subscribe("rooms.*")
            let bob = try await node.connect(as: "bob")
            for seq in 1...10 { try await bob.publish(topic: "rooms.p", data: ["seq": seq]) }
            try await alice.send(json: ["type": "subscribe", "topic": "rooms.p", "id": "p"])
            for seq in 11...20 { try await bob.publish(topic: "rooms.p", data: ["seq": seq]) }
            var seqs: [Int] = []
            while seqs.last != 20 {
                let frame = try await alice.nextJSON()
                if frame["type"] as? String == "message", let seq = (frame["data"] as? [String: Any])?["seq"] as? Int { seqs.append(seq) }
            }
            #expect(seqs == Array(1...20), "every message once, in order")
        }
    }

    @Test("one client publishing large messages to many topics cannot grow the history past HISTORY_MAX_BYTES")
    func historyBytesBounded() async throws {
        let limit = 2 << 20
        try await withNode(Self.environment.merging(["HISTORY_MAX_BYTES": "\(limit)", "API_KEY": "k"]) { $1 }) { node in
            let flooder = try await node.connect(as: "flooder")
            let large = String(repeating: "x", count: 256 << 10)
            // 40 topics of 256 KiB: 10 MiB offered to a 2 MiB history.
            for n in 1...40 {
                _ = try await flooder.publishAcknowledged(topic: "flood.\(n)", data: ["pad": large])
            }
            let history = try #require(try await HTTP.get("\(node.baseURL)/stats").json()["history"] as? [String: Any])
            let bytes = try #require(history["bytes"] as? Int)
            #expect(bytes <= limit && bytes > limit / 2, "held \(bytes) bytes")
            #expect(history["maxBytes"] as? Int == limit)
            // The newest topic is still recoverable; the oldest went (a new epoch, nothing held).
            let reader = try await node.connect(as: "reader")
            let newest = try await HTTP.get("\(node.baseURL)/api/history/flood.40", headers: ["X-API-Key": "k"]).json()
            #expect((newest["messages"] as? [Any])?.count == 1)
            let oldest = try await reader.subscribeWithHistory("flood.1")
            #expect(oldest["offset"] as? Int == 0, "evicted: its history starts again")
        }
    }

    @Test("GET /api/history pages stop at about 1 MiB of messages and say truncated; paging on reaches the rest")
    func historyPageBytes() async throws {
        try await withNode(Self.environment.merging(["API_KEY": "k"]) { $1 }) { node in
            let publisher = try await node.connect(as: "pub")
            let large = String(repeating: "y", count: 300 << 10)
            for seq in 1...6 {
                _ = try await publisher.publishAcknowledged(topic: "big.room", data: ["seq": seq, "pad": large])
            }
            func page(_ query: String) async throws -> (offsets: [Int], truncated: Bool) {
                let json = try await HTTP.get("\(node.baseURL)/api/history/big.room?\(query)", headers: ["X-API-Key": "k"]).json()
                let offsets = (json["messages"] as? [[String: Any]] ?? []).compactMap { $0["offset"] as? Int }
                return (offsets, json["truncated"] as? Bool == true)
            }
            let newest = try await page("limit=100")
            #expect(newest.offsets == [4, 5, 6] && newest.truncated, "the newest that fit in 1 MiB")
            let oldest = try await page("after=0")
            #expect(oldest.offsets == [1, 2, 3] && oldest.truncated, "the oldest that fit")
            let rest = try await page("after=3")
            #expect(rest.offsets == [4, 5, 6] && !rest.truncated)
        }
    }

    @Test("a subscriber that comes back with since gets exactly what it missed, then live")
    func sinceRecovers() async throws {
        try await withNode(Self.environment) { node in
            let publisher = try await node.connect(as: "pub")
            let phone = try await node.connect(as: "alice")
            _ = try await phone.subscribeWithHistory("chat.lobby")
            _ = try await publisher.publishAcknowledged(topic: "chat.lobby", data: ["seq": 1])
            let seen = try #require(try await phone.messages(of: "chat.lobby", through: 1).last.flatMap(HistoryMark.init))
            await phone.close()
            for seq in 2...5 { _ = try await publisher.publishAcknowledged(topic: "chat.lobby", data: ["seq": seq]) }

            let back = try await node.connect(as: "alice")
            let reply = try await back.subscribeWithHistory("chat.lobby", since: seen)
            #expect(reply["recovered"] as? Bool == true)
            #expect(reply["offset"] as? Int == 5)
            _ = try await publisher.publishAcknowledged(topic: "chat.lobby", data: ["seq": 6])
            let messages = try await back.messages(of: "chat.lobby", through: 6)
            #expect(messages.map { $0["offset"] as? Int } == [2, 3, 4, 5, 6])
            #expect(messages.map { ($0["data"] as? [String: Any])?["seq"] as? Int } == [2, 3, 4, 5, 6])
        }
    }

    @Test("recovery is refused honestly: another epoch, an offset ahead, or one trimmed past HISTORY_SIZE")
    func honestFailure() async throws {
        try await withNode(Self.environment.merging(["HISTORY_SIZE": "3"]) { $1 }) { node in
            let publisher = try await node.connect(as: "pub")
            var last: HistoryMark?
            for seq in 1...5 {
                last = HistoryMark(try await publisher.publishAcknowledged(topic: "chat.t", data: ["seq": seq]))
            }
            var current = try #require(last)
            for since in [
                HistoryMark(offset: 2, epoch: "another-epoch"), HistoryMark(offset: 99, epoch: current.epoch),
                HistoryMark(offset: 1, epoch: current.epoch),
            ] {
                let client = try await node.connect(as: "alice")
                let reply = try await client.subscribeWithHistory("chat.t", since: since)
                #expect(reply["recovered"] as? Bool == false, "since \(since)")
                #expect(HistoryMark(reply) == current, "the current position, to start from")
                _ = try await publisher.publishAcknowledged(topic: "chat.t", data: ["marker": true])
                let next = try await client.next(type: "message")
                #expect(next["offset"] as? Int == current.offset + 1, "nothing from history, only live")
                last = HistoryMark(next)
                current = try #require(last)
                await client.close()
            }
            // Three markers later (offsets 6...8), the last three are held: a since of 5 recovers.
            let edge = try await node.connect(as: "alice")
            let kept = try #require(last)
            let reply = try await edge.subscribeWithHistory("chat.t", since: HistoryMark(offset: kept.offset - 3, epoch: kept.epoch))
            #expect(reply["recovered"] as? Bool == true, "the last HISTORY_SIZE messages are still held")
            #expect(try await edge.messages(of: "chat.t", through: kept.offset).count == 3)
        }
    }

    @Test("replay sends the last N messages (at most HISTORY_SIZE), then live")
    func replay() async throws {
        try await withNode(Self.environment.merging(["HISTORY_SIZE": "4"]) { $1 }) { node in
            let publisher = try await node.connect(as: "pub")
            for seq in 1...6 { _ = try await publisher.publishAcknowledged(topic: "chat.r", data: ["seq": seq]) }
            let two = try await node.connect(as: "a")
            #expect(try await two.subscribeWithHistory("chat.r", replay: 2)["offset"] as? Int == 6)
            #expect(try await two.messages(of: "chat.r", through: 6).map { $0["offset"] as? Int } == [5, 6])
            let all = try await node.connect(as: "b")
            _ = try await all.subscribeWithHistory("chat.r", replay: 50)
            _ = try await publisher.publishAcknowledged(topic: "chat.r", data: ["seq": 7])
            #expect(try await all.messages(of: "chat.r", through: 7).map { $0["offset"] as? Int } == [3, 4, 5, 6, 7])
        }
    }

    @Test("replay and since read at most 3/4 of WEBSOCKET_MAX_PENDING_BYTES: the newest that fit, or recovered false; the client stays connected")
    func recoveryBytesBounded() async throws {
        // 1 MiB pending: a subscribe reads at most 768 KiB of history, two of these messages.
        try await withNode(Self.environment.merging(["WEBSOCKET_MAX_PENDING_BYTES": "\(1 << 20)"]) { $1 }) { node in
            let publisher = try await node.connect(as: "pub")
            let large = String(repeating: "z", count: 300 << 10)
            var last: HistoryMark?
            for seq in 1...6 {
                last = HistoryMark(try await publisher.publishAcknowledged(topic: "big.r", data: ["seq": seq, "pad": large]))
            }
            let current = try #require(last)

            let replaying = try await node.connect(as: "a")
            #expect(try await replaying.subscribeWithHistory("big.r", replay: 100)["offset"] as? Int == 6)
            #expect(try await replaying.messages(of: "big.r", through: 6).map { $0["offset"] as? Int } == [5, 6], "the newest that fit")

            let behind = try await node.connect(as: "b")
            let reply = try await behind.subscribeWithHistory("big.r", since: HistoryMark(offset: 0, epoch: current.epoch))
            #expect(reply["recovered"] as? Bool == false, "1.8 MB missed: caught up over /api/history instead")
            #expect(HistoryMark(reply) == current)
            let near = try await node.connect(as: "c")
            let recent = try await near.subscribeWithHistory("big.r", since: HistoryMark(offset: 4, epoch: current.epoch))
            #expect(recent["recovered"] as? Bool == true)

            _ = try await publisher.publishAcknowledged(topic: "big.r", data: ["seq": 7])
            #expect(try await replaying.next(type: "message")["offset"] as? Int == 7, "still connected, live")
            #expect(try await behind.next(type: "message")["offset"] as? Int == 7, "nothing from history, only live")
            #expect(try await near.messages(of: "big.r", through: 7).map { $0["offset"] as? Int } == [5, 6, 7])
        }
    }

    @Test("since or replay on a pattern, or on a topic without history, is a 400 naming the field")
    func refusedRequests() async throws {
        try await withNode(Self.environment.merging(["HISTORY_TOPICS": "chat.**"]) { $1 }) { node in
            let client = try await node.connect(as: "a")
            for (request, field) in [
                (["type": "subscribe", "topic": "chat.*", "since": ["offset": 1, "epoch": "e"]] as [String: Any], "since"),
                (["type": "subscribe", "topic": "chat.**", "replay": 5], "replay"),
                (["type": "subscribe", "topic": "other.topic", "replay": 5], "replay"),
                (["type": "subscribe", "topic": "chat.a", "replay": -1], "replay"),
                (["type": "subscribe", "topic": "chat.a", "since": ["offset": 1]], "since"),
                // Past 2^53 - 1: the node's arithmetic must not overflow (Int.max crashed it).
                (["type": "subscribe", "topic": "chat.a", "since": ["offset": Int.max, "epoch": "e"]], "since"),
                (["type": "subscribe", "topic": "chat.a", "since": ["offset": 1 << 53, "epoch": "e"]], "since"),
            ] {
                let reply = try await client.request(request)
                #expect(reply["type"] as? String == "error")
                #expect(reply["code"] as? Int == 400)
                #expect((reply["details"] as? [String: Any])?["field"] as? String == field, "\(request)")
                #expect((reply["message"] as? String)?.contains(field) == true)
            }
            let plain = try await client.request(["type": "subscribe", "topic": "other.topic"])
            #expect(plain["type"] as? String == "subscribed")
            #expect(plain["offset"] == nil, "a topic without history has no position")
            let published = try await client.publishAcknowledged(topic: "chat.a", data: ["n": 1])
            let epoch = try #require(published["epoch"] as? String)
            let farthest = try await client.request([
                "type": "subscribe", "topic": "chat.a", "since": ["offset": (1 << 53) - 1, "epoch": epoch],
            ])
            #expect(farthest["type"] as? String == "subscribed", "\(farthest)")
            #expect(farthest["recovered"] as? Bool == false, "an offset ahead of the topic recovers nothing")
        }
    }

    @Test("a repeated messageId is acknowledged as a duplicate and delivered once")
    func idempotentPublish() async throws {
        try await withNode(Self.environment) { node in
            let alice = try await node.connect(as: "alice")
            _ = try await alice.subscribeWithHistory("chat.idem")
            let bob = try await node.connect(as: "bob")
            let first = try await bob.publishAcknowledged(topic: "chat.idem", data: ["n": 1], messageId: "m-1")
            let retry = try await bob.publishAcknowledged(topic: "chat.idem", data: ["n": 1], messageId: "m-1")
            #expect(first["duplicate"] as? Bool == false)
            #expect(retry["duplicate"] as? Bool == true)
            #expect(retry["offset"] as? Int == first["offset"] as? Int)
            #expect(retry["messageId"] as? String == "m-1")
            let other = try await bob.publishAcknowledged(topic: "chat.idem", data: ["n": 2], messageId: "m-2")
            let messages = try await alice.messages(of: "chat.idem", through: try #require(other["offset"] as? Int))
            #expect(messages.map { $0["messageId"] as? String } == ["m-1", "m-2"], "the retry was not delivered")
        }
    }

    @Test("replay race: subscribers recovering from random offsets while publishing get the exact sequence",
          arguments: [1, 2])
    func replayRace(round: Int) async throws {
        try await withNode(Self.environment.merging(["HISTORY_SIZE": "1000"]) { $1 }) { node in
            let publisher = try await node.connect(as: "pub")
            let report = try await ReplayRace.run(
                topic: "race.r\(round)", count: 400, recoverers: 12, publisher: publisher,
                connect: { n in try await node.connect(as: "sub-\(n)") })
            #expect(report.recoveries.count == 12)
        }
    }

    @Test("GET /api/history/{topic} pages through the history with limit, before and after")
    func httpHistory() async throws {
        try await withNode(Self.environment) { node in
            let publisher = try await node.connect(as: "pub")
            for seq in 1...5 { _ = try await publisher.publishAcknowledged(topic: "chat.h", data: ["seq": seq]) }
            let auth = ["Authorization": "Bearer \(node.token("reader"))"]
            func offsets(_ query: String) async throws -> (Int, [Int?]) {
                let response = try await HTTP.get("\(node.baseURL)/api/history/chat.h\(query)", headers: auth)
                #expect(response.status == 200, "\(query): \(response.text)")
                let body = try response.json()
                #expect(body["topic"] as? String == "chat.h")
                #expect(body["epoch"] as? String != nil)
                let messages = body["messages"] as? [[String: Any]] ?? []
                #expect(messages.allSatisfy { $0["type"] as? String == "message" })
                return (body["offset"] as? Int ?? -1, messages.map { $0["offset"] as? Int })
            }
            #expect(try await offsets("") == (5, [1, 2, 3, 4, 5]))
            #expect(try await offsets("?limit=2") == (5, [4, 5]))
            #expect(try await offsets("?after=3") == (5, [4, 5]))
            #expect(try await offsets("?before=3") == (5, [1, 2]))
            #expect(try await offsets("?after=1&before=5&limit=2") == (5, [2, 3]))
            #expect(try await HTTP.get("\(node.baseURL)/api/history/chat.h").status == 401)
            #expect(try await HTTP.get("\(node.baseURL)/api/history/chat.*", headers: auth).status == 400)
            #expect(try await HTTP.get("\(node.baseURL)/api/history/chat.h?limit=x", headers: auth).status == 400)
            #expect(try await offsets("?after=9007199254740991") == (5, []))
            for past in ["after=9007199254740992", "after=9223372036854775807", "before=9223372036854775807"] {
                #expect(try await HTTP.get("\(node.baseURL)/api/history/chat.h?\(past)", headers: auth).status == 400, "\(past)")
            }
            let other = ["Authorization": "Bearer \(node.token("mallory"))"]
            #expect(try await HTTP.get("\(node.baseURL)/api/history/messages.user.reader", headers: other).status == 403)
        }
    }

    /// A node whose connections may handle `bytesPerSecond` (and messages of that size), with
    /// room for pages of several messages waiting.
    private static func budgeted(bytesPerSecond: Int) -> [String: String] {
        environment.merging([
            "API_KEY": "k", "WEBSOCKET_MAX_MESSAGE_SIZE": "\(bytesPerSecond)", "WEBSOCKET_MAX_BYTES_PER_SECOND": "\(bytesPerSecond)",
            "WEBSOCKET_MAX_PENDING_BYTES": "4194304",
        ]) { $1 }
    }

    /// Publishes `{"n": n, "pad": <pad bytes>}` to `topic` over the HTTP API.
    private static func postPadded(_ node: TestNode, _ topic: String, _ n: Int, pad: Int) async throws {
        let posted = try await HTTP.post(
            "\(node.baseURL)/api/publish", json: ["topic": topic, "data": ["n": n, "pad": String(repeating: "x", count: pad)]],
            headers: ["X-API-Key": "k"])
        #expect(posted.status == 202)
    }

    @Test("a history page counts against WEBSOCKET_MAX_BYTES_PER_SECOND: a replay of 240 KB against 64 KB a second pauses reading its client, which still gets all of it")
    func pageCharged() async throws {
        try await withNode(Self.budgeted(bytesPerSecond: 65536)) { node in
            for n in 1...8 { try await Self.postPadded(node, "big.replay", n, pad: 30_000) }
            let reader = try await node.connect(as: "reader")
            try await reader.send(json: ["type": "subscribe", "topic": "big.replay", "replay": 8, "id": 1])
            _ = try await reader.next(type: "subscribed")
            var received: [Int] = []
            for _ in 1...8 {
                let message = try await reader.next(type: "message")
                received.append((message["data"] as? [String: Any])?["n"] as? Int ?? -1)
            }
            #expect(received == Array(1...8))
            // Answered once the page's debt is repaid.
            try await reader.send(json: ["type": "ping"])
            _ = try await reader.next(type: "pong", timeout: .seconds(30))
            let stats = try await HTTP.get("\(node.baseURL)/stats", headers: ["X-API-Key": "k"]).json()
            let connections = try #require(stats["connections"] as? [String: Any])
            #expect(connections["readsPaused"] as? Int ?? 0 >= 1, "\(connections)")
        }
    }

    @Test("GET /api/history with after behind what is still held says gap (and oldest): a client filling a gap knows to reload")
    func httpHistoryGap() async throws {
        try await withNode(["HISTORY_SIZE": "3"]) { node in
            let publisher = try await node.connect(as: "pub")
            for seq in 1...5 { _ = try await publisher.publishAcknowledged(topic: "chat.g", data: ["seq": seq]) }
            func page(_ query: String) async throws -> (offsets: [Int?], oldest: Int?, gap: Bool?) {
                let body = try await HTTP.get("\(node.baseURL)/api/history/chat.g?\(query)", headers: ["Authorization": "Bearer \(node.token("r"))"]).json()
                let messages = body["messages"] as? [[String: Any]] ?? []
                return (messages.map { $0["offset"] as? Int }, body["oldest"] as? Int, body["gap"] as? Bool)
            }
            let trimmed = try await page("after=1")
            #expect(trimmed.offsets == [3, 4, 5] && trimmed.oldest == 3 && trimmed.gap == true, "offset 2 is gone")
            let whole = try await page("after=2")
            #expect(whole.offsets == [3, 4, 5] && whole.gap == nil)
            let current = try await page("after=5")
            #expect(current.offsets == [] && current.gap == nil)
            #expect(try await page("").gap == nil, "no after: nothing to miss")
        }
    }

    @Test("typing indicators and presence events on a topic with history are not stored: offsets count messages only")
    func signalsStayOutOfHistory() async throws {
        try await withNode(Self.environment) { node in
            let watcher = try await node.connect(as: "watcher")
            try await watcher.send(json: [
                "type": "subscribe", "topic": "rooms.h", "presenceEvents": true, "id": "watch",
            ])
            _ = try await watcher.next(type: "subscribed")
            let typist = try await node.connect(as: "typist")
            try await typist.send(json: ["type": "subscribe", "topic": "rooms.h", "presence": true, "id": "join"])
            _ = try await typist.next(type: "subscribed")
            try await typist.typing("rooms.h", "start")
            #expect(try await watcher.next(type: "typing")["state"] as? String == "start")
            let ack = try await typist.publishAcknowledged(topic: "rooms.h", data: ["text": "hello"])
            #expect(ack["offset"] as? Int == 1, "the join and the typing indicator took no offset")
            let late = try await node.connect(as: "late")
            _ = try await late.subscribeWithHistory("rooms.h", replay: 10)
            let replayed = try await late.messages(of: "rooms.h", through: 1)
            #expect(replayed.map { $0["type"] as? String } == ["message"])
        }
    }

    @Test("POST /api/publish takes a messageId too: a retried request is a duplicate, delivered and stored once")
    func idempotentHTTPPublish() async throws {
        try await withNode(Self.environment) { node in
            let subscriber = try await node.connect(as: "alice")
            _ = try await subscriber.subscribeWithHistory("chat.http")
            let auth = ["Authorization": "Bearer \(node.token("bob"))"]
            let body: [String: Any] = ["topic": "chat.http", "data": ["n": 1], "messageId": "retry-1"]
            let first = try await HTTP.post("\(node.baseURL)/api/publish", json: body, headers: auth)
            let again = try await HTTP.post("\(node.baseURL)/api/publish", json: body, headers: auth)
            #expect(first.status == 202 && again.status == 202)
            let (sent, retried) = (try first.json(), try again.json())
            #expect(sent["offset"] as? Int == 1 && sent["duplicate"] as? Bool == false)
            #expect(retried["offset"] as? Int == 1 && retried["duplicate"] as? Bool == true)
            let next = try await node.connect(as: "carol").publishAcknowledged(topic: "chat.http", data: ["n": 2])
            let received = try await subscriber.messages(of: "chat.http", through: try #require(next["offset"] as? Int))
            #expect(received.map { $0["messageId"] as? String } == ["retry-1", nil])
            let empty: [String: Any] = ["topic": "chat.http", "data": 1, "messageId": ""]
            #expect(try await HTTP.post("\(node.baseURL)/api/publish", json: empty, headers: auth).status == 400)
        }
    }
}
