import ChorusClient
import Foundation
@testable import Node
import Testing
import TestSupport

/// Ids a token or `/api/publish` may not use: dotted, non-ASCII, other characters, too long.
private let refusedIds = [
    "john.smith", "a.b.c", ".", "jöhn", "名前", "a b", "a*", "a/b", String(repeating: "a", count: 129),
]

/// A user id becomes the topic segment of `messages.user.<id>`, so it must be exactly one.
@Suite("User ids are single topic segments")
struct UserIDTests {

    @Test("ids made of letters, digits, '_', '-' and ':' up to the limit are accepted, UUIDs among them")
    func accepted() {
        for id in ["john", "john_smith", "u-7", "tenant:42", UUID().uuidString.lowercased(), String(repeating: "a", count: UserID.maxLength)] {
            #expect(UserID.problem(id) == nil, "\(id)")
            #expect(TopicAccess.privateTopic(of: id) != nil)
        }
    }

    @Test("dotted, empty, too long and non-ASCII ids are refused and have no private topic", arguments: refusedIds + [""])
    func refused(id: String) {
        #expect(UserID.problem(id) != nil)
        #expect(TopicAccess.privateTopic(of: id) == nil)
    }

    @Test("a token whose subject is not a valid user id is refused, naming the problem", arguments: refusedIds)
    func tokenRefused(id: String) {
        let secret = Array("unit-test-secret-0123456789".utf8)
        let verifier = try! TokenVerifier(key: .hmacSecret(secret))
        let token = TokenMinter(secret: secret).mint(subject: id, ttl: .seconds(60))
        #expect {
            try verifier.verify(token)
        } throws: { error in
            guard case .invalidSubject(id, _)? = error as? TokenError else { return false }
            return "\(error)".contains("cannot be a user id")
        }
    }

    @Test("over the WebSocket, a token for 'john.smith' gets auth_error 401, the upgrade and HTTP routes answer 401")
    func refusedEverywhere() async throws {
        try await withNode(["API_KEY": "k"]) { node in
            let client = try await node.connect()
            let reply = try await client.request(["type": "auth", "token": node.token("john.smith"), "id": 1])
            #expect(reply["type"] as? String == "auth_error")
            #expect(reply["code"] as? Int == 401)
            #expect((reply["message"] as? String)?.contains("'john.smith' cannot be a user id") == true, "\(reply)")

            do {
                _ = try await node.connect(headers: [("Authorization", "Bearer \(node.token("john.smith"))")])
                Issue.record("a token for 'john.smith' must be refused at the upgrade")
            } catch WebSocketClient.Failure.upgradeRefused(let status, let body) {
                #expect(status == 401)
                #expect(body.contains("cannot be a user id"))
            }

            let publish = try await HTTP.post(
                "\(node.baseURL)/api/publish", json: ["topic": "messages.user.john.smith", "data": 1],
                headers: ["Authorization": "Bearer \(node.token("john.smith"))"])
            #expect(publish.status == 401)
            #expect(publish.text.contains("cannot be a user id"))

            let messages = try await HTTP.get(
                "\(node.baseURL)/api/messages?topic=a", headers: ["Authorization": "Bearer \(node.token("jöhn"))"])
            #expect(messages.status == 401)
        }
    }

    @Test("POST /api/publish refuses a userId that is not one topic segment")
    func publishUserId() async throws {
        try await withNode(["API_KEY": "k"]) { node in
            for id in ["john.smith", "", "jöhn", String(repeating: "x", count: UserID.maxLength + 1)] {
                let response = try await HTTP.post(
                    "\(node.baseURL)/api/publish", json: ["userId": id, "data": 1], headers: ["X-API-Key": "k"])
                #expect(response.status == 400, "\(id)")
                #expect(response.text.contains("'userId'"))
            }
            let fine = try await HTTP.post(
                "\(node.baseURL)/api/publish", json: ["userId": "john_smith", "data": 1], headers: ["X-API-Key": "k"])
            #expect(fine.status == 202)
        }
    }
}
