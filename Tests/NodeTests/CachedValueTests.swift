import Synchronization
import Testing
@testable import Node

@Suite("Cached values (the cluster-scope /stats)")
struct CachedValueTests {
    final class Counter: Sendable {
        let calls = Atomic<Int>(0)
    }

    @Test("however many ask at once, the value is computed once per max age")
    func computedOncePerMaxAge() async {
        let counter = Counter()
        let cache = CachedValue<Int>(maxAge: .seconds(1)) {
            counter.calls.add(1, ordering: .relaxed).newValue
        }
        let start = ContinuousClock.now
        let values = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<200 { group.addTask { await cache.get(now: start) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(values) == [1])
        #expect(await cache.get(now: start + .milliseconds(999)) == 1)
        #expect(counter.calls.load(ordering: .relaxed) == 1)
        #expect(await cache.get(now: start + .seconds(1)) == 2)
        #expect(counter.calls.load(ordering: .relaxed) == 2)
    }
}
