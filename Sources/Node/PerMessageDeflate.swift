/// permessage-deflate (RFC 7692) as this node agrees to it in the upgrade: always with
/// `server_no_context_takeover`, so that the node compresses each delivered message once, with
/// no state of any one connection, and writes the same compressed frame to every subscriber
/// that agreed (the encode-once delivery path).
///
/// A pure value, made from the client's `Sec-WebSocket-Extensions` offers by
/// ``negotiate(offers:)``. An offer the node cannot honour is not agreed to (RFC 7692 §5: the
/// server declines by leaving it out of its response), and the connection goes on uncompressed.
struct PerMessageDeflate: Sendable, Equatable {
    /// The client agreed to `client_no_context_takeover`: each of its compressed messages is a
    /// deflate stream of its own, so the node keeps no inflater for it between messages. False:
    /// the client keeps its LZ77 window from message to message, and so does the connection's
    /// inflater (32 KiB of window and zlib's state, made at its first compressed message).
    var clientNoContextTakeover: Bool

    /// The window the node compresses with (2^15 bytes). An offer whose
    /// `server_max_window_bits` asks for less is declined: one compressed frame serves every
    /// subscriber, so it cannot be made for the smallest window any one of them asks for.
    static let serverWindowBits = 15

    /// The extension's name in the headers.
    static let name = "permessage-deflate"

    /// The value of the 101 response's `Sec-WebSocket-Extensions`.
    var responseHeader: String {
        Self.name + "; server_no_context_takeover" + (clientNoContextTakeover ? "; client_no_context_takeover" : "")
    }

    /// The first of the client's offers (in its order of preference, every
    /// `Sec-WebSocket-Extensions` header and comma-separated entry in turn) that the node can
    /// honour; nil when there is none.
    ///
    /// An offer is honoured when each of its parameters is one RFC 7692 §7.1 defines, given at
    /// most once, with a valid value:
    /// - `server_no_context_takeover`: the node sends it anyway.
    /// - `client_no_context_takeover`: agreed to (echoed), so the node keeps no inflater.
    /// - `server_max_window_bits=N` (8-15): only 15, the node's window; a smaller one declines the offer.
    /// - `client_max_window_bits[=N]` (8-15): accepted and not echoed; the node's inflater
    ///   reads any window up to 15 bits, so the client may use the one it offered.
    /// Anything else (an unknown parameter, a repeated one, a value out of range) declines the offer.
    static func negotiate(offers headers: [String]) -> PerMessageDeflate? {
        for header in headers {
            for offer in header.split(separator: ",") {
                if let agreed = agreement(offer) { return agreed }
            }
        }
        return nil
    }

    /// What the node agrees to for one offer (`name; param; param=value`), or nil.
    private static func agreement(_ offer: Substring) -> PerMessageDeflate? {
        var parts = offer.split(separator: ";", omittingEmptySubsequences: false).makeIterator()
        guard let name = parts.next(), trimmed(name).lowercased() == Self.name else { return nil }
        var seen: Set<String> = []
        var clientNoContextTakeover = false
        while let part = parts.next() {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = trimmed(pair[0]).lowercased()
            guard !key.isEmpty, seen.insert(key).inserted else { return nil }
            let value = pair.count == 2 ? unquoted(trimmed(pair[1])) : nil
            switch key {
            case "server_no_context_takeover":
                guard value == nil else { return nil }
            case "client_no_context_takeover":
                guard value == nil else { return nil }
                clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let value, windowBits(value) == serverWindowBits else { return nil }
            case "client_max_window_bits":
                if let value, windowBits(value) == nil { return nil }
            default:
                return nil
            }
        }
        return PerMessageDeflate(clientNoContextTakeover: clientNoContextTakeover)
    }

    /// A window size parameter's value: 8 to 15, in decimal digits with no leading zero.
    private static func windowBits(_ value: Substring) -> Int? {
        guard let first = value.first, first != "0", value.allSatisfy({ $0.isASCII && $0.isNumber }),
            let bits = Int(value), (8...15).contains(bits)
        else { return nil }
        return bits
    }

    private static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }

    /// A quoted-string's content (RFC 7692 §7.1: a value may be quoted), or the token itself.
    private static func unquoted(_ value: Substring) -> Substring {
        guard value.count >= 2, value.first == "\"", value.last == "\"" else { return value }
        return value.dropFirst().dropLast()
    }
}
