import Broker
import Testing

@testable import Node

/// The `id` of a frame the JSON parser refuses, so that its 400 answers the request.
@Suite("The id of a malformed request")
struct RequestIdScannerTests {
    static let deep = "{\"type\":\"message\",\"id\":3,\"data\":" + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}"
    static let withIds: [(String, JSONValue)] = [
        (#"{"type":"message","id":7,"topic":"t","data":{"text":"\ud83d"}}"#, .number(7)),
        (#"{"type":"message","topic":"t","data":"\ud83d","id":"p-1"}"#, .string("p-1")),
        (#"{"data":"a \"quoted\" \\ tail","id":-15}"#, .number(-15)),
        (#"{ "nested" : {"id":1,"deeper":[{"id":2}]} , "id" : "top" }"#, .string("top")),
        (#"{"\u0069d":"escaped name"}"#, .string("escaped name")),
        (deep, .number(3)),
    ]

    @Test("a top-level string or number id is found whatever else is wrong in the frame", arguments: withIds)
    func found(frame: String, id: JSONValue) {
        #expect(RequestIdScanner.id(in: Array(frame.utf8)) == id)
    }

    @Test(
        "no id when there is none at the top level, it is not a string or number, or the frame breaks before it",
        arguments: [
            #"{"type":"message","data":{"id":1}}"#,
            #"{"id":{"a":1}}"#,
            #"{"id":[1]}"#,
            #"{"id":nul}"#,
            #"{"data":"never closed,"id":1}"#,
            #"{"data":"\ud83d" "id":1}"#,
            #"["id",1]"#,
            "",
            "{",
            #"{"id""#,
        ])
    func notFound(frame: String) {
        #expect(RequestIdScanner.id(in: Array(frame.utf8)) == nil)
    }
}
