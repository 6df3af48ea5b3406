/// Why bytes received from the backend are not an ``Envelope`` (see ``EnvelopeCodec``).
///
/// Such a payload is counted as `malformed` and skipped; the description goes to the log.
public enum EnvelopeDecodingError: Error, Equatable, CustomStringConvertible {
    /// Not a JSON object, or a field has the wrong JSON type.
    case notAnEnvelope(String)
    /// `v` is not a version this node reads.
    case unsupportedVersion(Int)
    /// A required field is missing or empty.
    case missingField(String)
    /// `topic` is not a valid ``Topic``.
    case invalidTopic(String, reason: TopicError)
    /// Neither `topic` nor `userId` is set: the message has no address.
    case noAddress
    /// `timestamp` is not ISO 8601.
    case invalidTimestamp(String)

    public var description: String {
        switch self {
        case .notAnEnvelope(let reason): "not an envelope: \(reason)"
        case .unsupportedVersion(let version): "envelope version \(version) is not supported (expected 1)"
        case .missingField(let name): "envelope field '\(name)' is missing or empty"
        case .invalidTopic(_, let reason): "envelope topic is invalid: \(reason)"
        case .noAddress: "envelope has neither 'topic' nor 'userId'"
        case .invalidTimestamp(let text): "envelope timestamp '\(text.prefix(64))' is not ISO 8601"
        }
    }
}
