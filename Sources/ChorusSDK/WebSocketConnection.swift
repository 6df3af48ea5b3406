import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization

/// One WebSocket to a node, on SwiftNIO: the transport under ``ChorusClient``. It knows frames
/// (text messages joined from fragments, pings answered, the close handshake) and nothing of
/// the Chorus protocol.
///
/// What the node sends arrives in order on ``events``, which ends after ``Event/closed(code:)``.
/// ``send(_:)`` may be called from any task; the connection is closed by ``close(code:)``,
/// by ``abort()``, or when the reader ends.
final class WebSocketConnection: Sendable {
    enum Event: Sendable {
        case text(String)
        /// The connection ended: with the node's close code, or nil when TCP ended without one.
        case closed(code: UInt16?)
    }

    enum Failure: Error {
        /// The node answered the upgrade with a plain HTTP response.
        case upgradeRefused(status: Int, body: String)
        /// TCP connect or the upgrade did not finish in time.
        case timeout
    }

    private enum UpgradeResult: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case notUpgraded(NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>)
    }

    let events: AsyncStream<Event>
    private let channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>
    private let io: Task<Void, Never>
    private let outgoing: AsyncStream<Outgoing>.Continuation
    /// A close frame is queued: the I/O task closes the channel after the handshake (or the
    /// 5-s timer does), also once this object is released.
    private let closing = Atomic(false)

    /// What the writer sends, in order.
    private enum Outgoing: Sendable {
        case text(String)
        /// A close frame; the writer stops after it.
        case close(UInt16)
    }

    private init(channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>) {
        self.channel = channel
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        self.events = events
        let (queue, outgoing) = AsyncStream.makeStream(of: Outgoing.self)
        self.outgoing = outgoing
        // One task owns the channel: it writes what ``send(_:)`` queues and reads until the
        // connection ends, then closes the channel and finishes ``events``.
        io = Task {
            var closeCode: UInt16?
            try? await channel.executeThenClose { inbound, outbound in
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await item in queue {
                            let frame: WebSocketFrame
                            switch item {
                            case .text(let text):
                                frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text))
                            case .close(let code):
                                var payload = ByteBuffer()
                                payload.writeInteger(code)
                                frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: payload)
                            }
                            do { try await outbound.write(frame) } catch { return }
                            if case .close = item { return }
                        }
                    }
                    closeCode = await Self.read(inbound, answeringWith: outbound, into: continuation)
                    outgoing.finish()
                    group.cancelAll()
                    outgoing.finish()
                }
            }
            continuation.yield(.closed(code: closeCode))
            continuation.finish()
        }
    }

    /// Reads frames until the connection ends: text messages (joined from fragments) go to
    /// `events`, pings are answered, a close frame is echoed. Returns the node's close code.
    private static func read(
        _ inbound: NIOAsyncChannelInboundStream<WebSocketFrame>, answeringWith outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>,
        into events: AsyncStream<Event>.Continuation
    ) async -> UInt16? {
        var closeCode: UInt16?
        var fragments = ByteBuffer()
        var inText = false
        do {
            for try await frame in inbound {
                var data = frame.unmaskedData
                switch frame.opcode {
                case .text, .continuation:
                    if frame.opcode == .continuation, !inText { break }
                    if frame.opcode == .text { fragments.clear() }
                    inText = !frame.fin
                    fragments.writeBuffer(&data)
                    if frame.fin {
                        events.yield(.text(fragments.readString(length: fragments.readableBytes) ?? ""))
                    }
                case .ping:
                    try? await outbound.write(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: data))
                case .connectionClose:
                    closeCode = data.readInteger(as: UInt16.self)
                    var reply = ByteBuffer()
                    if let closeCode { reply.writeInteger(closeCode) }
                    try? await outbound.write(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: reply))
                    return closeCode
                default:
                    break
                }
            }
        } catch {}
        return closeCode
    }

    /// Opens a WebSocket to `url` with `headers` on the upgrade request (the token goes in
    /// `Authorization`), over TLS with `tls` when given. TCP connect, TLS handshake and upgrade
    /// together are bounded by `timeout`; a task cancelled meanwhile leaves no connection open.
    static func connect(
        to url: ServerURL, tls: NIOSSLContext? = nil, headers: [(String, String)], timeout: Duration,
        maxFrameSize: Int = 1 << 24,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocketConnection {
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(TimeAmount(timeout))
        let opened = OpenedChannel()
        let upgrade: EventLoopFuture<UpgradeResult> = try await bootstrap.connect(host: url.host, port: url.port) { channel in
            opened.set(channel)
            return channel.eventLoop.makeCompletedFuture {
                if let tls {
                    // SNI and the certificate check use the host name; an IP literal is checked
                    // against the certificate's IP addresses instead, and sent without SNI.
                    let isAddress = (try? SocketAddress(ipAddress: url.host, port: 0)) != nil
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : url.host))
                }
                let upgrader = NIOTypedWebSocketClientUpgrader<UpgradeResult>(
                    maxFrameSize: maxFrameSize,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            .websocket(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                        }
                    })
                var requestHeaders = HTTPHeaders([("Host", url.hostHeader), ("Content-Length", "0")])
                for (name, value) in headers { requestHeaders.add(name: name, value: value) }
                let configuration = NIOTypedHTTPClientUpgradeConfiguration(
                    upgradeRequestHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: url.target, headers: requestHeaders),
                    upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in
                        channel.eventLoop.makeCompletedFuture {
                            .notUpgraded(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                        }
                    })
                var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                // The node sends `auth_success` right behind its 101 response, maybe in the same segment.
                pipeline.leftOverBytesStrategy = .forwardBytes
                return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
            }
        }
        // Bound the upgrade; on timeout or cancellation the half-open channel is closed, which
        // fails the upgrade. The deadline ends on the channel's loop as the upgrade completes:
        // ended only once this task resumed, it could close a connection just upgraded (a
        // loaded machine resumed the task past the deadline, and the client reconnected).
        let deadline = upgrade.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            opened.close()
        }
        upgrade.whenComplete { _ in deadline.cancel() }
        defer { deadline.cancel() }
        let result: UpgradeResult
        do {
            result = try await withTaskCancellationHandler {
                try await upgrade.get()
            } onCancel: {
                opened.close()
            }
        } catch {
            opened.close()
            throw Task.isCancelled ? CancellationError() : error
        }
        switch result {
        case .websocket(let channel):
            if Task.isCancelled {
                try? await channel.channel.close()
                throw CancellationError()
            }
            return WebSocketConnection(channel: channel)
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

    /// Queues one text message; messages go out in the order they were queued. A write that
    /// fails closes the connection (and so ends ``events``).
    func send(_ text: String) {
        outgoing.yield(.text(text))
    }

    /// Sends a close frame with `code` after what is queued; the node's answer (or the end of
    /// TCP) ends ``events``. The channel is closed outright if the node has not answered within 5 s.
    func close(code: UInt16 = 1000) {
        closing.store(true, ordering: .relaxed)
        outgoing.yield(.close(code))
        outgoing.finish()
        let channel = self.channel.channel
        channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
    }

    /// Drops the connection without a handshake (cancellation, a dead peer).
    func abort() {
        outgoing.finish()
        channel.channel.close(promise: nil)
    }

    deinit {
        outgoing.finish()
        // Released right after close() (the client's run loop ends when it is cancelled): the
        // queued close frame still goes out. Closing here would cut it off (the node saw 1006).
        if !closing.load(ordering: .relaxed) { channel.channel.close(promise: nil) }
    }
}

/// The channel a connection attempt opened, so that a timeout or a cancellation can close it
/// from another thread while the upgrade is under way.
private final class OpenedChannel: Sendable {
    private let channel = Mutex<(any Channel)?>(nil)

    func set(_ channel: any Channel) {
        self.channel.withLock { $0 = channel }
    }

    func close() {
        channel.withLock { $0 }?.close(promise: nil)
    }
}
