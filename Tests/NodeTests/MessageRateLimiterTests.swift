import NIOCore
import Testing

@testable import Node

@Suite("The per-connection message rate and the flood rule")
struct MessageRateLimiterTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("a burst of the rate is allowed, the next message dropped, and a second later allowed again")
    func burstThenRefill() {
        var limiter = MessageRateLimiter(perSecond: 10, now: Self.start)
        let burst = (0..<10).map { _ in limiter.admit(now: Self.start) }
        #expect(burst.allSatisfy { $0 == .allow })
        let next = limiter.admit(now: Self.start)
        #expect(next == .drop)
        let later = limiter.admit(now: Self.start + .seconds(1))
        #expect(later == .allow)
    }

    @Test("a flood at full speed is closed once its dropped messages pass the allowance")
    func fullSpeedFlood() {
        var limiter = MessageRateLimiter(perSecond: 100, now: Self.start)
        var verdicts: [MessageRateLimiter.Verdict] = []
        while verdicts.last != .flood && verdicts.count < 100_000 { verdicts.append(limiter.admit(now: Self.start)) }
        #expect(verdicts.filter { $0 == .allow }.count == 100)
        #expect(verdicts.filter { $0 == .drop }.count == MessageRateLimiter.floodAllowance(100))
        #expect(verdicts.last == .flood)
    }

    @Test("twice the rate, sustained, is dropped in part but never closed")
    func twiceTheRate() {
        var limiter = MessageRateLimiter(perSecond: 100, now: Self.start)
        let verdicts = (0..<(200 * 60)).map { tick in  // 60 s at 200 a second
            limiter.admit(now: Self.start + .milliseconds(Int64(tick) * 5))
        }
        #expect(verdicts.contains(.drop))
        #expect(!verdicts.contains(.flood))
    }

    @Test("three times the rate is closed after about ten seconds")
    func threeTimesTheRate() {
        var limiter = MessageRateLimiter(perSecond: 100, now: Self.start)
        var tick: Int64 = 0
        while limiter.admit(now: Self.start + .nanoseconds(tick * 3_333_333)) != .flood { tick += 1 }
        let seconds = Double(tick) * 3_333_333 / 1e9
        #expect(seconds > 9 && seconds < 12, "closed after \(seconds) s")
    }

    @Test("a low rate still forgives a burst of its minimum allowance")
    func lowRateBurst() {
        var limiter = MessageRateLimiter(perSecond: 1, now: Self.start)
        let burst = (0...MessageRateLimiter.minimumFloodAllowance).map { _ in limiter.admit(now: Self.start) }
        #expect(!burst.contains(.flood), "one allowed, then the allowance's worth dropped")
        let next = limiter.admit(now: Self.start)
        #expect(next == .flood)
    }

    @Test("the warning about dropped messages comes at most once a second")
    func warning() {
        var limiter = MessageRateLimiter(perSecond: 1, now: Self.start)
        let warnings = [Self.start, Self.start + .milliseconds(999), Self.start + .seconds(1)].map {
            limiter.shouldWarn(now: $0)
        }
        #expect(warnings == [true, false, true])
    }
}
