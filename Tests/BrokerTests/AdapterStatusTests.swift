import Broker
import Foundation
import Testing

@Suite("The adapter's status in /stats documents")
struct AdapterStatusTests {
    @Test("a document of a node from before `refused` was counted still decodes (the cluster view lists every node during a rolling upgrade)")
    func olderDocumentDecodes() throws {
        let current = AdapterStatus(adapter: "redis", state: .connected, since: Date(timeIntervalSince1970: 0), refused: 3)
        var document = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(current)) as? [String: Any])
        #expect(document["refused"] as? Int == 3)
        document["refused"] = nil
        let older = try JSONDecoder().decode(AdapterStatus.self, from: JSONSerialization.data(withJSONObject: document))
        #expect(older.refused == nil && older.adapter == "redis")
    }
}
