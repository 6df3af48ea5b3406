import Foundation
import Testing

@testable import Node

/// `Base64URL` is checked against Foundation's base64 with the RFC 4648 §5 substitutions: the
/// encoding the node used before it decoded tokens byte by byte.
@Suite("Base64URL")
struct Base64URLTests {
    static func reference(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    @Test("every length from 0 to 300, random bytes: the reference spelling, and back to the same bytes")
    func roundTrip() {
        var generator = SystemRandomNumberGenerator()
        for count in 0...300 {
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = Base64URL.encode(bytes)
            #expect(text == Self.reference(bytes))
            #expect(Base64URL.decode(text).map(Array.init) == bytes)
        }
    }

    @Test("RFC 4648's test vectors, unpadded")
    func vectors() {
        let vectors = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded).map { String(decoding: $0, as: UTF8.self) } == plain)
        }
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decode("-_8").map(Array.init) == [0xFB, 0xFF])
    }

    @Test("refused: padding, the standard alphabet's + and /, other characters, a length of 4n+1")
    func refused() {
        for text in ["Zg==", "Zm8=", "+_8", "/_8", "Zm 9v", "Zm9v\n", "Zm9vé", "Zm9vY", "A", "Zm9v.Zg"] {
            #expect(Base64URL.decode(text) == nil, "\(text.debugDescription)")
        }
    }

    @Test("only the canonical spelling decodes: set bits past the data's end refuse it")
    func canonicalOnly() {
        // "Zg" is 0x66; "Zh" to "Zv" differ from it only in the 4 unused low bits.
        #expect(Base64URL.decode("Zg") != nil)
        for last in "hijklmnopqrstuv" {
            #expect(Base64URL.decode("Z\(last)") == nil, "Z\(last)")
        }
        // "Zm8" is "fo"; "Zm9", "Zm-" and "Zm_" differ only in the 2 unused low bits.
        #expect(Base64URL.decode("Zm8") != nil)
        for last in ["9", "-", "_"] {
            #expect(Base64URL.decode("Zm\(last)") == nil, "Zm\(last)")
        }
        for text in ["Zm8", "Zg"] {
            #expect(Base64URL.decode(text).map { Base64URL.encode($0) } == text)
        }
    }
}
