import Foundation
import Testing
import TestSupport

@testable import Broker

/// The one JSON parser every client message, `/api/publish` body and envelope goes through.
@Suite("JSON parser: strict, exact, bounded")
struct JSONParserTests {
    @Test(
        "a value is kept as the exact bytes it was written with",
        arguments: [
            "1796133956872868123", "12345678901234567890", "-9007199254740993", "1e400", "-1e400",
            "9007199254740993", "9007199254740991", "9007199254740992", "-0", "-0.0", "1E+2", "1e-400",
            "0.1000", "123456789012345678901234567890.123456789e-5",
            #""\" \\ \/ \b \f \n \r \t \u00e9 \u4E2D \uD83D\uDE00""#, #""héllo 中 😀""#, #""\u0000""#,
            #"{"z":1,"a":2,"m":{"y":[],"b":{}}}"#, #"{ "spaced" : [ 1 , 2 ] }"#, "[]", "{}", "null", "true", "false",
            JSONFixtures.faithfulData,
        ])
    func exactBytes(json: String) throws {
        #expect(try RawJSON(validating: Array(json.utf8)).description == json)
    }

    @Test("white space around a value is dropped, inside it is kept")
    func surroundingWhitespace() throws {
        #expect(try RawJSON(validating: Array(" \n\t{ \"a\" : 1 }\r\n ".utf8)).description == #"{ "a" : 1 }"#)
    }

    @Test(
        "what RFC 8259 does not allow is refused",
        arguments: [
            "", "   ", "[1,]", #"{"a":1,}"#, "{'a':1}", #"{"a" 1}"#, #"{"a":}"#, "[1 2]", "01", "-01", "[01]", "00",
            "1.", ".5", "+1", "-", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "[NaN]", "tru", "nul", "True",
            "1 2", #""unterminated"#, "\"tab\there\"", "\"nl\nhere\"", "\"\u{1F}\"", #""\x""#, #""\'""#, #""\u12G4""#,
            #""\u00e""#, "// c\n1", "/* c */ 1", "[1] // c", "\u{FEFF}1", #"{"a":1}}"#, "[", "{", #"{"a""#,
        ])
    func refusesNonJSON(json: String) {
        #expect(throws: JSONError.self) { try RawJSON(validating: Array(json.utf8)) }
        #expect(throws: JSONError.self) { try JSONValue(parsing: Array(json.utf8)) }
    }

