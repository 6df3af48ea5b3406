import NIOCore
import NIOEmbedded
import Testing

@testable import Node

/// The handler that ends connections with no request yet, on an `EmbeddedChannel` whose clock
/// the test moves: the grace a quiesce leaves a connection is exact, whatever the machine's load.
@Suite("Connections with no request yet, at shutdown")
struct UnstartedConnectionCloserTests {
    /// Records the quiesce events that pass the closer.
    final class QuiesceRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var quiesces = 0
        var reads: [String] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            reads.append(String(buffer: unwrapInboundIn(data)))
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { quiesces += 1 }
        }
    }

    private func channel() throws -> (EmbeddedChannel, UnstartedConnectionCloser, QuiesceRecorder) {
        let closer = UnstartedConnectionCloser(firstRequestTimeout: .seconds(60))
        let recorder = QuiesceRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([closer, recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, closer, recorder)
    }

    @Test("a connection that has sent nothing is closed one grace after the quiesce, not at it")
    func closedAfterGrace() throws {
        let (channel, _, recorder) = try channel()
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(channel.isActive, "its request may be in the socket, unread")
        channel.embeddedEventLoop.advanceTime(by: UnstartedConnectionCloser.quiesceGrace - .milliseconds(1))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive, "closed once the grace is over")
        #expect(recorder.quiesces == 0, "HTTP handling never started: nothing behind it hears of it")
    }

    @Test("a request that arrives within the grace is read, and the quiesce is remembered for once it is served")
    func requestWithinGrace() throws {
        let (channel, closer, recorder) = try channel()
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        channel.embeddedEventLoop.advanceTime(by: UnstartedConnectionCloser.quiesceGrace - .milliseconds(1))
        try channel.writeInbound(ByteBuffer(string: "GET /health HTTP/1.1\r\n\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(channel.isActive, "the grace's close was called off")
        #expect(recorder.reads == ["GET /health HTTP/1.1\r\n\r\n"])
        #expect(closer.quiesceRequested)
        _ = try? channel.finish()
    }

    @Test("a quiesce after the first bytes passes on to the HTTP handlers at once")
    func quiesceAfterFirstBytes() throws {
        let (channel, closer, recorder) = try channel()
        try channel.writeInbound(ByteBuffer(string: "GET /"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(recorder.quiesces == 1)
        #expect(closer.quiesceRequested)
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(channel.isActive, "closed by HTTP handling once its response is written, not here")
        _ = try? channel.finish()
    }

    @Test("a connection whose first request does not arrive within HTTP_IDLE_TIMEOUT is closed")
    func firstRequestTimeout() throws {
        let (channel, _, _) = try channel()
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }
}
