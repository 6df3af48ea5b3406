import NIOCore

@testable import Broker
@testable import Node

/// Target `redis`: what a Redis server (or anyone who can write to it) sends a node, through the
/// reply parser (``RedisReplyParser``, hiredis' reader) to the code that reads the replies.
///
/// Input: one byte seeds the split points, one byte chooses the subscriber's patterns (low four
/// bits, from `chat.*`, `a.**`, `**.typing`, `news.**.x`) and the member list's byte budget
/// (high four bits: 0 none, else 40 bytes each), the rest is the RESP stream. Invariants:
/// - (a) the stream read whole, in pieces of random sizes, and (when short) byte by byte gives
///   the same replies and the same protocol error after the same replies; an error is sticky
///   (asking again repeats it);
/// - (b) every reply, written again as RESP by the small encoder here, parses back to itself,
///   alone and with no error;
/// - (c) each consumer, given each reply, returns or throws and never traps: the history page
///   (``RedisHistory/page(_:)``, its fields and each message as ``EnvelopeCodec`` decodes the
///   entry), the publish script's outcomes (``RedisHistory/outcomes(_:count:)``: 1 stored, 0
///   duplicate, -1 refused with Redis' error, as the triples say), the rewind check, the
///   Sentinel replies (`get-master-addr-by-name`, `ROLE`, `+switch-master`);
/// - (d) a presence page that parses (``RedisPresenceStore/page(_:)``) lists exactly the members
///   whose document is a JSON object, in order, with the reply's count and `more`; its members
///   written by ``PresenceFrames/writeMembers(_:to:budget:)`` are valid JSON by the node's parser
///   (unless a document nests so deep that the array takes it past ``JSONParser/maxDepth``):
///   an array of those documents with `connections` set, within the budget after the first;
/// - (e) the subscription reader (``RedisSubscriptionReader``), fed every reply in order,
///   delivers an envelope only from a `message` or `pmessage` push on a channel under the
///   prefix whose key is the envelope's (``RedisChannels/key(for:)``), from a `pmessage` only a
///   topic one of its patterns matches, a gap announcement only as a gap, at most one per push,
///   and throws only for an error reply. A history page is read for a topic the page cannot
///   see, so its messages are checked as envelopes only (see docs/fuzzing.md).
///
/// Not fed: a stream that declares an array of more than ``maxElements`` elements. hiredis
/// allocates the element pointers when it reads the header (`*2147483647` is 16 GiB), which
/// libFuzzer reports as out-of-memory; more elements than that cannot arrive in an input.
enum RedisTarget {
    struct Outcome: Equatable {
        var replies: [RedisReply] = []
        var error: String?
    }

    static let maxElements = 1 << 16
    static let channels = RedisChannels(prefix: "pubsub:", serverCount: 1)
    static let patternChoices = ["chat.*", "a.**", "**.typing", "news.**.x"].map { try! TopicPattern($0) }
    static let sentinelMaster = "mymaster"

    static func run(_ input: [UInt8]) {
        var input = FuzzInput(input)
        var random = SplitMix(state: UInt64(input.byte()))
        let choices = input.byte()
        let stream = input.rest()
        guard !declaresHugeArray(stream) else { return }
        let patterns = patternChoices.indices.filter { choices & (1 << $0) != 0 }.map { patternChoices[$0] }
        let budget = choices >> 4 == 0 ? Int.max : Int(choices >> 4) * 40

        // (a) every way of splitting the stream gives the same replies and the same error.
        let whole = read([stream])
        let chunks = random.pieces(of: stream)
        let pieces = read(chunks)
        guard pieces == whole else {
            fuzzFailure(.redis, "split into \(chunks.map(\.count)) gives \(pieces), whole gives \(whole)")
        }
        if stream.count <= 1024 {
            let bytewise = read(stream.map { [$0] })
            guard bytewise == whole else { fuzzFailure(.redis, "byte by byte gives \(bytewise), whole gives \(whole)") }
        }

        for reply in whole.replies {
            // (b) written again, it reads as itself.
            var encoded: [UInt8] = []
            encode(reply, into: &encoded)
            let again = read([encoded])
            guard again == Outcome(replies: [reply]) else {
                fuzzFailure(.redis, "\(reply) encoded as \(String(decoding: encoded, as: UTF8.self).debugDescription) reads as \(again)")
            }
            // (c), (d)
            checkHistory(reply)
            checkPublishOutcomes(reply)
            checkSentinel(reply)
            checkPresence(reply, budget: budget)
        }
        // (e)
        checkSubscription(whole.replies, patterns: patterns)
    }

