import Broker
import Foundation

/// Target `envelope`: the Redis envelope decoder, against an independent reading of the same
/// bytes, and the encoder against it.
///
/// Decoding arbitrary bytes must not crash. Invariants:
/// - Correctness: the decoder accepts exactly what a reference reading of the input as a
///   `JSONValue` tree (Broker's `JSONValue(parsing:)`, by the rules in `EnvelopeCodec`'s doc
///   comment) accepts, and then agrees with it field by field: `v` the number `1` written
///   exactly so; `id`, `origin` non-empty strings; `topic` absent, `null` or a valid `Topic`'s
///   name; `userId` absent, `null` or a non-empty string; one of the two present; `eventType`,
///   `messageId` absent, `null` or any string; `kind` absent, `null`, `presence`, `typing` or
///   `gap`; `data` present; `metadata` nil only when absent (`null` stays `null`); `timestamp` a
///   string `Timestamp.date` reads; `offset` absent or `null` (no offset, no epoch), else an
///   integer in `1...Int.max` written as such, with `epoch` a non-empty string. `data` and
///   `metadata` are byte for byte the input's top-level member slices (`RawJSONObject`), and
///   each parses to the tree's value of that member.
/// - Stability: whatever decodes survives encoding and decoding again unchanged, `data` and
///   `metadata` byte for byte: `decode(encode(decode(x))) == decode(x)`; a timestamp already in
///   the envelope's own form (`2025-01-31T12:00:00.132Z`) keeps its text, and encoding a second
///   time gives the same bytes.
/// - The history script's splice (`RedisHistory.publishScript`): for the decoded envelope `e`
///   without its position, `{"offset":N,"epoch":"E",` followed by `encode(e)` without its `{`
///   decodes as `decode(encode(e))` with offset N and epoch E when N is in `1...Int.max` and E
///   is non-empty, and is refused otherwise. N and E are drawn from the input's hash: offsets
///   1, `Int.max`, `Int.max + 1`, 0, -1, a random one and a huge one; epochs as the node draws
///   them (16 hex digits), short ones and the empty one (E needs no escaping: the script
///   writes it raw, and the node only ever draws hex).
///
/// One documented exception: the envelope's timestamp has milliseconds, so a finer one read
/// from Redis may move by less than a millisecond, once.
enum EnvelopeTarget {
    /// The adapter to the code under test.
    static func decode(_ bytes: [UInt8]) -> Envelope? {
        try? EnvelopeCodec.decode(bytes)
    }

    static func encode(_ envelope: Envelope) -> [UInt8] {
        EnvelopeCodec.encode(envelope)
    }

    static func run(_ bytes: [UInt8]) {
        let decoded = decode(bytes)
        checkAgainstTree(bytes, decoded)
        guard let first = decoded else { return }
        let encoded = encode(first)
        guard let second = decode(encoded) else {
            fuzzFailure(.envelope, "\(first) encodes as \(text(encoded)), which does not decode")
        }
        let sent = timestamp(in: bytes)
        let canonical = sent.map(isCanonical) ?? false
        var expected = first
        // Sub-millisecond digits may go (less than 1 ms).
        let allowed = canonical ? 0 : 0.001
        if abs(second.timestamp.timeIntervalSince(first.timestamp)) < allowed {
            expected.timestamp = second.timestamp
        }
        guard second == expected else {
            fuzzFailure(.envelope, "decoded \(first)\n re-encoded \(text(encoded))\n decodes as \(second)")
        }
        if canonical && timestamp(in: encoded) != sent {
            fuzzFailure(.envelope, "the timestamp \(sent!) is re-encoded as \(timestamp(in: encoded) ?? "nothing")")
        }
        let again = encode(second)
        guard again == encoded else {
            fuzzFailure(.envelope, "encoding is not stable: \(text(encoded)) then \(text(again))")
        }
        checkSplice(second, seed: bytes)
    }

    // MARK: Correctness against the tree

