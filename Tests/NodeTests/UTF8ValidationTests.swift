import Testing

@testable import Node

@Suite("UTF-8 validation of text messages (RFC 3629)")
struct UTF8ValidationTests {
    @Test(
        "well-formed text is valid",
        arguments: [
            "", "plain ASCII, longer than eight bytes", "é", "日本語", "😀 emoji", "\u{10FFFF}", "\u{FFFD}", "a\u{0}b",
            String(repeating: "x", count: 100) + "é",
        ])
    func valid(text: String) {
        #expect(UTF8Validation.isValid(Array(text.utf8)))
        #expect(UTF8Validation.isValid(Array(text.utf8)) == (String(validating: Array(text.utf8), as: UTF8.self) != nil))
    }

    @Test(
        "ill-formed bytes are invalid",
        arguments: [
            [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xC3], [0xC3, 0x28], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],
            [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xE2, 0x82], [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
            [0xF5, 0x80, 0x80, 0x80], [0xFE], [0xFF], [0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0xFF],
        ] as [[UInt8]])
    func invalid(bytes: [UInt8]) {
        #expect(!UTF8Validation.isValid(bytes))
    }

    @Test("agrees with the standard library on every one- and two-byte sequence")
    func agreesWithStandardLibrary() {
        for first in 0...255 {
            #expect(UTF8Validation.isValid([UInt8(first)]) == (String(validating: [UInt8(first)], as: UTF8.self) != nil))
            for second in 0...255 {
                let bytes = [UInt8(first), UInt8(second)]
                #expect(UTF8Validation.isValid(bytes) == (String(validating: bytes, as: UTF8.self) != nil), "\(bytes)")
            }
        }
    }
}