    @Test(
        "a lone surrogate in a \\u escape is refused: it is no character",
        arguments: [#""\ud83d""#, #""\ude00""#, #""\ud83d\u0041""#, #""\ud83dx""#, #""\ud83d\ud83d""#, #""a\udfffb""#])
    func loneSurrogates(json: String) {
        #expect(throws: JSONError.self) { try RawJSON(validating: Array(json.utf8)) }
    }

    @Test(
        "bytes that are not UTF-8 are refused, never repaired into U+FFFD",
        arguments: [
            [0xFF], [0x80], [0xC0, 0xAF], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
            [0xF0, 0x80, 0x80, 0xAF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0xE2, 0x28, 0xA1],
        ] as [[UInt8]])
    func invalidUTF8(sequence: [UInt8]) {
        let text = [UInt8(ascii: "\"")] + sequence + [UInt8(ascii: "\"")]
        #expect(throws: JSONError(.invalidUTF8, at: 1)) { try RawJSON(validating: text) }
    }

    @Test(
        "a duplicate member name is refused at any depth, naming it",
        arguments: [
            (#"{"a":1,"a":2}"#, "a"),
            (#"{"x":{"b":1,"c":2,"b":3}}"#, "b"),
            (#"[1,{"k":null,"k":null}]"#, "k"),
            (#"{"a":1,"\u0061":2}"#, "a"),
            (#"{"é":1,"\u00e9":2}"#, "é"),
            ("{" + (0..<40).map { #""k\#($0)":\#($0)"# }.joined(separator: ",") + #","k7":0}"#, "k7"),
            ("{" + (0..<40).map { #""k\#($0)":\#($0)"# }.joined(separator: ",") + #","k\u0033\u0039":0}"#, "k39"),
        ])
    func duplicateKeys(json: String, key: String) {
        #expect {
            try RawJSON(validating: Array(json.utf8))
        } throws: { error in
            (error as? JSONError)?.problem == .duplicateKey(key) && "\(error)".contains("duplicate key '\(key)'")
        }
        #expect(throws: JSONError.self) { try JSONValue(parsing: Array(json.utf8)) }
    }

    @Test("the same name in different objects, and names that differ only in normalisation, are allowed")
    func distinctNames() throws {
        _ = try RawJSON(validating: Array(#"{"a":{"a":1},"b":{"a":2},"c":[{"a":3},{"a":4}]}"#.utf8))
        _ = try RawJSON(validating: Array("{\"\u{E9}\":1,\"e\u{301}\":2}".utf8))  // é precomposed and decomposed
        let many = "{" + (0..<1000).map { #""k\#($0)":{"k\#($0)":0}"# }.joined(separator: ",") + "}"
        _ = try RawJSON(validating: Array(many.utf8))
    }

    @Test("nesting is bounded: 128 levels are read, one more is refused")
    func depth() throws {
        _ = try RawJSON(validating: Array(JSONFixtures.nested(JSONParser.maxDepth).utf8))
        let deep = JSONFixtures.nested(JSONParser.maxDepth + 1)
        #expect(throws: JSONError(.tooDeep, at: JSONParser.maxDepth)) { try RawJSON(validating: Array(deep.utf8)) }
        #expect(throws: JSONError.self) { try JSONValue(parsing: Array(deep.utf8)) }
        let objects = String(repeating: #"{"a":"#, count: JSONParser.maxDepth + 1) + "1" + String(repeating: "}", count: JSONParser.maxDepth + 1)
        #expect(throws: JSONError.self) { try RawJSON(validating: Array(objects.utf8)) }
        // Far past the bound, refused without exhausting the stack.
        #expect(throws: JSONError.self) { try RawJSON(validating: Array(String(repeating: "[", count: 1_000_000).utf8)) }
    }

    @Test("every escape decodes to its character")
    func escapes() throws {
        let json = #""\" \\ \/ \b \f \n \r \t \u00e9 \u4E2D \ud83d\ude00 \u0000""#
        let expected = "\" \\ / \u{8} \u{C} \n \r \t é 中 😀 \u{0}"
        #expect(try RawJSON(validating: Array(json.utf8)).stringValue == expected)
        #expect(try JSONValue(parsing: Array(json.utf8)) == .string(expected))
    }

    @Test("a long string is read whole")
    func longString() throws {
        let long = "\"" + String(repeating: "abc\\n😀", count: 100_000) + "\""
        let raw = try RawJSON(validating: Array(long.utf8))
        #expect(raw.bytes.count == long.utf8.count)
        #expect(raw.stringValue?.count == 500_000)  // a, b, c, newline, 😀
    }

    @Test("a parsed number keeps its text, so an echoed request id is the id sent")
    func numbersKeepTheirText() throws {
        for text in ["12345678901234567890", "1E+2", "-0", "1e400", "0.10"] {
            #expect(try JSONValue(parsing: Array(text.utf8)) == .number(JSONNumber(unchecked: text)))
            #expect(RawJSON(try JSONValue(parsing: Array(text.utf8))).description == text)
        }
        #expect(JSONNumber(3).text == "3")
        #expect(JSONNumber(Double(1.5))?.text == "1.5")
        #expect(JSONNumber(Double.nan) == nil)
    }

    @Test("members are read in order with their exact bytes")
    func members() throws {
        let object = try RawJSONObject(parsing: Array(#" {"type":"message", "data" : {"b":1,"a":1e400} ,"n":null} "#.utf8))
        #expect(object.members.map(\.key) == ["type", "data", "n"])
        #expect(object["data"]?.description == #"{"b":1,"a":1e400}"#)
        #expect(object["type"]?.stringValue == "message")
        #expect(object["n"]?.isNull == true)
        #expect(throws: JSONError(.notAnObject, at: 0)) { try RawJSONObject(parsing: Array("[1]".utf8)) }
    }

    @Test(
        "setting senderId replaces or appends that one member; every other member keeps its bytes and place",
        arguments: [
            (#"{}"#, #"{"senderId":"u"}"#),
            (#"{ }"#, #"{ "senderId":"u"}"#),
            (#"{"z":1,"a":12345678901234567890}"#, #"{"z":1,"a":12345678901234567890,"senderId":"u"}"#),
            (#"{"b":1, "senderId" : "forged" ,"a":1e400}"#, #"{"b":1, "senderId" : "u" ,"a":1e400}"#),
            (#"{"sender\u0049d":{"deep":[1]},"x":-0}"#, #"{"sender\u0049d":"u","x":-0}"#),
            (#"{"n":{"senderId":"inner"}}"#, #"{"n":{"senderId":"inner"},"senderId":"u"}"#),
        ])
    func settingSenderId(metadata: String, expected: String) throws {
        let raw = try RawJSON(validating: Array(metadata.utf8))
        #expect(raw.settingMember("senderId", to: .string("u")).description == expected)
    }
}