    /// What the reference reading of the tree expects: the envelope's fields, or why it refuses.
    struct Expected {
        var id = "", origin = ""
        var topic: String?, userId: String?, eventType: String?, kind: String?, messageId: String?
        var offset: Int?, epoch: String?
        var stamp = ""
    }

    /// A string field: `.absent` when missing or `null`, `.wrong` when not a string.
    enum Field {
        case absent, wrong, text(String)

        init(_ value: JSONValue?) {
            switch value {
            case nil, .null?: self = .absent
            case .string(let text)?: self = .text(text)
            default: self = .wrong
            }
        }
    }

    /// The reference: `EnvelopeCodec`'s documented rules applied to the tree; a reason on refusal.
    static func reference(_ tree: JSONValue) -> Result<Expected, Refusal> {
        guard case .object(let members) = tree else { return .failure("not an object") }
        guard case .number(let version)? = members["v"], version.text == "1" else { return .failure("v") }
        var expected = Expected()
        func required(_ name: String) -> String? {
            if case .text(let value) = Field(members[name]), !value.isEmpty { return value }
            return nil
        }
        func optional(_ name: String) -> Result<String?, Refusal> {
            switch Field(members[name]) {
            case .absent: .success(nil)
            case .wrong: .failure(Refusal("\(name) is not a string"))
            case .text(let value): .success(value)
            }
        }
        guard let id = required("id"), let origin = required("origin") else { return .failure("id or origin") }
        expected.id = id
        expected.origin = origin
        do {
            expected.topic = try optional("topic").get()
            if let topic = expected.topic, (try? Topic(topic)) == nil { return .failure("invalid topic") }
            expected.userId = try optional("userId").get()
            if expected.userId?.isEmpty == true { return .failure("empty userId") }
            guard expected.topic != nil || expected.userId != nil else { return .failure("no address") }
            expected.eventType = try optional("eventType").get()
            guard members["data"] != nil else { return .failure("no data") }
            guard let stamp = required("timestamp"), Timestamp.date(stamp) != nil else { return .failure("timestamp") }
            expected.stamp = stamp
            expected.kind = try optional("kind").get()
            if let kind = expected.kind, !["presence", "typing", "gap"].contains(kind) { return .failure("unknown kind") }
            expected.messageId = try optional("messageId").get()
        } catch {
            return .failure(error)
        }
        switch members["offset"] {
        case nil, .null?:
            break
        case .number(let number)?:
            guard let offset = Int(number.text), offset > 0 else { return .failure("offset not a positive Int") }
            guard let epoch = required("epoch") else { return .failure("offset without an epoch") }
            expected.offset = offset
            expected.epoch = epoch
        default:
            return .failure("offset not a number")
        }
        return .success(expected)
    }

    struct Refusal: Error, ExpressibleByStringLiteral {
        var reason: String
        init(_ reason: String) { self.reason = reason }
        init(stringLiteral reason: String) { self.reason = reason }
    }

