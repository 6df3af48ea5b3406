import Foundation

/// Unpadded base64url (RFC 4648 §5), as JWS uses it.
///
/// Byte by byte, without Foundation's base64 or string searching: every WebSocket upgrade and
/// `auth` message decodes three token parts, and the Foundation route (replacing characters
/// through `NSString`, decoding, encoding again to check the spelling) was a tenth of a node's
/// CPU while clients reconnect (docs/benchmarks.md, "Connecting").
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Each byte's 6-bit value, or `invalid` for a byte outside the alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: invalid, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()
    private static let invalid: UInt8 = 0xFF

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let bytes = Array(bytes)
        var text: [UInt8] = []
        text.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index < bytes.count {
            let left = bytes.count - index
            let chunk = UInt32(bytes[index]) << 16
                | (left > 1 ? UInt32(bytes[index + 1]) << 8 : 0)
                | (left > 2 ? UInt32(bytes[index + 2]) : 0)
            for position in 0...min(left, 3) {
                text.append(alphabet[Int(chunk >> UInt32(18 - 6 * position) & 0x3F)])
            }
            index += 3
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The bytes `text` encodes, or nil unless `text` is their one canonical encoding: no
    /// padding, nothing outside the alphabet, and zero in the unused low bits of the last
    /// character (a token whose last character differs only there is another token, and a
    /// signature must have exactly one spelling).
    static func decode(_ text: some StringProtocol) -> Data? {
        let characters = text.utf8
        let remainder = characters.count % 4
        guard remainder != 1 else { return nil }
        var bytes = Data(capacity: characters.count / 4 * 3 + max(0, remainder - 1))
        var chunk: UInt32 = 0
        var filled = 0
        var last: UInt8 = 0
        for character in characters {
            last = values[Int(character)]
            guard last != invalid else { return nil }
            chunk = chunk << 6 | UInt32(last)
            filled += 1
            if filled == 4 {
                bytes.append(UInt8(truncatingIfNeeded: chunk >> 16))
                bytes.append(UInt8(truncatingIfNeeded: chunk >> 8))
                bytes.append(UInt8(truncatingIfNeeded: chunk))
                chunk = 0
                filled = 0
            }
        }
        switch filled {
        case 2:  // 12 bits: one byte, 4 unused
            guard last & 0x0F == 0 else { return nil }
            bytes.append(UInt8(truncatingIfNeeded: chunk >> 4))
        case 3:  // 18 bits: two bytes, 2 unused
            guard last & 0x03 == 0 else { return nil }
            bytes.append(UInt8(truncatingIfNeeded: chunk >> 10))
            bytes.append(UInt8(truncatingIfNeeded: chunk >> 2))
        default:
            break
        }
        return bytes
    }
}
