import Broker
import NIOEmbedded
import Synchronization
import Testing

@testable import Node

@Suite("Other nodes' gap announcements, reported once per window")
struct PeerGapReporterTests {
    @Test("announcements arriving within the window are reported once, together; a later one opens a new window")
    func gathersAWindow() throws {
        let loop = EmbeddedEventLoop()
        let reports = Mutex<[PeerGap]>([])
        let reporter = PeerGapReporter(loop: loop) { gap in reports.withLock { $0.append(gap) } }
        reporter.add(PeerGap(topics: [try Topic("a")], origins: ["n1"]))
        reporter.add(PeerGap(topics: [try Topic("b")], origins: ["n1"]))
        reporter.add(PeerGap(users: ["u"], origins: ["n2"]))
        loop.advanceTime(by: PeerGapReporter.window - .milliseconds(1))
        #expect(reports.withLock { $0 }.isEmpty, "the window is still open")
        loop.advanceTime(by: .milliseconds(1))
        #expect(reports.withLock { $0 } == [PeerGap(topics: [try Topic("a"), try Topic("b")], users: ["u"], origins: ["n1", "n2"])])

        reporter.add(PeerGap(topics: [try Topic("c")], origins: ["n3"]))
        loop.advanceTime(by: PeerGapReporter.window)
        #expect(reports.withLock { $0 }.count == 2)
        #expect(reports.withLock { $0 }.last == PeerGap(topics: [try Topic("c")], origins: ["n3"]))
    }
}
