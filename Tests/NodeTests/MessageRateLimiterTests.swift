import NIOCore
import Testing

@testable import Node

@Suite("The per-connection message rate and the flood rule")
struct MessageRateLimiterTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("a burst of the rate is allowed, the next message dropped, and a second later allowed again")
    func burstThenRefill() {
        let rate = MessageRateLimiter.Rate(perSecond: 10)
        var limiter = MessageRateLimiter(rate, now: Self.start)
        let burst = (0..<10).map { _ in limiter.admit(now: Self.start, at: rate) }
        #expect(burst.allSatisfy { $0 == .allow })
        let next = limiter.admit(now: Self.start, at: rate)
        #expect(next == .drop)
        let later = limiter.admit(now: Self.start + .seconds(1), at: rate)
        #expect(later == .allow)
    }

    @Test("a flood at full speed is closed once its dropped messages pass the allowance")
    func fullSpeedFlood() {
        let rate = MessageRateLimiter.Rate(perSecond: 100)
        var limiter = MessageRateLimiter(rate, now: Self.start)
        var verdicts: [MessageRateLimiter.Verdict] = []
        while verdicts.last != .flood && verdicts.count < 100_000 { verdicts.append(limiter.admit(now: Self.start, at: rate)) }
        #expect(verdicts.filter { $0 == .allow }.count == 100)
        #expect(verdicts.filter { $0 == .drop }.count == MessageRateLimiter.floodAllowance(100))
        #expect(verdicts.last == .flood)
    }

    @Test("twice the rate, sustained, is dropped in part but never closed")
    func twiceTheRate() {
        let rate = MessageRateLimiter.Rate(perSecond: 100)
        var limiter = MessageRateLimiter(rate, now: Self.start)
        let verdicts = (0..<(200 * 60)).map { tick in  // 60 s at 200 a second
            limiter.admit(now: Self.start + .milliseconds(Int64(tick) * 5), at: rate)
        }
        #expect(verdicts.contains(.drop))
        #expect(!verdicts.contains(.flood))
    }

    @Test("three times the rate is closed after about ten seconds")
    func threeTimesTheRate() {
        let rate = MessageRateLimiter.Rate(perSecond: 100)
        var limiter = MessageRateLimiter(rate, now: Self.start)
        var tick: Int64 = 0
        while limiter.admit(now: Self.start + .nanoseconds(tick * 3_333_333), at: rate) != .flood { tick += 1 }
        let seconds = Double(tick) * 3_333_333 / 1e9
        #expect(seconds > 9 && seconds < 12, "closed after \(seconds) s")
    }

    @Test("a low rate still forgives a burst of its minimum allowance")
    func lowRateBurst() {
        let rate = MessageRateLimiter.Rate(perSecond: 1)
        var limiter = MessageRateLimiter(rate, now: Self.start)
        let burst = (0...MessageRateLimiter.minimumFloodAllowance).map { _ in limiter.admit(now: Self.start, at: rate) }
        #expect(!burst.contains(.flood), "one allowed, then the allowance's worth dropped")
        let next = limiter.admit(now: Self.start, at: rate)
        #expect(next == .flood)
    }

    @Test("the warning about dropped messages comes at most once a second")
    func warning() {
        let rate = MessageRateLimiter.Rate(perSecond: 1)
        var limiter = MessageRateLimiter(rate, now: Self.start)
        let warnings = [Self.start, Self.start + .milliseconds(999), Self.start + .seconds(1)].map {
            limiter.shouldWarn(now: $0)
        }
        #expect(warnings == [true, false, true])
    }
}
