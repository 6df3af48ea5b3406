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
/// `"scope":"node"`. A user and a client network have a few reads in flight at most
/// (``StoreReadLimit``; the `API_KEY` has no limit); more are answered 429 at once.
struct PresenceRoutes {
    let node: NodeContext

    let reads = StoreReadLimit(of: "presence")

    /// What the shared store answered `GET /api/presence/{topic}`.
    private enum StoreAnswer: Sendable {
        case page(PresencePage)
        case count(Int)
    }

    func register(on router: Router<NodeRequestContext>) {
        router.get("/api/presence/:topic") { request, context in
            try await members(request, context, topicName: context.parameters.get("topic") ?? "")
        }
        router.get("/api/users/:user/presence") { request, context in
            try await online(request, context, userId: context.parameters.get("user") ?? "")
        }
    }

    /// The caller, when it may read `topic`'s presence; else throws the error to answer.
    private func caller(_ request: Request, topic: Topic) throws(APIError) -> Caller {
        let caller = try Caller.identify(request, node: node, allowAPIKey: true)
        if case .user(let user) = caller, let denial = TopicAccess.subscribeDenial(TopicPattern(topic), user: user) {
            throw APIError(403, denial)
        }
        return caller
    }

    private func members(_ request: Request, _ context: NodeRequestContext, topicName: String) async throws -> Response {
        let topic: Topic
        do {
            topic = try Topic(topicName)
        } catch {
            throw APIError(400, "illegal topic: \(error) (presence needs a concrete topic)")
        }
        let caller = try caller(request, topic: topic)
        let query = request.uri.queryParameters
        let countOnly = ["true", "1"].contains(query["countOnly"].map(String.init) ?? "")
        let after = query["after"].map(String.init)
        let store = node.presence.store
        // The shared store's answer; nil when it gave none (then this node's own members). A
        // refusal of the read limit is the caller's answer.
        let answer: StoreAnswer?
        do {
            answer = try await reads.run(for: caller, from: node.clientNetwork(request, context)) {
                if countOnly { return .count(try await store.count(of: topic)) }
                return .page(try await store.members(
                    of: topic, after: after, limit: PresencePage.maxMembers, maxBytes: PageRequest.pageBytes))
            }
        } catch let refusal as APIError {
            throw refusal
        } catch {
            answer = nil
        }
        var json = JSONWriter()
        json.raw("{\"topic\":")
        json.string(topic.name)
        /// The page's members (sorted by user id), as many as fit about 1 MiB.
        func list(_ page: PresencePage) {
            json.raw(",\"members\":")
            if PresenceFrames.writeMembers(of: page, to: &json, budget: PageRequest.pageBytes) { json.raw(",\"truncated\":true") }
        }
        switch answer {
        case .page(let page)?:
            list(page)
            json.raw(",\"count\":\(page.count)")
        case .count(let count)?:
            json.raw(",\"count\":\(count)")
        case nil:
            let page = node.presence.localPage(of: topic, after: after)
            if !countOnly { list(page) }
            json.raw(",\"count\":\(page.count),\"scope\":\"node\"")
        }
        json.raw("}")
        return .json(bytes: json.bytes)
    }

    private func online(_ request: Request, _ context: NodeRequestContext, userId: String) async throws -> Response {
        if let problem = UserID.problem(userId) { throw APIError(400, "user id '\(EchoedText.cut(userId))' \(problem)") }
        guard let topic = PresenceService.userTopic(userId) else { throw APIError(400, "invalid user id") }
        let caller = try caller(request, topic: topic)
        let store = node.presence.store
        // Online now, or when last seen (nil: never, or forgotten).
        let (online, lastLeft): (Bool, Date?)
        do {
            (online, lastLeft) = try await reads.run(for: caller, from: node.clientNetwork(request, context)) {
                if try await store.count(of: topic) > 0 { return (true, nil) }
                return (false, try await store.lastLeft(topic: topic))
            }
        } catch let refusal as APIError {
            throw refusal
        } catch {
            throw node.outages.error("presence store", reason: error)
        }
        var json = JSONWriter()
        json.raw("{\"userId\":")
        json.string(userId)
        json.raw(",\"online\":\(online),\"lastSeenAt\":")
        if let seen = online ? Date() : lastLeft { json.string(Timestamp.string(seen)) } else { json.raw("null") }
        json.raw("}")
        return .json(bytes: json.bytes)
    }
}
