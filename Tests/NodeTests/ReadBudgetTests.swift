import NIOCore
import Testing

@testable import Node

@Suite("The read budget (WEBSOCKET_MAX_BYTES_PER_SECOND)")
struct ReadBudgetTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("within the burst nothing pauses; the message that overdraws it names the time to repay the debt")
    func overdraw() {
        let limit = ReadBudget.Limit(perSecond: 1000, burst: 4000)
        var budget = ReadBudget(limit, now: start)
        #expect(budget.charge(3000, now: start, within: limit) == nil)
        #expect(budget.charge(1000, now: start, within: limit) == nil, "exactly the burst")
        #expect(budget.charge(500, now: start, within: limit) == .milliseconds(500), "500 bytes of debt at 1,000 a second")
    }

    @Test("the budget refills at its rate, up to the burst")
    func refill() {
        let limit = ReadBudget.Limit(perSecond: 1000, burst: 2000)
        var budget = ReadBudget(limit, now: start)
        #expect(budget.charge(2000, now: start, within: limit) == nil)
        #expect(budget.charge(1000, now: start + .seconds(1), within: limit) == nil, "a second refilled 1,000")
        #expect(budget.charge(1, now: start + .seconds(1), within: limit) != nil)
        var idle = ReadBudget(limit, now: start)
        #expect(idle.charge(2001, now: start + .seconds(60), within: limit) == .milliseconds(1), "an idle minute holds no more than the burst")
    }

    @Test("after the pause the debt is repaid: the next message is charged from zero")
    func repaid() {
        let limit = ReadBudget.Limit(perSecond: 1000, burst: 1000)
        var budget = ReadBudget(limit, now: start)
        #expect(budget.charge(3000, now: start, within: limit) == .seconds(2))
        budget.repaid(now: start + .seconds(2))
        #expect(budget.charge(100, now: start + .seconds(2), within: limit) == .milliseconds(100))
    }

    @Test("the burst is never below the rate, so a rate above the largest message still lets a second's worth through")
    func burstAtLeastTheRate() {
        let limit = ReadBudget.Limit(perSecond: 10_000, burst: 64)
        var budget = ReadBudget(limit, now: start)
        #expect(limit.burst == 10_000)
        #expect(budget.charge(10_000, now: start, within: limit) == nil)
    }
}
