import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// How an accepted TCP connection is served: plain HTTP through the Hummingbird router, or,
/// for an upgrade request to `/ws`, a WebSocket served by NIO handlers of our own.
///
/// Hummingbird's own WebSocket support runs a Swift task per connection; measured here that
/// costs about 5x the memory and a tenth of the throughput of plain channel handlers (see
/// ARCHITECTURE.md), so after the upgrade this channel installs a ``WebSocketSession`` and
/// returns from ``handle(value:logger:)`` at once: no task stays behind for the connection.
struct NodeChildChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case websocket
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, WebSocketAdmission.Refusal)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let admission: WebSocketAdmission?
    /// `HTTP_IDLE_TIMEOUT`: how long a connection may go without a request (before its first,
    /// or between keep-alive requests) before it is closed.
    let idleTimeout: Duration

    /// - Parameter admission: nil on a listener that serves HTTP only.
    init(responder: @escaping HTTPChannelHandler.Responder, admission: WebSocketAdmission?, idleTimeout: Duration) {
        self.responder = responder
        self.admission = admission
        self.idleTimeout = idleTimeout
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard let admission else { return setupHTTPOnly(channel: channel, logger: logger) }
        return channel.eventLoop.makeCompletedFuture {
            try Self.useSmallReceiveBuffers(channel)
            let unstarted = UnstartedConnectionCloser(firstRequestTimeout: TimeAmount(idleTimeout))
            try channel.pipeline.syncOperations.addHandler(unstarted, position: .first)
            let closer = NIOLoopBound(unstarted, eventLoop: channel.eventLoop)
            let parseErrorCloser = NIOLoopBound(HTTPParseErrorCloser(), eventLoop: channel.eventLoop)
            let decision = NIOLoopBoundBox<WebSocketAdmission.Decision?>(nil, eventLoop: channel.eventLoop)
            let upgraders: [any NIOTypedHTTPServerProtocolUpgrader<UpgradeResult>] = [
                    WebSocketUpgrader<UpgradeResult>(
                        decide: { channel, head in
                            let result = admission.decide(head: head, channel: channel)
                            decision.value = result
                            if case .accept(let accepted) = result {
                                var headers = HTTPHeaders()
                                if let deflate = accepted.deflate {
                                    headers.add(name: "Sec-WebSocket-Extensions", value: deflate.responseHeader)
                                }
                                return channel.eventLoop.makeSucceededFuture(headers)
                            }
                            return channel.eventLoop.makeSucceededFuture(nil)
                        },
                        install: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                guard case .accept(let accepted)? = decision.value else {
                                    throw ChannelError.inappropriateOperationForState
                                }
                                try admission.installSession(accepted, on: channel)
                                decision.value = nil  // the session gives back what admission took
                                // New upgrades are refused once draining, and the drain closes this one.
                                channel.pipeline.syncOperations.removeHandler(closer.value, promise: nil)
                                channel.pipeline.syncOperations.removeHandler(parseErrorCloser.value, promise: nil)
                                return UpgradeResult.websocket
                            }
                        }
                    )
            ]
            let configuration = NIOTypedHTTPServerUpgradeConfiguration<UpgradeResult>(
                upgraders: upgraders,
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(RequestDeadline(limit: TimeAmount(idleTimeout)))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        channel.pipeline.syncOperations.removeHandler(closer.value, promise: nil)
                        if closer.value.quiesceRequested {
                            // The shutdown began before the first request was read whole: the
                            // state handler closes the connection once its response is out. Told
                            // on the next tick, after the upgrade handler has passed it the
                            // request it holds: told now, it would find no request and close.
                            channel.eventLoop.execute {
                                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                            }
                        }
                        if case .refuse(let refusal)? = decision.value {
                            return UpgradeResult.refused(asyncChannel, refusal)
                        }
                        return UpgradeResult.notUpgraded(asyncChannel)
                    }
                }
            )
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: configuration)
            pipeline.enablePipelining = false
            // A request NIO cannot parse (a garbage request line, two Content-Lengths, a header
            // past its limit) is answered 400 and closed by NIO's protocol error handler; without
            // it the error reached no handler and the connection waited for HTTP_IDLE_TIMEOUT.
            pipeline.enableErrorHandling = true
            pipeline.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                configuration: pipeline)
            try channel.pipeline.syncOperations.addHandler(parseErrorCloser.value)
            result.whenFailure { _ in
                // Accepted, but the upgrade failed before a session took over (say, the 101 could not be written).
                if case .accept(let accepted)? = decision.value {
                    admission.abandon(accepted)
                    channel.close(promise: nil)
                }
            }
            return Value(upgradeResult: result, channel: channel)
        }
    }

    /// Keeps no receive buffer between reads (``ReceiveBufferSizer``), one read at a time.
    ///
    /// NIO keeps each channel's receive buffer for reuse, and an idle WebSocket client sends a
    /// few bytes a minute, so that buffer was a large part of an idle connection's memory.
    /// One read per readiness event (`maxMessagesPerRead`) also keeps NIO's pool at one buffer
    /// instead of one per read of a burst.
    static func useSmallReceiveBuffers(_ channel: any Channel) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(ChannelOptions.recvAllocator, value: ReceiveBufferSizer())
        try options.setOption(ChannelOptions.maxMessagesPerRead, value: 1)
    }

    /// A listener without `/ws` (when `WEBSOCKET_PORT` names another port): plain HTTP/1.1, as
    /// Hummingbird's own HTTP1Channel sets it up.
    private func setupHTTPOnly(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.configureHTTPServerPipeline(
                // Hummingbird answers a request it cannot parse with 400 itself on this path.
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false)
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(RequestDeadline(limit: TimeAmount(idleTimeout)))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
            let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            return Value(upgradeResult: channel.eventLoop.makeSucceededFuture(.notUpgraded(asyncChannel)), channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            // Waiting for the first request does not end by itself when the server's task is
            // cancelled (a shutdown past DRAIN_TIMEOUT): closing the channel fails the wait.
            let upgradeResult = try await withTaskCancellationHandler {
                try await value.upgradeResult.get()
            } onCancel: {
                value.channel.close(promise: nil)
            }
            switch upgradeResult {
            case .websocket:
                // The WebSocketTransport (and its WebSocketSession) owns the channel from here on.
                return
            case .notUpgraded(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refused(let http, let refusal):
                await writeRefusal(refusal, on: http, logger: logger)
            }
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }

    /// Answers a refused upgrade with its status and the seed's error shape, then closes.
    private func writeRefusal(
        _ refusal: WebSocketAdmission.Refusal, on http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>,
        logger: Logger
    ) async {
        do {
            try await http.executeThenClose { _, outbound in
                var body = ByteBuffer()
                body.writeBytes(
                    ServerMessage.error(code: refusal.status, message: refusal.message, details: nil, id: nil).encoded())
                var head = HTTPResponse(
                    status: .init(code: refusal.status),
                    headerFields: [
                        .connection: "close", .contentType: "application/json",
                        .contentLength: "\(body.readableBytes)",
                    ])
                if let version = refusal.webSocketVersion { head.headerFields[.secWebSocketVersion] = version }
                try await outbound.write(contentsOf: [.head(head), .body(body), .end(nil)])
            }
        } catch {
            logger.trace("could not write refusal", metadata: ["error": "\(error)"])
        }
    }
}
