// chorus-floor-nio: bench/floor/floor.c's job on SwiftNIO, as a second floor.
//
//   chorus-floor-nio HOST PORT REDIS_PORT
//
// The same interface and path as the C floor (Nchan's `/sub/<topic>`, `/pub/<topic>`, `/health`;
// `PUBLISH` / `SUBSCRIBE floor:<topic>`), with the delivery write path Chorus uses: one event loop,
// every socket a NIO channel with one handler after the pipeline's head, each message framed
// once and written to each subscriber's context, each subscriber flushed once when NIO has
// read all Redis had (`channelReadComplete`), as the C floor writes after reading to EAGAIN.
// Chorus minus Chorus: what is left between this and the C floor is NIO's (and Swift's); what is
// left between Chorus and this is Chorus's own (threads, hub, envelope, registry).
//
// `FLOOR_HANDOFF=inbox` moves the Redis subscriber connection to a second event loop that hands
// what it reads to the subscribers' loop through one inbox with at most one drain queued, as
// Chorus's reader thread does; `FLOOR_HANDOFF=naive` hands each read over in a task of its own.
//
// A benchmark instrument, not a server: no limits (no writability check, no bound on a
// socket's queue), no ping or close replies, no authentication, no TLS.

import Crypto
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The topics and their local subscribers. Only touched on the one event loop.
final class Hub: @unchecked Sendable {
    var subscribers: [String: [SocketHandler]] = [:]
    var redisSub: (any Channel)?
    var redisPub: (any Channel)?

    func subscribe(_ handler: SocketHandler, to topic: String) {
        if subscribers[topic] == nil, let redisSub {
            var command = redisSub.allocator.buffer(capacity: 64)
            Self.appendCommand([Array("SUBSCRIBE".utf8), Array("floor:\(topic)".utf8)], to: &command)
            redisSub.writeAndFlush(command, promise: nil)
        }
        subscribers[topic, default: []].append(handler)
    }

    func unsubscribe(_ handler: SocketHandler, from topic: String) {
        subscribers[topic]?.removeAll { $0 === handler }
    }

    /// Appends a command for Redis: RESP's array of bulk strings.
    static func appendCommand(_ parts: [[UInt8]], to buffer: inout ByteBuffer) {
        buffer.writeString("*\(parts.count)\r\n")
        for part in parts {
            buffer.writeString("$\(part.count)\r\n")
            buffer.writeBytes(part)
            buffer.writeString("\r\n")
        }
    }
}

