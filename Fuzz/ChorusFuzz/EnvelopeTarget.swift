import Broker
import Foundation

/// Target `envelope`: the Redis envelope decoder, and the encoder against it.
///
/// Decoding arbitrary bytes must not crash; whatever decodes must survive encoding and decoding
/// again unchanged, `data` and `metadata` byte for byte: `decode(encode(decode(x))) == decode(x)`;
/// a timestamp already in the envelope's own form (`2025-01-31T12:00:00.132Z`) keeps its text,
/// and encoding a second time gives the same bytes. One documented exception: the envelope's
/// timestamp has milliseconds, so a finer one read from Redis may move by less than a
/// millisecond, once.
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
