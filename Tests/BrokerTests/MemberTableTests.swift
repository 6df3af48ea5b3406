import Testing

@testable import Broker

@Suite("Member table: members by user id, in order")
struct MemberTableTests {
    @Test("random joins, updates and leaves: pages walk the members in user id order, each once, with the latest entries")
    func matchesAReference() {
        var generator = SystemRandomNumberGenerator()
        var table = MemberTable<Int>()
        var reference: [String: Int] = [:]
        for step in 0..<5_000 {
            let user = "u\(Int.random(in: 0..<400, using: &generator))"
            if Bool.random(using: &generator) {
                table[user] = step
                reference[user] = step
            } else {
                table[user] = nil
                reference[user] = nil
            }
        }
        #expect(table.count == reference.count)
        var walked: [(String, Int)] = []
        var after: String?
        while true {
            let page = table.page(after: after, limit: 37)
            walked += page.members.map { ($0.userId, $0.entry) }
            guard page.more, let last = page.members.last else { break }
            after = last.userId
        }
        let expected = reference.sorted { $0.key < $1.key }
        #expect(walked.map(\.0) == expected.map(\.key))
        #expect(walked.map(\.1) == expected.map(\.value))
    }

    @Test("a page after an id that is not a member starts at the next one; after the last, none")
    func afterAbsentIds() {
        var table = MemberTable<Int>()
        for (n, user) in ["b", "d", "f"].enumerated() { table[user] = n }
        #expect(table.page(after: "c", limit: 10).members.map(\.userId) == ["d", "f"])
        #expect(table.page(after: "a", limit: 1).members.map(\.userId) == ["b"] && table.page(after: "a", limit: 1).more)
        #expect(table.page(after: "f", limit: 10).members.isEmpty && !table.page(after: "f", limit: 10).more)
        #expect(table.page(after: nil, limit: 0).members.isEmpty && table.page(after: nil, limit: 0).more)
    }
}
