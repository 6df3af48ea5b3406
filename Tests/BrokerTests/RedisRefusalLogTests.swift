import Testing

@testable import Broker

@Suite("When Redis's refusals of publishes are logged")
struct RedisRefusalLogTests {
    let start = ContinuousClock.now

    @Test("the first refusal of a kind is logged at once; more of it within the minute are counted into the next line, which comes a minute later")
    func oncePerMinutePerKind() {
        var log = RedisRefusalLog()
        let oom = "OOM command not allowed when used memory > 'maxmemory'."
        #expect(log.refused(3, error: oom, now: start) == 3)
        #expect(log.refused(5, error: oom, now: start + .seconds(30)) == nil)
        #expect(log.refused(1, error: oom, now: start + .seconds(59)) == nil)
        #expect(log.refused(2, error: oom, now: start + .seconds(60)) == 8, "those since the last line")
    }

    @Test("another kind of refusal is logged at once; kinds that alternate are each still logged once a minute, each with its own count")
    func kindsApart() {
        var log = RedisRefusalLog()
        let (oom, noperm) = ("OOM command not allowed", "NOPERM this user has no permissions to access the channel")
        #expect(log.refused(1, error: oom, now: start) == 1)
        #expect(log.refused(1, error: noperm, now: start + .seconds(1)) == 1)
        #expect(log.refused(2, error: oom, now: start + .seconds(2)) == nil)
        #expect(log.refused(3, error: noperm, now: start + .seconds(3)) == nil)
        #expect(log.refused(1, error: oom, now: start + .seconds(60)) == 3)
        #expect(log.refused(1, error: noperm, now: start + .seconds(61)) == 4)
    }
}
