import Foundation
import Testing

@testable import ChorusSDK

@Suite("A member's exact text, found without parsing")
struct RawJSONTests {
    @Test("finds a top-level member whatever precedes it: strings with escapes and brackets, nested values, spaces")
    func finds() {
        let text = #"{ "type":"message", "topic":"a\"}{[", "metadata":{"data":[1,{"x":"]"}]}, "data" : 12345678901234567890.5 , "z":null}"#
        #expect(RawJSON.member("data", in: text) == "12345678901234567890.5")
        #expect(RawJSON.member("metadata", in: text) == #"{"data":[1,{"x":"]"}]}"#)
        #expect(RawJSON.member("topic", in: text) == #""a\"}{[""#)
        #expect(RawJSON.member("z", in: text) == "null")
        #expect(RawJSON.member("data", in: #"{"data":{"a":"\\"}}"#) == #"{"a":"\\"}"#)
    }

    @Test("answers nil for a missing member, a non-object and truncated or malformed text")
    func refuses() {
        for text in [#"{"type":"message"}"#, "[1]", "", "{", #"{"data":"#, #"{"data":[1,2"#, #"{"data":"abc"#, #"{"a" 1,"data":2}"#, #"{"a":1 "data":2}"#] {
            #expect(RawJSON.member("data", in: text) == nil, "\(text)")
        }
        #expect(RawJSON.member("data", in: "{}") == nil)
    }

    @Test("agrees with JSONSerialization on what every member of an object is")
    func agrees() throws {
        let object: [String: Any] = ["data": ["b": [1, 2.5, "x\"y"], "c": NSNull()], "s": "{[\\", "n": -1.5e3, "t": true]
        let text = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        for key in object.keys {
            let member = try #require(RawJSON.member(key, in: text), "\(key)")
            let parsed = try JSONSerialization.jsonObject(with: Data(member.utf8), options: .fragmentsAllowed)
            #expect(try Self.text([key: parsed]) == Self.text([key: object[key]!]), "\(key)")
        }
    }

    private static func text(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
    }
}
