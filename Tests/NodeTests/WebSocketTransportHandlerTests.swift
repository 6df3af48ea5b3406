import NIOCore
import NIOEmbedded
import Testing

@testable import Node

/// The transport alone, on an `EmbeddedChannel`, with a delegate that records what it is
/// handed: no node, no sockets, no topics.
@Suite("The WebSocket transport on its own")
struct WebSocketTransportHandlerTests {
    final class Recorder: WebSocketTransportDelegate {
        var texts: [String] = []
        var binaries = 0
        var droppedNotices = 0
        var closes: [UInt16] = []
        var opened = false
        var closed = false

        func transportDidOpen(_ transport: WebSocketTransport) { opened = true }
        func transport(_ transport: WebSocketTransport, didReceiveText message: ByteBuffer) {
            texts.append(String(buffer: message))
        }
        func transport(_ transport: WebSocketTransport, didReceiveBinary message: ByteBuffer) { binaries += 1 }
        func transport(_ transport: WebSocketTransport, answeredDropped text: ByteBuffer) -> Bool { false }
        func transportIsDroppingMessages(_ transport: WebSocketTransport) { droppedNotices += 1 }
        func transport(_ transport: WebSocketTransport, willCloseWith code: UInt16, reason: String) { closes.append(code) }
        func transportDidClose(_ transport: WebSocketTransport) { closed = true }
    }

