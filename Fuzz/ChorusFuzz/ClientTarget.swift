import Broker
import Foundation
@testable import Node

/// Target `client`: what a WebSocket client controls besides the frames themselves, the
/// `Sec-WebSocket-Extensions` offers of its upgrade (``PerMessageDeflate/negotiate(offers:)``)
/// and each text message as the protocol reads it (``ClientMessage/decode(_:)``).
///
/// The first input byte picks a mode:
/// - 0: the rest, as text, is the offers, one header line per `\n`. Never a crash; an agreement
///   comes only from a line that names `permessage-deflate`, and `client_no_context_takeover`
///   is agreed to only when a line offers it.
/// - anything else: the rest is one text message. Never a crash; a message decoded is a JSON
///   object by the node's parser; a `message`'s `data` and `metadata` are, byte for byte, the
///   top-level `data` and `metadata` members that `RawJSONObject(parsing:)` slices out of the
///   same input (not a nested member of that name; `metadata` nil when absent or `null`, as
///   `ClientMessage` documents), and occur in the input as sent (data passes through
///   unchanged); history is asked only of a concrete topic.
enum ClientTarget {
    static func run(_ input: [UInt8]) {
        guard let mode = input.first else { return }
        let rest = Array(input.dropFirst())
        if mode == 0 {
            negotiate(String(decoding: rest, as: UTF8.self))
        } else {
            decode(rest)
        }
    }

    static func negotiate(_ text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let agreed = PerMessageDeflate.negotiate(offers: lines) else { return }
        let lowered = text.lowercased()
        guard lowered.contains("permessage-deflate") else {
            fuzzFailure(.client, "agreed \(agreed) to offers that name no permessage-deflate: \(text.debugDescription)")
        }
        if agreed.clientNoContextTakeover, !lowered.contains("client_no_context_takeover") {
            fuzzFailure(.client, "agreed client_no_context_takeover, never offered: \(text.debugDescription)")
        }
    }

    static func decode(_ bytes: [UInt8]) {
        guard let message = try? ClientMessage.decode(bytes) else { return }
        guard let fields = try? RawJSONObject(parsing: bytes) else {
            fuzzFailure(.client, "decoded a message that is not a JSON object: \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
        switch message.kind {
        case .message(_, let data, let metadata, _):
            // The top-level members as the node's parser slices them: `data` as sent, `metadata`
            // as sent or nil when absent or `null`.
            let sentMetadata = fields["metadata"].flatMap { $0.isNull ? nil : $0 }
            let members: [(String, RawJSON?, RawJSON?)] = [("data", data, fields["data"]), ("metadata", metadata, sentMetadata)]
            for (name, raw, sent) in members {
                guard raw?.bytes == sent?.bytes else {
                    fuzzFailure(
                        .client,
                        "\(name) decoded as \(raw.map { String(decoding: $0.bytes, as: UTF8.self).debugDescription } ?? "nil"), "
                            + "the top-level member is \(sent.map { String(decoding: $0.bytes, as: UTF8.self).debugDescription } ?? "nil")")
                }
                guard let raw else { continue }
                guard contains(bytes, raw.bytes) else {
                    fuzzFailure(.client, "\(name) \(String(decoding: raw.bytes, as: UTF8.self).debugDescription) is not the bytes sent")
                }
            }
        case .subscribe(let pattern):
            if message.history != nil, pattern.topic == nil {
                fuzzFailure(.client, "history asked of the pattern \(pattern)")
            }
        default:
            break
        }
    }

    /// Whether `slice` occurs in `bytes`, contiguously.
    static func contains(_ bytes: [UInt8], _ slice: [UInt8]) -> Bool {
        guard !slice.isEmpty else { return true }
        guard slice.count <= bytes.count else { return false }
        for start in 0...(bytes.count - slice.count) where bytes[start] == slice[0] {
            if bytes[start..<(start + slice.count)].elementsEqual(slice) { return true }
        }
        return false
    }
}