    /// The decoder's verdict and fields against the reference reading of the tree, and `data`
    /// and `metadata` against the input's own member slices and the tree's values.
    static func checkAgainstTree(_ bytes: [UInt8], _ decoded: Envelope?) {
        guard let tree = try? JSONValue(parsing: bytes) else {
            if let decoded { fuzzFailure(.envelope, "decoded \(decoded) from text the tree refuses: \(text(bytes))") }
            return
        }
        let expected: Expected
        switch (reference(tree), decoded) {
        case (.failure, nil):
            return
        case (.failure(let refusal), let envelope?):
            fuzzFailure(.envelope, "decoded \(envelope), but the reference refuses (\(refusal.reason)): \(text(bytes))")
        case (.success, nil):
            fuzzFailure(.envelope, "refused (\(refusal(bytes))), but the reference accepts: \(text(bytes))")
        case (.success(let fields), _?):
            expected = fields
        }
        let envelope = decoded!
        let actual: [String?] = [
            envelope.id, envelope.origin, envelope.topic?.name, envelope.userId, envelope.eventType,
            envelope.kind?.rawValue, envelope.messageId, envelope.offset.map { String($0) }, envelope.epoch,
        ]
        let wanted: [String?] = [
            expected.id, expected.origin, expected.topic, expected.userId, expected.eventType,
            expected.kind, expected.messageId, expected.offset.map { String($0) }, expected.epoch,
        ]
        guard actual == wanted else {
            fuzzFailure(.envelope, "decoded \(envelope), the tree says \(expected): \(text(bytes))")
        }
        guard envelope.timestamp == Timestamp.date(expected.stamp) else {
            fuzzFailure(.envelope, "timestamp \(envelope.timestamp) for \(expected.stamp)")
        }
        guard let object = try? RawJSONObject(parsing: bytes) else {
            fuzzFailure(.envelope, "RawJSONObject refuses an envelope that decodes: \(text(bytes))")
        }
        for (name, value) in [("data", Optional(envelope.data)), ("metadata", envelope.metadata)] {
            let slice = object.members.first { $0.key == name }?.value
            guard value?.bytes == slice?.bytes else {
                fuzzFailure(.envelope, "\(name) is \(value.map { text($0.bytes) } ?? "nil"), the input's member \(slice.map { text($0.bytes) } ?? "absent")")
            }
            guard (value.flatMap { try? JSONValue(parsing: $0.bytes) }) == tree[name] else {
                fuzzFailure(.envelope, "\(name) \(value.map { text($0.bytes) } ?? "nil") does not parse as the tree's \(String(describing: tree[name]))")
            }
        }
    }

    // MARK: The history script's splice

    static let offsets = ["1", "9223372036854775807", "9223372036854775808", "0", "-1", "99999999999999999999999"]

    static func checkSplice(_ envelope: Envelope, seed bytes: [UInt8]) {
        var random = SplitMix(state: bytes.reduce(UInt64(bytes.count)) { $0 &* 31 &+ UInt64($1) })
        var bare = envelope
        bare.offset = nil
        bare.epoch = nil
        let encoded = encode(bare)
        guard let plain = decode(encoded) else {
            fuzzFailure(.envelope, "\(bare) encodes as \(text(encoded)), which does not decode")
        }
        let pick = random.below(offsets.count + 2)
        let offset = pick < offsets.count ? offsets[pick] : String(1 + random.next() >> (pick == offsets.count ? 1 : 40))
        let epoch: String
        switch random.below(4) {
        case 0: epoch = ""
        case 1: epoch = String(random.next() % 1000)
        default:
            let hex = String(random.next(), radix: 16)
            epoch = String(repeating: "0", count: 16 - hex.count) + hex
        }
        // As the Lua script writes it: '{"offset":' .. N .. ',"epoch":"' .. E .. '",' .. string.sub(e, 2)
        let spliced = Array("{\"offset\":\(offset),\"epoch\":\"\(epoch)\",".utf8) + encoded.dropFirst()
        let result = decode(spliced)
        if let position = Int(offset), position > 0, !epoch.isEmpty {
            var expected = plain
            expected.offset = position
            expected.epoch = epoch
            guard result == expected else {
                fuzzFailure(.envelope, "the spliced \(text(spliced)) decodes as \(String(describing: result)), expected \(expected)")
            }
        } else if let result {
            fuzzFailure(.envelope, "the spliced \(text(spliced)) (offset \(offset), epoch \"\(epoch)\") decodes as \(result)")
        }
    }

    /// Why the decoder refused `bytes`.
    static func refusal(_ bytes: [UInt8]) -> String {
        do {
            return "decoded as \(try EnvelopeCodec.decode(bytes))"
        } catch {
            return "\(error)"
        }
    }

    static func timestamp(in bytes: [UInt8]) -> String? {
        (try? JSONValue(parsing: bytes))?["timestamp"]?.stringValue
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the codec writes it.
    static func isCanonical(_ stamp: String) -> Bool {
        let digits = Array(stamp.utf8).map { $0 >= 0x30 && $0 <= 0x39 ? UInt8(ascii: "9") : $0 }
        return digits == Array("9999-99-99T99:99:99.999Z".utf8)
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