    /// Counts the reads that reach the pipeline's head (that is, the socket), and can hold
    /// writes there, as a socket whose peer does not read would.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var reads = 0
        var holdWrites = false
        private var held: [EventLoopPromise<Void>?] = []

        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if holdWrites {
                held.append(promise)
            } else {
                context.write(data, promise: promise)
            }
        }
    }

    struct Harness {
        let channel = EmbeddedChannel()
        let transport: WebSocketTransport
        let recorder = Recorder()
        let reads = ReadCounter()
        let counters = NodeCounters()

        init(
            perSecond: Int = 100, maxMessageSize: Int = 1 << 20, bytesPerSecond: Int = 1 << 20,
            deflate: PerMessageDeflate? = nil
        ) throws {
            transport = WebSocketTransport(
                maxMessageSize: maxMessageSize, maxMessagesPerSecond: perSecond, maxBytesPerSecond: bytesPerSecond,
                counters: counters,
                deflate: deflate.map { [loop = channel.embeddedEventLoop] in ($0, OutboundDeflate(minimumSize: 256, loops: [loop])) })
            transport.delegate = recorder
            try channel.pipeline.syncOperations.addHandler(reads)
            try channel.pipeline.syncOperations.addHandler(transport)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        }

        func receive(_ frames: [UInt8]...) throws {
            try channel.writeInbound(ByteBuffer(bytes: frames.flatMap { $0 }))
        }

        /// The frames written so far, as (opcode, payload).
        func written() throws -> [(UInt8, [UInt8])] {
            var frames: [(UInt8, [UInt8])] = []
            while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
                let first = buffer.readInteger(as: UInt8.self)!
                var length = Int(buffer.readInteger(as: UInt8.self)!)
                if length == 126 { length = Int(buffer.readInteger(as: UInt16.self)!) }
                frames.append((first & 0x0F, buffer.readBytes(length: length)!))
            }
            return frames
        }

        func setWritable(_ writable: Bool) {
            channel.isWritable = writable
            channel.pipeline.fireChannelWritabilityChanged()
        }
    }

    static func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        WebSocketFrameReaderTests.frame(opcode, payload, fin: fin)
    }

    @Test("text messages reach the delegate whole; a ping is answered with its payload")
    func messagesAndPings() throws {
        let harness = try Harness()
        #expect(harness.recorder.opened)
        try harness.receive(Self.frame(0x1, Array("hel".utf8), fin: false), Self.frame(0x9, [7]), Self.frame(0x0, Array("lo".utf8)))
        #expect(harness.recorder.texts == ["hello"])
        let written = try harness.written()
        #expect(written.count == 1 && written[0].0 == 0xA && written[0].1 == [7])
    }

    @Test("while the channel is not writable, reads are held; they pass on once it is writable again")
    func readsHeldWhileNotWritable() throws {
        let harness = try Harness()
        harness.channel.read()
        #expect(harness.reads.reads == 1)
        harness.setWritable(false)
        harness.channel.read()
        harness.channel.read()
        #expect(harness.reads.reads == 1, "no read reaches the socket while over the pending limit")
        harness.setWritable(true)
        #expect(harness.reads.reads == 2, "one held read passes on")
    }

    @Test("work charged to the read budget (a history page) pauses reading like bytes read; work charged during a pause extends it, by at most 4 s")
    func workCharged() throws {
        // A burst of 4,096 bytes, then 1,024 a second: work adds at most 4,096 bytes of debt.
        let harness = try Harness(maxMessageSize: 4096, bytesPerSecond: 1024)
        harness.channel.read()
        harness.transport.charge(work: 3072)
        #expect(harness.counters.readsPaused.load(ordering: .relaxed) == 0, "within the burst")
        harness.transport.charge(work: 3072)  // 2,048 bytes of debt: two seconds
        #expect(harness.counters.readsPaused.load(ordering: .relaxed) == 1)
        harness.channel.read()
        #expect(harness.reads.reads == 1, "no read during the pause")
        harness.transport.charge(work: 10_000)  // charged when the first pause ends, as 4 s at most
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(2100))
        #expect(harness.reads.reads == 1, "still paused for the work charged meanwhile")
        #expect(harness.counters.readsPaused.load(ordering: .relaxed) == 2)
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(3800))
        #expect(harness.reads.reads == 1)
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(300))
        #expect(harness.reads.reads == 2, "the held read passes on after 4 s, not the 10 s of the whole charge")
    }

    @Test("past its read budget a connection is not read until the debt is repaid: the messages it already sent wait, none is dropped")
    func readBudgetPauses() throws {
        // A burst of 4,096 bytes (one largest message), then 1,024 a second.
        let harness = try Harness(maxMessageSize: 4096, bytesPerSecond: 1024)
        harness.channel.read()
        #expect(harness.reads.reads == 1)
        let text = { (n: Int) in Self.frame(0x1, Array("\(n)".utf8) + [UInt8](repeating: 0x20, count: 2999)) }
        try harness.receive(text(1), text(2), text(3))
        #expect(harness.recorder.texts.count == 2, "the second overdrew the budget: the third waits")
        #expect(harness.counters.readsPaused.load(ordering: .relaxed) == 1)
        harness.channel.read()
        #expect(harness.reads.reads == 1, "no read reaches the socket during the pause")
        // 1,904 bytes of debt at 1,024 a second: just under 1.86 s.
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1800))
        #expect(harness.recorder.texts.count == 2)
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        #expect(harness.recorder.texts.map { $0.prefix(1) } == ["1", "2", "3"], "nothing dropped, in order")
        #expect(harness.reads.reads == 1, "the third overdrew it again: still paused")
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(harness.reads.reads == 2, "the held read passes on once the debt is repaid")
        #expect(harness.recorder.closes.isEmpty)
    }

    @Test("a paused connection is not timed out for silence, and a close by the node ends the pause so that the client's reply is read")
    func pauseAndClose() throws {
        let harness = try Harness(maxMessageSize: 4096, bytesPerSecond: 1024)
        let text = Self.frame(0x1, [UInt8](repeating: 0x20, count: 3000))
        try harness.receive(text, text)
        harness.channel.read()
        #expect(harness.reads.reads == 0, "paused")
        let ping = OutboundFrame.ping(allocator: harness.channel.allocator)
        harness.transport.keepAlive(now: .now() + .seconds(3600), timeout: .seconds(1), ping: ping)
        #expect(harness.recorder.closes.isEmpty, "its bytes wait in the kernel: not silent")
        harness.transport.close(.goingAway, reason: "node shutting down")
        #expect(harness.reads.reads == 1, "the held read passes on: the close reply can come in")
        #expect(harness.recorder.closes == [1001])
    }

    @Test("a ping (or any reply) while over the pending limit closes 4008 and queues no pong")
    func replyOverTheLimit() throws {
        let harness = try Harness()
        harness.setWritable(false)
        try harness.receive(Self.frame(0x9, [1]))
        let written = try harness.written()
        #expect(written.map(\.0) == [0x8], "only the close frame")
        #expect(written.first.map { Array($0.1.prefix(2)) } == [0x0F, 0xA8])  // 4008
        #expect(harness.recorder.closes == [4008])
        harness.transport.send(text: Array("late".utf8))
        #expect(try harness.written().isEmpty, "nothing after the close frame")
    }

    @Test("deliveries are taken only when wanted, and over the limit close 4008")
    func deliveries() throws {
        let harness = try Harness()
        let frame = OutboundFrame.text(Array("m".utf8), allocator: harness.channel.allocator)
        #expect(!harness.transport.write(frame), "not wanted before the protocol says so")
        harness.transport.deliveriesWanted = true
        #expect(harness.transport.write(frame))
        harness.setWritable(false)
        #expect(!harness.transport.write(frame))
        #expect(harness.recorder.closes == [4008])
    }

    @Test("pings, pongs and binary frames count against the rate; a flood is dropped, then closed 1008")
    func flood() throws {
        let harness = try Harness(perSecond: 10)
        var burst: [UInt8] = []
        for index in 0..<(10 + MessageRateLimiter.minimumFloodAllowance + 1) {
            burst += Self.frame([0x9, 0xA, 0x2][index % 3], [1])
        }
        burst += Self.frame(0x1, Array("after the flood".utf8))
        try harness.receive(burst)
        let written = try harness.written()
        #expect(written.filter { $0.0 == 0xA }.count <= 4, "pongs only for the pings within the rate")
        #expect(written.last?.0 == 0x8)
        #expect(harness.recorder.closes == [1008])
        #expect(harness.recorder.droppedNotices == 1)
        #expect(harness.recorder.texts.isEmpty, "nothing is read past the flood")
    }

    @Test("a client that sends a close frame but does not read is dropped after the close timeout")
    func closeWithoutReading() throws {
        let harness = try Harness()
        harness.reads.holdWrites = true
        harness.setWritable(false)
        try harness.receive(Self.frame(0x8, [0x03, 0xE8]))
        #expect(harness.channel.isActive && !harness.recorder.closed, "the close reply is not out")
        harness.channel.embeddedEventLoop.advanceTime(by: WebSocketTransport.closeTimeout)
        #expect(!harness.channel.isActive)
        #expect(harness.recorder.closed)
    }

    @Test("after the node's close frame, a compressed message is not inflated: a zip bomb in flight does not hold up the client's close reply")
    func bombWhileClosing() throws {
        let harness = try Harness(deflate: PerMessageDeflate(clientNoContextTakeover: true))
        harness.transport.close(.goingAway, reason: "shutting down")
        let bomb = WebSocketFrameReaderTests.frame(
            0x2, MessageDeflater().compress([UInt8](repeating: 0, count: 4 << 20)), reserved: 0x40)
        try harness.receive(bomb, Self.frame(0x8, [0x03, 0xE9]))
        #expect(!harness.channel.isActive, "the client's close was read: the connection ended without the timeout")
        #expect(harness.recorder.closes == [1001])
        #expect(harness.counters.messagesInflated.load(ordering: .relaxed) == 0)
    }

    @Test("invalid UTF-8 closes 1007 without reaching the delegate")
    func invalidUTF8() throws {
        let harness = try Harness()
        try harness.receive(Self.frame(0x1, [0x61, 0xC3], fin: false), Self.frame(0x0, [0x28]))
        #expect(harness.recorder.texts.isEmpty)
        #expect(harness.recorder.closes == [1007])
    }
}
