import NIOCore
import Testing

@testable import Node

@Suite("Presence changes per connection: 10 a second, bursts of 20")
struct PresenceChangeBudgetTests {
    @Test("a burst of 20, then one every 100 ms, the wait named until then; an idle connection is back at 20, across the clock's wrap too")
    func refill() {
        var budget = PresenceChangeBudget()
        let start = NIODeadline.uptimeNanoseconds(5_000_000_000)
        for _ in 0..<20 { #expect(budget.take(now: start) == nil) }
        #expect(budget.take(now: start) == 100, "empty: the next one in 100 ms")
        #expect(budget.take(now: start + .milliseconds(60)) == 40)
        #expect(budget.take(now: start + .milliseconds(100)) == nil, "one back after 100 ms")
        #expect(budget.take(now: start + .milliseconds(150)) == 50, "not two")
        #expect(budget.take(now: start + .milliseconds(350)) == nil)
        #expect(budget.take(now: start + .milliseconds(350)) == nil, "250 ms brought two and a half: the half is kept")
        #expect(budget.take(now: start + .milliseconds(350)) == 50)
        let later = start + .seconds(10)
        for _ in 0..<20 { #expect(budget.take(now: later) == nil) }
        #expect(budget.take(now: later) != nil, "never more than 20 at once")

        let nearWrap = NIODeadline.uptimeNanoseconds(UInt64(UInt32.max) * 1_000_000 - 50_000_000)
        var wrapping = PresenceChangeBudget()
        for _ in 0..<20 { #expect(wrapping.take(now: nearWrap) == nil) }
        #expect(wrapping.take(now: nearWrap + .milliseconds(100)) == nil, "refilled across the wrap of the millisecond clock")
    }
}
