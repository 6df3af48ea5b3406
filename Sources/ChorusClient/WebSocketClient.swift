import NIOCore
import Synchronization
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A small WebSocket client on SwiftNIO, for tests and tools that talk to a Chorus node.
///
/// Frames arrive in order through ``next(timeout:)``. Pings are answered automatically unless
/// `autoPong` is false (to play a client that has gone silent).
public final class WebSocketClient: Sendable {
    /// Something the server sent, or the end of the connection.
    public enum Event: Sendable, Equatable {
        case text(String)
        case binary([UInt8])
        case ping
        case pong
        /// A close frame; `code` is nil when the frame had no payload.
        case close(code: UInt16?, reason: String)
        /// The TCP connection ended.
        case disconnected
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The server answered the upgrade with a plain HTTP response.
        case upgradeRefused(status: Int, body: String)
        /// Nothing arrived within the timeout.
        case timeout
        /// The connection ended before the expected event.
        case disconnected
        /// The server closed the connection before the expected event.
        case closed(code: UInt16?, reason: String)

        public var description: String {
            switch self {
            case .upgradeRefused(let status, let body): "upgrade refused with HTTP \(status): \(body)"
            case .timeout: "timed out waiting for the server"
            case .disconnected: "connection closed"
            case .closed(let code, let reason): "server closed the connection (\(code.map(String.init) ?? "no code")) \(reason)"
            }
        }
    }

    private enum UpgradeResult: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case notUpgraded(NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>)
    }

    /// The connection's channel, for closing it.
    private let channel: any Channel
    /// Writes frames while the reader's `executeThenClose` runs; after it ends a write throws.
    private let outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>
    private let events: EventQueue
    private let reader: Task<Void, Never>
    private let paused: Shared

    private init(
        channel: any Channel, outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>, events: EventQueue,
        reader: Task<Void, Never>, paused: Shared
    ) {
        self.channel = channel
        self.outbound = outbound
        self.events = events
        self.reader = reader
        self.paused = paused
    }

    /// Starts the task that owns the connection (NIO's `executeThenClose`: the channel closes when
    /// the server's side ends) and returns once it hands over the writer.
    private static func start(_ asyncChannel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, autoPong: Bool) async -> WebSocketClient {
        let events = EventQueue()
        let paused = Shared(false)
        var reader: Task<Void, Never>?
        // `withCheckedContinuation` runs its body before it suspends (so `reader` is set), and
        // `executeThenClose` runs its body at once whatever the channel's state (so the writer
        // always comes).
        let outbound = await withCheckedContinuation { (handOver: CheckedContinuation<NIOAsyncChannelOutboundWriter<WebSocketFrame>, Never>) in
            reader = Task {
                do {
                    try await asyncChannel.executeThenClose { inbound, outbound in
                        handOver.resume(returning: outbound)
                        try await read(inbound, answeringWith: outbound, into: events, paused: paused, autoPong: autoPong)
                    }
                } catch {}
                await events.push(.disconnected)
            }
        }
        return WebSocketClient(channel: asyncChannel.channel, outbound: outbound, events: events, reader: reader!, paused: paused)
    }

    /// Turns the server's frames into events until the connection ends; pings are answered (when
    /// `autoPong`) and a close frame is echoed, as RFC 6455 asks of an endpoint (5.5.1).
    private static func read(
        _ inbound: NIOAsyncChannelInboundStream<WebSocketFrame>, answeringWith outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>,
        into events: EventQueue, paused: Shared, autoPong: Bool
    ) async throws {
        for try await frame in inbound {
            while paused.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
            var data = frame.unmaskedData
            switch frame.opcode {
            case .text: await events.push(.text(data.readString(length: data.readableBytes) ?? ""))
            case .binary: await events.push(.binary(data.readBytes(length: data.readableBytes) ?? []))
            case .ping:
                await events.push(.ping)
                if autoPong {
                    // Never awaited here: while the connection is not writable (our own
                    // sends backed up) the reader would stop reading, the server's sends
                    // would back up in turn, and neither side would move again.
                    let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: data)
                    Task { try? await outbound.write(pong) }
                }
            case .pong: await events.push(.pong)
            case .connectionClose:
                var reply = ByteBuffer()
                if let code = data.getInteger(at: data.readerIndex, as: UInt16.self) { reply.writeInteger(code) }
                let answer = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: reply)
                Task { try? await outbound.write(answer) }  // not awaited, as the pong
                let code = data.readInteger(as: UInt16.self)
                await events.push(.close(code: code, reason: data.readString(length: data.readableBytes) ?? ""))
            default: break
            }
        }
    }

    /// Opens a WebSocket to `ws://host:port/path`.
    /// - Parameter receiveBufferSize: a fixed socket receive buffer (turns off the kernel's autotuning).
    /// - Throws: ``Failure/upgradeRefused(status:body:)`` when the server answers in plain HTTP.
    public static func connect(
        host: String = "127.0.0.1", port: Int, path: String = "/ws", headers: [(String, String)] = [],
        autoPong: Bool = true, maxFrameSize: Int = 1 << 24, receiveBufferSize: Int? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocketClient {
        var bootstrap = ClientBootstrap(group: group).channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        if let receiveBufferSize {
            bootstrap = bootstrap.channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferSize))
        }
        let upgrade: EventLoopFuture<UpgradeResult> = try await bootstrap
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<UpgradeResult>(
                        maxFrameSize: maxFrameSize,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                .websocket(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                            }
                        })
                    var requestHeaders = HTTPHeaders([("Host", "\(host):\(port)"), ("Content-Length", "0")])
                    for (name, value) in headers { requestHeaders.add(name: name, value: value) }
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration(
                        upgradeRequestHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: requestHeaders),
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                .notUpgraded(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                            }
                        })
                    var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                    // A server may send its first frame in the same segment as the 101 response.
                    pipeline.leftOverBytesStrategy = .forwardBytes
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: pipeline)
                }
            }
        switch try await upgrade.get() {
        case .websocket(let channel):
            return await start(channel, autoPong: autoPong)
        case .notUpgraded(let http):
            var status = 0
            var body = ""
            try? await http.executeThenClose { inbound, _ in
                for try await part in inbound {
                    switch part {
                    case .head(let head): status = Int(head.status.code)
                    case .body(var buffer): body += buffer.readString(length: buffer.readableBytes) ?? ""
                    case .end: return
                    }
                }
            }
            throw Failure.upgradeRefused(status: status, body: body)
        }
    }

    /// The next event from the server.
    public func next(timeout: Duration = .seconds(10)) async throws -> Event {
        guard let event = await events.next(timeout: timeout) else { throw Failure.timeout }
        return event
    }

    /// The next text message, skipping pings, pongs and binary frames; `timeout` bounds the whole
    /// wait (a server that pings more often than `timeout` would otherwise keep an idle wait
    /// going for ever), and a cancelled task stops waiting at the next frame or deadline.
    public func nextText(timeout: Duration = .seconds(10)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            try Task.checkCancellation()
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw Failure.timeout }
            switch try await next(timeout: left) {
            case .text(let text): return text
            case .ping, .pong: continue
            case .binary: continue
            case .close(let code, let reason): throw Failure.closed(code: code, reason: reason)
            case .disconnected: throw Failure.disconnected
            }
        }
    }

    /// Waits for the server's close frame (skipping other frames) and returns its code;
    /// `timeout` bounds the whole wait.
    public func closeCode(timeout: Duration = .seconds(10)) async throws -> UInt16? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw Failure.timeout }
            switch try await next(timeout: left) {
            case .close(let code, _): return code
            case .disconnected: throw Failure.disconnected
            default: continue
            }
        }
    }

    public func send(text: String) async throws {
        try await send(opcode: .text, ByteBuffer(string: text))
    }

    /// Sends one frame as is (for tests of what the server does with odd input).
    public func send(opcode: WebSocketOpcode, _ data: ByteBuffer, fin: Bool = true) async throws {
        try await outbound.write(WebSocketFrame(fin: fin, opcode: opcode, maskKey: .random(), data: data))
    }

    /// Sends `frame` exactly as given: unmasked, with reserved bits or odd opcodes (for tests of
    /// how the server treats frames RFC 6455 forbids).
    public func send(_ frame: WebSocketFrame) async throws {
        try await outbound.write(frame)
    }

    /// Stops taking frames off the connection (to play a client that does not keep up): once
    /// NIO's inbound buffer is full it stops reading the socket, and the server's writes back up.
    public func pauseReading() {
        paused.withLock { $0 = true }
    }

    /// Reads again after ``pauseReading()``.
    public func resumeReading() {
        paused.withLock { $0 = false }
    }

    /// Closes the TCP connection without a close frame, as a lost network or a killed app does.
    public func drop() async {
        try? await channel.close()
        reader.cancel()
    }

    /// Sends a close frame and closes the connection.
    public func close(code: UInt16 = 1000) async {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        try? await outbound.write(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: payload))
        try? await channel.close()
        reader.cancel()
    }

    deinit {
        channel.close(promise: nil)
        reader.cancel()
    }
}

