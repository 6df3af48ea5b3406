import Testing

@testable import Broker

@Suite("Redis deadlines: bytes waiting in the socket")
struct UnreadBytesGraceTests {
    @Test("waiting bytes excuse a deadline once per arrival; a count that never moves (segments out of order behind a lost one) does not")
    func oncePerArrival() {
        var grace = UnreadBytesGrace()
        let nothingWaiting = grace.excuses(unread: 0)
        #expect(!nothingWaiting, "nothing waiting: the deadline stands")
        let unreadAnswer = grace.excuses(unread: 768)
        #expect(unreadAnswer, "an answer the busy loop has not read yet")
        let sameCount = grace.excuses(unread: 768)
        #expect(!sameCount, "still unread a timeout later, or stuck out of order: no second excuse")
        let moreBytes = grace.excuses(unread: 1536)
        #expect(moreBytes, "more bytes arrived since")
        let sameAgain = grace.excuses(unread: 1536)
        #expect(!sameAgain)
    }

    @Test("a read starts afresh")
    func readResets() {
        var grace = UnreadBytesGrace()
        let beforeRead = grace.excuses(unread: 768)
        #expect(beforeRead)
        grace.bytesRead()
        let afterRead = grace.excuses(unread: 768)
        #expect(afterRead, "the same size, other bytes")
    }
}
