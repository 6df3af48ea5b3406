import Broker
import Testing

@testable import Node

@Suite("How deep metadata may nest")
struct MetadataDepthTests {
    /// A stored message's `message.sent` envelope, as ``MessageEvents`` builds it, with metadata
    /// nested `depth` levels.
    private func envelope(metadataDepth depth: Int) throws -> [UInt8] {
        let metadata = String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth)
        let data = try RawJSON(validating: Array(#"{"id":"m","content":"c","metadata":\#(metadata)}"#.utf8))
        let envelope = Envelope(
            id: "1", origin: "n1", topic: try Topic("rooms.deep"), eventType: "message.sent", data: data,
            metadata: RawJSON.emptyObject)
        return EnvelopeCodec.encode(envelope)
    }

    @Test("the deepest metadata a post may carry makes an envelope every node reads back; one level more does not")
    func boundMatchesTheEnvelope() throws {
        let depth = MessageRoutes.maxMetadataDepth
        #expect((try? EnvelopeCodec.decode(try envelope(metadataDepth: depth))) != nil)
        #expect((try? EnvelopeCodec.decode(try envelope(metadataDepth: depth + 1))) == nil)
    }

    @Test("nesting depth counts arrays and objects, not brackets inside strings")
    func nestingDepth() throws {
        func depth(_ text: String) throws -> Int { try RawJSON(validating: Array(text.utf8)).nestingDepth }
        #expect(try depth("1") == 0)
        #expect(try depth("{}") == 1)
        #expect(try depth(#"{"a":[1,{"b":[]}],"c":"[[[{{"}"#) == 4)
        #expect(try depth(#"["\"[", ["\\"]]"#) == 2)
    }
}