/// The events received so far and the readers waiting for the next (first come, first served),
/// each with a timeout that leaves the queue usable (unlike cancelling an `AsyncStream`
/// iterator, which ends it).
private actor EventQueue {
    private var buffer: [WebSocketClient.Event] = []
    private var finished = false
    /// The readers waiting, each with the task that ends its wait at the timeout (cancelled
    /// when an event comes first, so that a busy connection does not pile up sleeping timers).
    /// Two tasks may read one client at once: each gets its own event.
    private var waiters: [(id: Int, continuation: CheckedContinuation<WebSocketClient.Event?, Never>, timer: Task<Void, Never>)] = []
    private var waits = 0

    func push(_ event: WebSocketClient.Event) {
        if event == .disconnected { finished = true }
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            waiter.timer.cancel()
            waiter.continuation.resume(returning: event)
        } else {
            buffer.append(event)
        }
        // Every reader waiting learns of the end, not only the first.
        if finished {
            for waiter in waiters {
                waiter.timer.cancel()
                waiter.continuation.resume(returning: .disconnected)
            }
            waiters = []
        }
    }

    /// The next event, or nil after `timeout`.
    func next(timeout: Duration) async -> WebSocketClient.Event? {
        if !buffer.isEmpty { return buffer.removeFirst() }
        if finished { return .disconnected }
        waits += 1
        let id = waits
        return await withCheckedContinuation { continuation in
            let timer = Task {
                do { try await Task.sleep(for: timeout) } catch { return }  // an event came first
                self.expire(id)
            }
            waiters.append((id, continuation, timer))
        }
    }

    private func expire(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(returning: nil)
    }
}

/// A value shared between the client and its reader task.
private final class Shared: Sendable {
    private let value: Mutex<Bool>
    init(_ value: Bool) { self.value = Mutex(value) }
    func withLock<T>(_ body: (inout Bool) -> T) -> T { value.withLock { body(&$0) } }
}
