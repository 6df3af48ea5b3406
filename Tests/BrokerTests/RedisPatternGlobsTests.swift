import Testing

@testable import Broker

@Suite("Pattern globs: one by one up to the limit, then one catch-all")
struct RedisPatternGlobsTests {
    static func pattern(_ text: String) -> TopicPattern { try! TopicPattern(text) }

    @Test("each pattern under its own glob up to the limit; past it, only the catch-all; back at half, its own again")
    func collapseAndReturn() throws {
        var globs = RedisPatternGlobs(catchAll: "p:*", limit: 4)
        for n in 1...4 { #expect(globs.add(Self.pattern("r\(n).*"), glob: "p:r\(n).*") == ["p:r\(n).*"]) }
        #expect(globs.globs == ["p:r1.*", "p:r2.*", "p:r3.*", "p:r4.*"] && !globs.collapsed)
        #expect(globs.add(Self.pattern("r1.*"), glob: "p:r1.*").isEmpty, "held already: nothing changes")

        let changed = globs.add(Self.pattern("r5.*"), glob: "p:r5.*")
        #expect(Set(changed) == ["p:r1.*", "p:r2.*", "p:r3.*", "p:r4.*", "p:r5.*", "p:*"], "every glob to revisit")
        #expect(globs.collapsed && globs.globs == ["p:*"])
        #expect(globs.wants("p:*") && !globs.wants("p:r1.*"))
        #expect(globs.add(Self.pattern("r6.*"), glob: "p:r6.*") == ["p:*"])

        _ = globs.remove(Self.pattern("r6.*"), glob: "p:r6.*")
        _ = globs.remove(Self.pattern("r5.*"), glob: "p:r5.*")
        _ = globs.remove(Self.pattern("r4.*"), glob: "p:r4.*")
        #expect(globs.collapsed, "three globs: still over half the limit")
        let back = globs.remove(Self.pattern("r3.*"), glob: "p:r3.*")
        #expect(!globs.collapsed && globs.globs == ["p:r1.*", "p:r2.*"])
        #expect(Set(back).isSuperset(of: ["p:r1.*", "p:r2.*", "p:*"]))
        #expect(globs.wants("p:r1.*") && !globs.wants("p:*"))
    }

    @Test("the index matches a topic against every pattern, whichever glob brought it")
    func indexMatches() throws {
        var globs = RedisPatternGlobs(catchAll: "p:*", limit: 1)
        _ = globs.add(Self.pattern("a.*"), glob: "p:a.*")
        _ = globs.add(Self.pattern("b.**"), glob: "p:b.*")
        func matched(_ topic: String) -> Bool {
            var found = false
            globs.index.forEachMatch(try! Topic(topic)) { _ in found = true }
            return found
        }
        #expect(matched("a.x") && matched("b.x.y") && !matched("a.x.y") && !matched("c.x"))
        _ = globs.remove(Self.pattern("a.*"), glob: "p:a.*")
        #expect(!matched("a.x"))
    }

    @Test("the last pattern removed while collapsed leaves nothing subscribed")
    func emptyWhileCollapsed() {
        var globs = RedisPatternGlobs(catchAll: "p:*", limit: 1)
        _ = globs.add(Self.pattern("a.*"), glob: "p:a.*")
        _ = globs.add(Self.pattern("b.*"), glob: "p:b.*")
        #expect(globs.collapsed)
        _ = globs.remove(Self.pattern("a.*"), glob: "p:a.*")
        _ = globs.remove(Self.pattern("b.*"), glob: "p:b.*")
        #expect(globs.globs.isEmpty && !globs.wants("p:*"))
    }
}
