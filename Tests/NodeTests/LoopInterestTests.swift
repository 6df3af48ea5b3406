import Broker
@testable import Node
import Testing
import TestSupport

@Suite("LoopInterest: which loops a batch may concern")
struct LoopInterestTests {
    private func target(_ topic: String) throws -> LoopInterest.Target {
        LoopInterest.target(topic: try Topic(topic), userId: nil)
    }

    @Test("a loop that holds nothing wants nothing; holding a topic, a user or a wildcard changes that")
    func holdings() throws {
        let interest = LoopInterest()
        let room = try target("rooms.a")
        // Slots come from a hash seeded per process: one time in 4,096 "ann" would share the
        // room's slot, so the first user name that does not is taken.
        let names: [String] = ["ann", "bob", "cyd"]
        let name = try #require(names.first { LoopInterest.target(topic: nil, userId: $0).slot != room.slot })
        let user = LoopInterest.target(topic: nil, userId: name)
        #expect(interest.select([room, user]) == .none)
        interest.add(.topic(try Topic("rooms.a")))
        #expect(interest.select([room]) == .all)
        interest.add(.user(name))
        #expect(interest.select([room, user]) == .all)
        interest.remove(.topic(try Topic("rooms.a")))
        #expect(interest.select([room, user]) == .some([false, true]))
        interest.add(.pattern(try TopicPattern("rooms.*")))
        #expect(interest.select([room]) == .all, "a wildcard may match any topic")
        interest.remove(.user(name))
        #expect(interest.select([user]) == .none, "a wildcard never matches a user's messages")
        interest.remove(.pattern(try TopicPattern("rooms.*")))
        #expect(interest.select([room, user]) == .none)
        #expect(interest.select([LoopInterest.target(topic: nil, userId: nil)]) == .none, "nobody would be written")
    }

    @Test("never a missed delivery: 20,000 random holds and releases against a reference count", arguments: [1, 2, 3])
    func noFalseNegatives(seed: UInt64) throws {
        let interest = LoopInterest()
        var held: [String: Int] = [:]
        var generator = SplitMix64(seed: seed)
        let topics = try (0..<3_000).map { try Topic("t.\($0)") }
        var wrongNone = 0
        var skipped = 0
        for _ in 0..<20_000 {
            let topic = topics.randomElement(using: &generator)!
            if held[topic.name, default: 0] > 0, Bool.random(using: &generator) {
                interest.remove(.topic(topic))
                held[topic.name]! -= 1
            } else {
                interest.add(.topic(topic))
                held[topic.name, default: 0] += 1
            }
            let probe = topics.randomElement(using: &generator)!
            let wanted = interest.select([LoopInterest.target(topic: probe, userId: nil)]) == .all
            if held[probe.name, default: 0] > 0 && !wanted { wrongNone += 1 }
            if held[probe.name, default: 0] == 0 && !wanted { skipped += 1 }
        }
        #expect(wrongNone == 0, "a held topic was reported as not wanted")
        #expect(skipped > 0, "topics held nowhere on the loop are skipped")
        for (name, count) in held { for _ in 0..<count { interest.remove(.topic(try Topic(name))) } }
        #expect(interest.select(topics.map { LoopInterest.target(topic: $0, userId: nil) }) == .none)
    }
}

