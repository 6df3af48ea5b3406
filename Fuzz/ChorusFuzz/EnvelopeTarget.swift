import Broker

/// Target `envelope`: the Redis envelope decoder, and the encoder against it.
///
/// Decoding arbitrary bytes must not crash; whatever decodes must survive encoding and decoding
/// again unchanged: `decode(encode(decode(x))) == decode(x)`, and encoding that again gives the
/// same bytes. Two documented exceptions, which the expectation applies first:
/// - `EnvelopeCodec.encode` writes a number JSON cannot carry (`1e400` parses as infinity) as the
///   string `"Infinity"` or `"-Infinity"` (issue 9 makes numbers exact; then drop this);
/// - the envelope's timestamp has milliseconds: a finer one read from Redis may move by less
///   than a millisecond, once (the second encoding must then give the same bytes).
enum EnvelopeTarget {
    /// The adapter to the code under test.
    static func decode(_ bytes: [UInt8]) -> Envelope? {
        try? EnvelopeCodec.decode(bytes)
    }

    static func encode(_ envelope: Envelope) -> [UInt8] {
        EnvelopeCodec.encode(envelope)
    }

    static func run(_ bytes: [UInt8]) {
        guard let first = decode(bytes) else { return }
        let encoded = encode(first)
        guard let second = decode(encoded) else {
            fuzzFailure(.envelope, "\(first) encodes as \(String(decoding: encoded, as: UTF8.self)), which does not decode")
        }
        var expected = first
        expected.data = finite(first.data)
        expected.metadata = first.metadata.map(finite)
        if abs(second.timestamp.timeIntervalSince(first.timestamp)) < 0.001 {
            expected.timestamp = second.timestamp
        }
        guard second == expected else {
            fuzzFailure(.envelope, "decoded \(first)\n re-encoded \(String(decoding: encoded, as: UTF8.self))\n decodes as \(second)")
        }
        let again = encode(second)
        guard again == encoded else {
            fuzzFailure(.envelope, "encoding is not stable: \(String(decoding: encoded, as: UTF8.self)) then \(String(decoding: again, as: UTF8.self))")
        }
    }

    /// The value with non-finite numbers as the codec writes them.
    static func finite(_ value: JSONValue) -> JSONValue {
        switch value {
        case .number(let number) where number.isInfinite: .string(number > 0 ? "Infinity" : "-Infinity")
        case .array(let elements): .array(elements.map(finite))
        case .object(let members): .object(members.mapValues(finite))
        default: value
        }
    }
}
