import Broker
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /api/presence/{topic}` and `GET /api/users/{id}/presence` (see docs/presence.md).
///
/// Both answer the application (`API_KEY`) and any token that may subscribe to the topic
/// (`presence.user.<id>` for a user's online state: the user, or a token whose grants cover it).
/// While the shared store cannot be reached, the topic's members are this node's own, marked
/// `"scope":"node"`.
struct PresenceRoutes {
    let node: NodeContext

    func register(on router: Router<NodeRequestContext>) {
        router.get("/api/presence/:topic") { request, context in
            await members(request, topicName: context.parameters.get("topic") ?? "")
        }
        router.get("/api/users/:user/presence") { request, context in
            await online(request, userId: context.parameters.get("user") ?? "")
        }
    }

    /// Nil when the caller may read `topic`'s presence, else the error to answer.
    private func denial(_ request: Request, topic: Topic) -> Response? {
        let caller: Caller
        do {
            caller = try Caller.identify(request, node: node, allowAPIKey: true)
        } catch {
            return error.response
        }
        if case .user(let user) = caller, let denial = TopicAccess.subscribeDenial(TopicPattern(topic), user: user) {
            return APIError(403, denial).response
        }
        return nil
    }

    private func members(_ request: Request, topicName: String) async -> Response {
        let topic: Topic
        do {
            topic = try Topic(topicName)
        } catch {
            return APIError(400, "illegal topic: \(error) (presence needs a concrete topic)").response
        }
        if let denial = denial(request, topic: topic) { return denial }
        let query = request.uri.queryParameters
        let countOnly = ["true", "1"].contains(query["countOnly"].map(String.init) ?? "")
        let after = query["after"].map(String.init)
        var json = JSONWriter()
        json.raw("{\"topic\":")
        json.string(topic.name)
        /// The page's members (sorted by user id), as many as fit about 1 MiB.
        func list(_ page: PresencePage) {
            json.raw(",\"members\":")
            if PresenceFrames.writeMembers(of: page, to: &json, budget: PageRequest.pageBytes) { json.raw(",\"truncated\":true") }
        }
        do {
            if countOnly {
                json.raw(",\"count\":\(try await node.presence.store.count(of: topic))")
            } else {
                let page = try await node.presence.store.members(
                    of: topic, after: after, limit: PresencePage.maxMembers, maxBytes: PageRequest.pageBytes)
                list(page)
                json.raw(",\"count\":\(page.count)")
            }
        } catch {
            let page = node.presence.localPage(of: topic, after: after)
            if !countOnly { list(page) }
            json.raw(",\"count\":\(page.count),\"scope\":\"node\"")
        }
        json.raw("}")
        return .json(bytes: json.bytes)
    }

    private func online(_ request: Request, userId: String) async -> Response {
        if let problem = UserID.problem(userId) { return APIError(400, "user id '\(EchoedText.cut(userId))' \(problem)").response }
        guard let topic = PresenceService.userTopic(userId) else { return APIError(400, "invalid user id").response }
        if let denial = denial(request, topic: topic) { return denial }
        var json = JSONWriter()
        json.raw("{\"userId\":")
        json.string(userId)
        do {
            let online = try await node.presence.store.count(of: topic) > 0
            json.raw(",\"online\":\(online),\"lastSeenAt\":")
            if online {
                json.string(Timestamp.string(Date()))
            } else if let seen = try await node.presence.store.lastLeft(topic: topic) {
                json.string(Timestamp.string(seen))
            } else {
                json.raw("null")
            }
        } catch {
            return node.outages.error("presence store", reason: error).response
        }
        json.raw("}")
        return .json(bytes: json.bytes)
    }
}