    /// The adapter to the code under test: feeds `chunks` as successive reads and takes every
    /// complete reply after each, as ``RedisReplyHandler`` does, until a protocol error.
    static func read(_ chunks: [[UInt8]]) -> Outcome {
        let parser = RedisReplyParser()
        var outcome = Outcome()
        for chunk in chunks {
            do throws(RedisConnectionError) {
                try parser.feed(ByteBuffer(bytes: chunk))
                while let reply = try parser.next() { outcome.replies.append(reply) }
            } catch {
                outcome.error = error.description
                // Sticky: the same error again, never a reply.
                let again: String
                do throws(RedisConnectionError) {
                    again = try parser.next().map { "a reply (\($0))" } ?? "nil"
                } catch {
                    again = error.description
                }
                guard again == outcome.error else { fuzzFailure(.redis, "after \(error), reading again gave \(again)") }
                return outcome
            }
        }
        return outcome
    }

    /// RESP2, as Redis writes it; a null (`$-1` or `*-1`) as `$-1`.
    static func encode(_ reply: RedisReply, into out: inout [UInt8]) {
        func line(_ type: String, _ text: String) {
            out.append(contentsOf: type.utf8)
            out.append(contentsOf: text.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        switch reply {
        case .status(let text): line("+", text)
        case .error(let text): line("-", text)
        case .integer(let value): line(":", String(value))
        case .bulk(let bytes):
            line("$", String(bytes.count))
            out.append(contentsOf: bytes)
            out.append(contentsOf: "\r\n".utf8)
        case .null: line("$", "-1")
        case .array(let elements):
            line("*", String(elements.count))
            for element in elements { encode(element, into: &out) }
        }
    }

    /// Whether some `*` in `stream` is followed by a count above ``maxElements`` (also inside
    /// bulk payloads, where it is data: such an input is merely not fed).
    static func declaresHugeArray(_ stream: [UInt8]) -> Bool {
        var index = 0
        while index < stream.count {
            defer { index += 1 }
            guard stream[index] == UInt8(ascii: "*") else { continue }
            var value = 0
            var next = index + 1
            while next < stream.count, stream[next] >= UInt8(ascii: "0"), stream[next] <= UInt8(ascii: "9") {
                value = value * 10 + Int(stream[next] - UInt8(ascii: "0"))
                if value > maxElements { return true }
                next += 1
            }
        }
        return false
    }

    // MARK: - Consumers

    static func checkHistory(_ reply: RedisReply) {
        if let rewind = try? RedisHistory.rewindOutcome(reply, server: "fuzz") {
            switch reply {
            case .integer(let reset) where rewind.reset == reset && rewind.denied == nil: break
            case .error(let message) where rewind.reset == 0 && rewind.denied == message: break
            default: fuzzFailure(.redis, "the rewind check read \(reply) as \(rewind)")
            }
        }
        checkPage(reply)
    }

    static func checkPage(_ reply: RedisReply) {
        guard let page = try? RedisHistory.page(reply) else { return }
        guard case .array(let parts) = reply, parts.count >= 4, let epoch = parts[0].string, case .integer(let offset) = parts[1],
            case .integer(let oldest) = parts[2], case .integer(let truncated) = parts[3]
        else { fuzzFailure(.redis, "a history page from \(reply), which is not the read script's reply") }
        guard page.position == HistoryPosition(offset: offset, epoch: epoch), page.oldestHeld == (oldest > 0 ? oldest : nil),
            page.truncated == (truncated == 1), !page.nodeOnly, page.messages.count == parts.count - 4
        else { fuzzFailure(.redis, "\(reply) read as the page \(page)") }
        for (message, part) in zip(page.messages, parts.dropFirst(4)) {
            guard case .bulk(let bytes) = part, let envelope = try? EnvelopeCodec.decode(bytes), envelope == message else {
                fuzzFailure(.redis, "the page of \(reply) holds \(message), not the envelope \(part)")
            }
        }
    }

    static func checkPublishOutcomes(_ reply: RedisReply) {
        guard case .array(let parts) = reply else {
            if let outcomes = RedisHistory.outcomes(reply, count: 0) { fuzzFailure(.redis, "outcomes \(outcomes) from \(reply)") }
            return
        }
        for count in Set([parts.count / 3, 0, 1]) {
            guard let outcomes = RedisHistory.outcomes(reply, count: count) else { continue }
            guard outcomes.count == count, parts.count == 3 * count else {
                fuzzFailure(.redis, "\(outcomes.count) outcomes for \(count) messages from \(reply)")
            }
            for (index, outcome) in outcomes.enumerated() {
                guard case .integer(let stored) = parts[3 * index], case .integer(let offset) = parts[3 * index + 1],
                    let text = parts[3 * index + 2].string
                else { fuzzFailure(.redis, "outcome \(outcome) from the triple at \(3 * index) of \(reply)") }
                let expected =
                    stored < 0
                    ? PublishOutcome.refused(text)
                    : PublishOutcome(position: HistoryPosition(offset: offset, epoch: text), duplicate: stored == 0)
                guard outcome == expected else {
                    fuzzFailure(.redis, "message \(index) of \(reply) read as \(outcome), expected \(expected)")
                }
            }
        }
    }

    static func checkSentinel(_ reply: RedisReply) {
        if let (host, port) = RedisSentinelDiscovery.address(from: reply) {
            guard case .array(let parts) = reply, parts.count == 2, parts[0].string == host, parts[1].string.flatMap({ Int($0) }) == port,
                (1...65_535).contains(port)
            else { fuzzFailure(.redis, "the master address \(host):\(port) from \(reply)") }
        }
        let role = RedisSentinelDiscovery.role(from: reply)
        let url = RedisURL(host: "127.0.0.1")
        do throws(RedisConnectionError) {
            try RedisSentinelDiscovery.requireMaster(reply, at: url)
            guard role == "master" else { fuzzFailure(.redis, "\(reply) passed as a master, role \(role ?? "none")") }
        } catch {
            guard role != "master" else { fuzzFailure(.redis, "\(reply) has role master, yet: \(error)") }
        }
        switch reply {
        case .error(let message):
            _ = RedisSentinelDiscovery.meansWrongServer(message)
            _ = RedisPublisherSession.deniesCommand(message)
        case .array(let parts) where parts.count == 3 && parts[0].string == "message":
            guard let payload = parts[2].string,
                let (host, port) = RedisSentinelDiscovery.switchedMaster(payload, name: sentinelMaster)
            else { return }
            let fields = payload.split(separator: " ")
            guard fields.count == 5, fields[0] == sentinelMaster, fields[3] == host, (1...65_535).contains(port) else {
                fuzzFailure(.redis, "+switch-master \(payload.debugDescription) read as \(host):\(port)")
            }
        default:
            break
        }
    }

    static func checkPresence(_ reply: RedisReply, budget: Int) {
        guard let page = try? RedisPresenceStore.page(reply) else { return }
        guard case .array(let parts) = reply, parts.count == 5, case .integer(let count) = parts[0], case .array(let users) = parts[1],
            case .array(let documents) = parts[2], case .array(let counts) = parts[3], case .integer(let more) = parts[4],
            documents.count == users.count, counts.count == users.count
        else { fuzzFailure(.redis, "a presence page from \(reply), which is not the page script's reply") }
        // Exactly the members whose document is a JSON object, in order.
        var expected: [PresenceMember] = []
        for index in users.indices {
            guard let user = users[index].string, case .bulk(let bytes) = documents[index],
                (try? RawJSONObject(parsing: bytes)) != nil, let document = try? RawJSON(validating: bytes)
            else { continue }
            expected.append(PresenceMember(userId: user, member: document, connections: counts[index].string.flatMap { Int($0) } ?? 0))
        }
        guard page.members == expected, page.count == count, page.more == (more == 1) else {
            fuzzFailure(.redis, "\(reply) read as the page \(page), expected members \(expected)")
        }
        for member in page.members where (try? RawJSONObject(parsing: member.member.bytes)) == nil {
            fuzzFailure(.redis, "the member \(member) of \(reply) is not a JSON object")
        }

        var json = JSONWriter()
        let written = PresenceFrames.writeMembers(page.members, to: &json, budget: budget)
        guard written <= page.members.count, written >= min(1, page.members.count),
            budget != .max || written == page.members.count, written < 2 || json.bytes.count <= budget
        else { fuzzFailure(.redis, "\(written) of \(page.members.count) members written in \(json.bytes.count) bytes, budget \(budget)") }
        let listed = page.members.prefix(written)
        guard !listed.contains(where: { $0.member.nestingDepth >= JSONParser.maxDepth }) else { return }
        let text = String(decoding: json.bytes, as: UTF8.self)
        guard case .array(let elements)? = try? JSONValue(parsing: json.bytes), elements.count == written else {
            fuzzFailure(.redis, "the members of \(reply) are written as \(text.debugDescription), not an array of \(written)")
        }
        for (element, member) in zip(elements, listed) {
            guard case .object(var fields)? = try? JSONValue(parsing: member.member.bytes) else {
                fuzzFailure(.redis, "the document \(member.member) is not an object")
            }
            fields["connections"] = .number(JSONNumber(member.connections))
            guard element == .object(fields) else {
                fuzzFailure(.redis, "\(member) is written as \(element) in \(text.debugDescription)")
            }
        }
    }

    static func checkSubscription(_ replies: [RedisReply], patterns: [TopicPattern]) {
        var index = SubscriptionIndex<TopicPattern>()
        for pattern in patterns { index.insert(pattern, pattern) }
        var reader = RedisSubscriptionReader(channels: channels, patterns: index)
        for reply in replies {
            do throws(RedisConnectionError) {
                try reader.handle(reply)
            } catch {
                guard case .error = reply else { fuzzFailure(.redis, "the subscriber failed on \(reply): \(error)") }
                return  // the connection fails
            }
            let outcome = reader.takeOutcome()
            let delivered = outcome.envelopes + outcome.gaps
            guard delivered.count + outcome.malformed <= 1 else {
                fuzzFailure(.redis, "one push \(reply) gave \(delivered.count) envelopes and \(outcome.malformed) malformed")
            }
            guard outcome.envelopes.allSatisfy({ $0.kind != .gap }), outcome.gaps.allSatisfy({ $0.kind == .gap }) else {
                fuzzFailure(.redis, "a gap announcement and a message confused: \(outcome.envelopes), gaps \(outcome.gaps)")
            }
            guard let envelope = delivered.first else { continue }
            guard case .array(let items) = reply, case .bulk(let kind)? = items.first else {
                fuzzFailure(.redis, "\(envelope) delivered from \(reply), which is no push")
            }
            let isPattern = kind.elementsEqual("pmessage".utf8)
            guard isPattern ? items.count == 4 : (kind.elementsEqual("message".utf8) && items.count == 3),
                case .bulk(let channelBytes) = items[isPattern ? 2 : 1]
            else { fuzzFailure(.redis, "\(envelope) delivered from \(reply), which is no message push") }
            let channel = String(decoding: channelBytes, as: UTF8.self)
            guard channel.hasPrefix(channels.prefix), channels.channel(forKey: channels.key(for: envelope)) == channel else {
                fuzzFailure(.redis, "\(envelope) delivered from channel \(channel.debugDescription)")
            }
            if isPattern {
                guard envelope.userId == nil, let topic = envelope.topic, patterns.contains(where: { $0.matches(topic) }) else {
                    fuzzFailure(.redis, "\(envelope) delivered from a pmessage on \(channel.debugDescription), patterns \(patterns)")
                }
            }
        }
    }
}