/// One client socket: an HTTP request first (`/health`, or an upgrade), then WebSocket frames.
final class SocketHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let hub: Hub
    private var input = ByteBuffer()
    private var upgraded = false
    private var topic: String?
    private var isPublisher = false
    private(set) var context: ChannelHandlerContext?

    init(hub: Hub) { self.hub = hub }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelInactive(context: ChannelHandlerContext) {
        if let topic, !isPublisher { hub.unsubscribe(self, from: topic) }
        self.context = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        input.writeBuffer(&bytes)
        if !upgraded { handshake(context: context) }
        if upgraded { frames(context: context) }
    }

    /// Writes a frame, flushed when the Redis subscriber's reads end.
    func deliver(_ frame: ByteBuffer) {
        context?.write(wrapOutboundOut(frame), promise: nil)
    }

    private func handshake(context: ChannelHandlerContext) {
        let view = input.readableBytesView
        guard let end = view.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
        let head = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
        input.moveReaderIndex(forwardBy: end.upperBound - view.startIndex)
        let lines = head.split(separator: "\r\n")
        let path = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        if path == "/health" {
            var ok = context.channel.allocator.buffer(capacity: 80)
            ok.writeString("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ok)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        let key = lines.first { $0.lowercased().hasPrefix("sec-websocket-key:") }
            .map { String($0.dropFirst("sec-websocket-key:".count).drop { $0 == " " }) }
        guard let key, path.hasPrefix("/sub/") || path.hasPrefix("/pub/") else {
            context.close(promise: nil)
            return
        }
        let digest = Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        var reply = context.channel.allocator.buffer(capacity: 160)
        reply.writeString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: \(base64(Array(digest)))\r\n\r\n")
        context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        upgraded = true
        isPublisher = path.hasPrefix("/pub/")
        let name = String(path.dropFirst(5))
        topic = name
        if !isPublisher { hub.subscribe(self, to: name) }
    }

    /// Client frames (masked): a publisher's text frames go to Redis in one write per read, also
    /// when the read ends with a close.
    private func frames(context: ChannelHandlerContext) {
        guard let topic, let pub = hub.redisPub else { return }
        let channel = Array("floor:\(topic)".utf8)
        var commands = pub.allocator.buffer(capacity: 256)
        var closing = false
        while !closing, let frame = nextFrame() {
            switch frame.opcode {
            case 0x1 where isPublisher: Hub.appendCommand([Array("PUBLISH".utf8), channel, frame.payload], to: &commands)
            case 0x8: closing = true
            default: break
            }
        }
        if commands.readableBytes > 0 { pub.writeAndFlush(commands, promise: nil) }
        if closing { context.close(promise: nil) } else { input.discardReadBytes() }
    }

    private func nextFrame() -> (opcode: UInt8, payload: [UInt8])? {
        let view = input.readableBytesView
        let start = view.startIndex
        guard view.count >= 2 else { return nil }
        let opcode = view[start] & 0x0F
        var length = Int(view[start + 1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard view.count >= 4 else { return nil }
            length = Int(view[start + 2]) << 8 | Int(view[start + 3])
            offset = 4
        } else if length == 127 {
            guard view.count >= 10 else { return nil }
            length = (0..<8).reduce(0) { $0 << 8 | Int(view[start + 2 + $1]) }
            offset = 10
        }
        guard view.count >= offset + 4 + length else { return nil }
        let mask = Array(view[(start + offset)..<(start + offset + 4)])
        var payload = Array(view[(start + offset + 4)..<(start + offset + 4 + length)])
        for i in payload.indices { payload[i] ^= mask[i & 3] }
        input.moveReaderIndex(forwardBy: offset + 4 + length)
        return (opcode, payload)
    }
}

/// The subscriber connection to Redis: its `message`s go through a ``Fanout``, on this loop
/// (flushed when the reads end) or handed to the subscribers' loop.
final class RedisSubscriberHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let hub: Hub
    private var input = ByteBuffer()
    /// Without a hand-off: this read's writes, flushed at `channelReadComplete`.
    private var fanout: Fanout
    /// With `FLOOR_HANDOFF`: the subscribers' loop, to which this connection, reading on a loop
    /// of its own, hands what it reads (as Chorus's reader thread hands batches to its loops).
    /// Nil: everything on one loop.
    private let deliveryLoop: (any EventLoop)?
    /// With `FLOOR_HANDOFF=inbox`: where the reads' messages wait for the one queued drain.
    private let inbox: Inbox?

    init(hub: Hub, deliveryLoop: (any EventLoop)? = nil, inbox: Inbox? = nil) {
        self.hub = hub
        self.fanout = Fanout(hub: hub)
        self.deliveryLoop = deliveryLoop
        self.inbox = inbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        input.writeBuffer(&bytes)
        guard let deliveryLoop else {
            while let (channel, payload) = nextMessage() { fanout.deliver(channel, payload, allocator: context.channel.allocator) }
            input.discardReadBytes()
            return
        }
        var read: [(String, [UInt8])] = []
        while let message = nextMessage() { read.append(message) }
        input.discardReadBytes()
        let batch = read
        guard !batch.isEmpty else { return }
        // `naive`: each read's messages in a task of their own; `inbox`: at most one drain
        // queued, taking everything that waits (as Chorus's DeliveryInbox).
        if let inbox, !inbox.put(batch) { return }
        let (hub, allocator, inbox) = (self.hub, context.channel.allocator, self.inbox)
        deliveryLoop.execute {
            var drain = Fanout(hub: hub)
            for (channel, payload) in inbox?.takeAll() ?? batch { drain.deliver(channel, payload, allocator: allocator) }
            drain.flush()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if deliveryLoop == nil { fanout.flush() }
    }

    /// The next complete `*3 $7 message $n channel $m payload`, skipping other replies.
    private func nextMessage() -> (String, [UInt8])? {
        while input.readableBytes > 0 {
            let saved = input.readerIndex
            guard let value = readValue() else {
                input.moveReaderIndex(to: saved)
                return nil
            }
            if value.count == 3, value[0] == Array("message".utf8) {
                return (String(decoding: value[1], as: UTF8.self), value[2])
            }
        }
        return nil
    }

    /// One RESP value: an array's bulk strings, or an empty array for anything else; nil when
    /// the buffer does not hold all of it yet.
    private func readValue() -> [[UInt8]]? {
        guard let line = readLine(), let kind = line.first else { return nil }
        let number = Int(String(decoding: line.dropFirst(), as: UTF8.self)) ?? 0
        switch kind {
        case UInt8(ascii: "*"):
            var parts: [[UInt8]] = []
            for _ in 0..<max(0, number) {
                guard let part = readValue() else { return nil }
                parts.append(part.first ?? [])
            }
            return parts
        case UInt8(ascii: "$"):
            guard number >= 0 else { return [[]] }
            guard input.readableBytes >= number + 2, let bytes = input.readBytes(length: number) else { return nil }
            input.moveReaderIndex(forwardBy: 2)
            return [bytes]
        default:
            return []
        }
    }

    private func readLine() -> [UInt8]? {
        let view = input.readableBytesView
        guard let nl = view.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = Array(view[view.startIndex..<nl].dropLast())
        input.moveReaderIndex(forwardBy: nl - view.startIndex + 1)
        return line
    }
}

/// One round of delivery on the subscribers' loop: each message framed once and written to its
/// topic's subscribers, then each subscriber written to flushed once.
struct Fanout {
    let hub: Hub
    private var touched: [String] = []

    init(hub: Hub) { self.hub = hub }

    mutating func deliver(_ channel: String, _ payload: [UInt8], allocator: ByteBufferAllocator) {
        let topic = String(channel.dropFirst(6))
        guard channel.hasPrefix("floor:"), let subscribers = hub.subscribers[topic] else { return }
        var frame = allocator.buffer(capacity: payload.count + 10)
        frame.writeInteger(UInt8(0x81))
        if payload.count < 126 {
            frame.writeInteger(UInt8(payload.count))
        } else if payload.count < 65536 {
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(payload.count))
        } else {
            frame.writeInteger(UInt8(127))
            frame.writeInteger(UInt64(payload.count))
        }
        frame.writeBytes(payload)
        for subscriber in subscribers { subscriber.deliver(frame) }
        if !touched.contains(topic) { touched.append(topic) }
    }

    mutating func flush() {
        for topic in touched {
            for subscriber in hub.subscribers[topic] ?? [] { subscriber.context?.flush() }
        }
        touched.removeAll(keepingCapacity: true)
    }
}

/// Messages read on the reader's loop, waiting for the subscribers' loop to drain them.
final class Inbox: @unchecked Sendable {
    private let lock = NIOLock()
    private var waiting: [(String, [UInt8])] = []

    /// True when the inbox was empty: the caller queues a drain.
    func put(_ batch: [(String, [UInt8])]) -> Bool {
        lock.withLock {
            let first = waiting.isEmpty
            waiting.append(contentsOf: batch)
            return first
        }
    }

    func takeAll() -> [(String, [UInt8])] {
        lock.withLock {
            defer { waiting = [] }
            return waiting
        }
    }
}

/// Replies to `PUBLISH` are read and dropped.
final class DiscardHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

func base64(_ bytes: [UInt8]) -> String {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        let n = min(3, bytes.count - i)
        let v = (UInt32(bytes[i]) << 16) | (n > 1 ? UInt32(bytes[i + 1]) << 8 : 0) | (n > 2 ? UInt32(bytes[i + 2]) : 0)
        out.append(table[Int(v >> 18 & 63)])
        out.append(table[Int(v >> 12 & 63)])
        out.append(n > 1 ? table[Int(v >> 6 & 63)] : UInt8(ascii: "="))
        out.append(n > 2 ? table[Int(v & 63)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}

@main
struct FloorNIO {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 4, let port = Int(arguments[2]), let redisPort = Int(arguments[3]) else {
            print("usage: chorus-floor-nio HOST PORT REDIS_PORT")
            exit(2)
        }
        let mode = getenv("FLOOR_HANDOFF").map { String(cString: $0) } ?? ""
        guard ["", "naive", "inbox"].contains(mode) else {
            print("chorus-floor-nio: FLOOR_HANDOFF is empty, naive or inbox, not '\(mode)'")
            exit(2)
        }
        let handoff = !mode.isEmpty
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let readerGroup = handoff ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : group
        let hub = Hub()

        func connectRedis(_ handler: any ChannelHandler & Sendable, on group: MultiThreadedEventLoopGroup) async throws -> any Channel {
            try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { $0.pipeline.addHandler(handler) }
                .connect(host: "127.0.0.1", port: redisPort).get()
        }
        let redisSub = try await connectRedis(
            RedisSubscriberHandler(hub: hub, deliveryLoop: handoff ? loop : nil, inbox: mode == "inbox" ? Inbox() : nil), on: readerGroup)
        let redisPub = try await connectRedis(DiscardHandler(), on: group)
        try await loop.submit { hub.redisSub = redisSub; hub.redisPub = redisPub }.get()

        // SIGTERM ends the process (the default action): nothing here needs an orderly stop.
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { $0.pipeline.addHandler(SocketHandler(hub: hub)) }
            .bind(host: arguments[1], port: port).get()
        try await server.closeFuture.get()
    }
}
