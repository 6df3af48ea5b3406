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
/// - `eventType` (string, optional), `data` (any JSON, required), `metadata` (any JSON, optional).
/// - `timestamp` (string, required): ISO 8601 UTC with milliseconds.
///
/// Unknown fields are ignored, so later versions may add fields without a version bump.
/// Encoding runs once per message on the publishing node and decoding once per message on each
/// receiving node, never per subscriber.
public enum EnvelopeCodec {
    /// The `v` this node writes and reads.
    public static let version = 1

    /// The JSON bytes of `envelope`, fields in the documented order (members of `data` and
    /// `metadata` objects sorted by key). Numbers that JSON cannot carry (NaN, infinities) become
    /// the strings `"NaN"`, `"Infinity"` and `"-Infinity"`, so encoding never fails.
    public static func encode(_ envelope: Envelope) -> [UInt8] {
        var writer = JSONWriter()
        writer.raw("{\"v\":\(version),\"id\":")
        writer.string(envelope.id)
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
        writer.raw(",\"data\":")
        writer.value(envelope.data)
        if let metadata = envelope.metadata {
            writer.raw(",\"metadata\":")
            writer.value(metadata)
        }
        writer.raw(",\"timestamp\":")
        writer.string(envelope.timestamp.formatted(timestampFormat))
        writer.raw("}")
        return writer.bytes
    }

    /// Decodes and validates one envelope.
    public static func decode(_ bytes: some Collection<UInt8>) throws(EnvelopeDecodingError) -> Envelope {
        do {
            return try JSONDecoder().decode(WireEnvelope.self, from: Data(bytes)).envelope
        } catch let error as EnvelopeDecodingError {
            throw error
        } catch let error as DecodingError {
            throw .notAnEnvelope(Self.summary(of: error))
        } catch {
            throw .notAnEnvelope("not JSON")
        }
    }

    /// A short reason for the log, without the decoder's internals.
    private static func summary(of error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not a JSON object" : "field '\(path)' has the wrong type"
        case .keyNotFound(let key, _):
            return "field '\(key.stringValue)' is missing"
        case .dataCorrupted:
            return "not JSON"
        @unknown default:
            return "not JSON"
        }
    }

    static let timestampFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    static let timestampFormatWithoutFraction = Date.ISO8601FormatStyle()
}

/// Reads the JSON shape of ``Envelope`` (see ``EnvelopeCodec``), validating as it goes.
private struct WireEnvelope: Decodable {
    let envelope: Envelope

    enum Key: String, CodingKey {
        case v, id, origin, topic, userId, eventType, data, metadata, timestamp
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        func required(_ key: Key) throws -> String {
            guard let value = try container.decodeIfPresent(String.self, forKey: key), !value.isEmpty else {
                throw EnvelopeDecodingError.missingField(key.stringValue)
            }
            return value
        }

        guard let version = try container.decodeIfPresent(Int.self, forKey: .v) else {
            throw EnvelopeDecodingError.missingField("v")
        }
        guard version == EnvelopeCodec.version else { throw EnvelopeDecodingError.unsupportedVersion(version) }
        let id = try required(.id)
        let origin = try required(.origin)

        var topic: Topic? = nil
        if let name = try container.decodeIfPresent(String.self, forKey: .topic) {
            do {
                topic = try Topic(name)
            } catch {
                throw EnvelopeDecodingError.invalidTopic(name, reason: error)
            }
        }
        let userId = try container.decodeIfPresent(String.self, forKey: .userId)
        if userId?.isEmpty == true { throw EnvelopeDecodingError.missingField("userId") }
        guard topic != nil || userId != nil else { throw EnvelopeDecodingError.noAddress }

        guard container.contains(.data) else { throw EnvelopeDecodingError.missingField("data") }
        let data = try container.decode(JSONValue.self, forKey: .data)
        // `"metadata": null` stays `.null`, as it was published; only an absent field is nil.
        let metadata = container.contains(.metadata) ? try container.decode(JSONValue.self, forKey: .metadata) : nil

        let stamp = try required(.timestamp)
        guard
            let timestamp = (try? EnvelopeCodec.timestampFormat.parse(stamp))
                ?? (try? EnvelopeCodec.timestampFormatWithoutFraction.parse(stamp))
        else { throw EnvelopeDecodingError.invalidTimestamp(stamp) }

        envelope = Envelope(
            id: id, origin: origin, topic: topic, userId: userId,
            eventType: try container.decodeIfPresent(String.self, forKey: .eventType),
            data: data, metadata: metadata, timestamp: timestamp)
    }
}

/// Writes JSON text: the encoder's half of ``EnvelopeCodec``, by hand so that the fields keep
/// their documented order (Foundation's `JSONEncoder` does not keep key order on Linux).
private struct JSONWriter {
    var bytes: [UInt8] = []

    init() {
        bytes.reserveCapacity(256)
    }

    mutating func raw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw(#"\""#)
            case UInt8(ascii: "\\"): raw(#"\\"#)
            case 0x0A: raw(#"\n"#)
            case 0x0D: raw(#"\r"#)
            case 0x09: raw(#"\t"#)
            case 0x00..<0x20:
                raw(#"\u00"#)
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): raw(flag ? "true" : "false")
        case .number(let number): self.number(number)
        case .string(let text): string(text)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                self.value(element)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                string(key)
                bytes.append(UInt8(ascii: ":"))
                self.value(members[key]!)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// As ``JSONValue`` encodes numbers: integers without a fraction, others in Swift's
    /// shortest round-trip form (`1.5`, `1e-07`), which is valid JSON.
    private mutating func number(_ number: Double) {
        if number.isNaN {
            string("NaN")
        } else if number.isInfinite {
            string(number > 0 ? "Infinity" : "-Infinity")
        } else if number.rounded() == number, abs(number) < 9_007_199_254_740_992 {
            raw(String(Int64(number)))
        } else {
            raw(String(number))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}
