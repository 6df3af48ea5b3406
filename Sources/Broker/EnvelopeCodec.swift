import Foundation

/// The envelope as it travels through Redis: one JSON object per message.
///
/// ```json
/// {"v":1,"id":"node-1:42","origin":"node-1","topic":"chat.room-1","userId":"u-7",
///  "eventType":"message","data":{"text":"hi"},"metadata":{"k":"v"},
///  "timestamp":"2025-01-31T12:00:00.123Z"}
/// ```
///
/// - `v` (number, required): format version, `1`.
/// - `id` (string, required): unique message id; `origin` (string, required): `NODE_ID` of
///   the node that accepted the message.
/// - `topic` (string, optional): a valid ``Topic``; `userId` (string, optional): the user the
///   message is addressed to. At least one of the two is present.
/// - `kind` (string, optional): `presence`, `typing` or `gap` for a node's own signals (see
///   ``Envelope/Kind``); absent for a published message.
/// - `eventType` (string, optional), `data` (any JSON, required), `metadata` (any JSON, optional):
///   `data` and `metadata` are the publisher's bytes (``RawJSON``), written in unchanged and
///   sliced out unchanged, so numbers, escapes and member order arrive as they were sent.
/// - `timestamp` (string, required): ISO 8601 UTC with milliseconds.
///
/// - `offset` (integer) and `epoch` (string), optional, always together and first: the message's
///   position in its topic's history (written by the history script on Redis, see ``RedisHistory``).
/// - `messageId` (string, optional): the publisher's idempotency key.
///
/// Unknown fields are ignored, so later versions may add fields without a version bump.
/// Encoding runs once per message on the publishing node and decoding once per message on each
/// receiving node, never per subscriber. Decoding checks the whole text by ``JSONParser``'s
/// rules (a payload with a duplicate key or invalid UTF-8 is malformed) but builds no tree.
public enum EnvelopeCodec {
    /// The `v` this node writes and reads.
    public static let version = 1

    /// The JSON bytes of `envelope`, fields in the documented order, `data` and `metadata` as
    /// they are.
    public static func encode(_ envelope: Envelope) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 + envelope.data.bytes.count + (envelope.metadata?.bytes.count ?? 0))
        // `offset` and `epoch` come first: the history script on Redis splices them in right
        // after the opening brace of an envelope encoded without them.
        writer.raw("{")
        if let offset = envelope.offset, let epoch = envelope.epoch {
            writer.raw("\"offset\":\(offset),\"epoch\":")
            writer.string(epoch)
            writer.raw(",")
        }
        writer.raw("\"v\":\(version),\"id\":")
        writer.string(envelope.id)
        if let messageId = envelope.messageId {
            writer.raw(",\"messageId\":")
            writer.string(messageId)
        }
        writer.raw(",\"origin\":")
        writer.string(envelope.origin)
        if let topic = envelope.topic {
            writer.raw(",\"topic\":")
            writer.string(topic.name)
        }
        if let userId = envelope.userId {
            writer.raw(",\"userId\":")
            writer.string(userId)
        }
        if let eventType = envelope.eventType {
            writer.raw(",\"eventType\":")
            writer.string(eventType)
        }
        if let kind = envelope.kind {
            writer.raw(",\"kind\":")
            writer.string(kind.rawValue)
        }
        writer.raw(",\"data\":")
        writer.raw(envelope.data)
        if let metadata = envelope.metadata {
            writer.raw(",\"metadata\":")
            writer.raw(metadata)
        }
        writer.raw(",\"timestamp\":")
        writer.string(Timestamp.string(envelope.timestamp))
        writer.raw("}")
        return writer.bytes
    }

    /// Decodes and validates one envelope.
    public static func decode(_ bytes: some Collection<UInt8>) throws(EnvelopeDecodingError) -> Envelope {
        let fields: RawJSONObject
        do {
            fields = try RawJSONObject(parsing: bytes)
        } catch {
            if error.problem == .notAnObject { throw .notAnEnvelope("not a JSON object") }
            throw .notAnEnvelope("not JSON (\(error))")
        }

        guard let versionField = fields["v"] else { throw .missingField("v") }
        guard versionField.isNumber else { throw .notAnEnvelope("field 'v' is not a number") }
        guard versionField.bytes.elementsEqual(String(Self.version).utf8) else {
            throw .unsupportedVersion(JSONNumber(unchecked: versionField.description).intValue ?? -1)
        }

        func text(_ name: String, required: Bool) throws(EnvelopeDecodingError) -> String? {
            guard let field = fields[name], !field.isNull else {
                if required { throw .missingField(name) }
                return nil
            }
            guard let value = field.stringValue else { throw .notAnEnvelope("field '\(name)' is not a string") }
            if value.isEmpty, required { throw .missingField(name) }
            return value
        }
        let id = try text("id", required: true)!
        let origin = try text("origin", required: true)!
        var topic: Topic? = nil
        if let name = try text("topic", required: false) {
            do {
                topic = try Topic(name)
            } catch {
                throw .invalidTopic(name, reason: error)
            }
        }
        let userId = try text("userId", required: false)
        if userId?.isEmpty == true { throw .missingField("userId") }
        guard topic != nil || userId != nil else { throw .noAddress }
        let eventType = try text("eventType", required: false)
        guard let data = fields["data"] else { throw .missingField("data") }
        // `"metadata": null` stays `null`, as it was published; only an absent field is nil.
        let metadata = fields["metadata"]

        let stamp = try text("timestamp", required: true)!
        guard
            let timestamp = Timestamp.date(stamp)
        else { throw .invalidTimestamp(stamp) }

        var envelope = Envelope(
            id: id, origin: origin, topic: topic, userId: userId, eventType: eventType,
            data: data, metadata: metadata, timestamp: timestamp)
        // An unknown kind is a signal of a later version: not a message to deliver as one.
        if let kind = try text("kind", required: false) {
            guard let known = Envelope.Kind(rawValue: kind) else { throw .notAnEnvelope("unknown kind '\(kind)'") }
            envelope.kind = known
        }
        envelope.messageId = try text("messageId", required: false)
        if let offsetField = fields["offset"], !offsetField.isNull {
            guard offsetField.isNumber, let offset = JSONNumber(unchecked: offsetField.description).intValue, offset > 0 else {
                throw .notAnEnvelope("field 'offset' is not a positive integer")
            }
            guard let epoch = try text("epoch", required: true) else { throw .missingField("epoch") }
            envelope.offset = offset
            envelope.epoch = epoch
        }
        return envelope
    }

}
