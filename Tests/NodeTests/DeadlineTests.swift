import ChorusClient
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// ``withDeadline(_:_:_:)``: the test support's bound for waits that do not end on cancellation
/// (a WebSocket upgrade nobody answers, a spawn on the spawning thread).
@Suite("Deadlines for waits that ignore cancellation")
struct DeadlineTests {
    @Test("a WebSocket upgrade that the server never answers fails at the deadline, naming what it waited for")
    func silentServer() async throws {
        // A socket that listens and never accepts: the kernel completes the TCP handshake, and the
        // upgrade request waits in its queue for an answer that never comes.
        let listener = LoopbackPort.tcpSocket()
        try #require(listener >= 0)
        defer { close(listener) }
        let port = try LoopbackPort.reserve()
        try #require(LoopbackPort.withAddress(port) { bind(listener, $0, $1) } == 0 && listen(listener, 8) == 0)
        let started = ContinuousClock.now
        do {
            _ = try await withDeadline(.milliseconds(500), "upgrade on port \(port)") {
                try await WebSocketClient.connect(port: port)
            }
            Issue.record("the upgrade was answered")
        } catch let failure as TestFailure {
            #expect(failure.description.contains("upgrade on port \(port): no answer within"))
        }
        // Without the deadline this wait never ends; the bound is far above a loaded machine's
        // scheduling delays (one run on a 2-core machine busy with builds took 10.8 s).
        #expect(ContinuousClock.now - started < .seconds(60))
    }

    @Test("a body that answers in time gives its result; one that throws, its error")
    func answers() async throws {
        #expect(try await withDeadline(.seconds(30), "quick") { 42 } == 42)
        await #expect(throws: TestFailure.self) {
            try await withDeadline(.seconds(30), "failing") { () async throws -> Int in throw TestFailure("inner") }
        }
    }

    @Test("a body blocked on a thread of its own does not hold the caller past the deadline")
    func blockedThread() async throws {
        let started = ContinuousClock.now
        await #expect(throws: TestFailure.self) {
            try await withDeadline(.milliseconds(200), "a blocked thread") {
                try await onOwnThread { sleep(120) }
            }
        }
        // Far below the blocked body's 120 s, far above a loaded machine's scheduling delays.
        #expect(ContinuousClock.now - started < .seconds(60))
    }
}
