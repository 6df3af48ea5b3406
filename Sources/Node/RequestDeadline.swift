import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Bounds how long an HTTP request may hold its connection, and what it holds meanwhile.
///
/// - **Deadline.** A request not arrived whole, body included, `HTTP_IDLE_TIMEOUT` after its
///   head closes its connection. The idle timeout alone does not end a request whose client
///   sends a byte of body now and then: each byte is activity, and the request holds its
///   body's memory meanwhile. Before the head, ``UnstartedConnectionCloser`` (the first
///   request) and Hummingbird's idle timeout (between requests) apply.
/// - **Answered before its body arrived** (a 503 when the node's body budget is taken, a 413,
///   a 401 before the body is read): the answer says `Connection: close`, the rest of the body
///   is dropped as it arrives, and the connection is closed once the body has ended, or once
///   none of it has come for ``lingering`` (a lingering close: the client reads the answer
///   instead of a reset). Hummingbird reads such a body to its end before the next request,
///   keeping each part it read until the next one comes: a slice of a receive buffer of up to
///   64 KiB, held for as long as the client waited to send more (a drill held 280 MB so with
///   3,000 connections). Nothing the client sends after that request is read. A shutdown
///   (Hummingbird's quiescing) closes at the answer's end instead, without lingering.
///
/// Owned by the channel's pipeline, on its event loop.
final class RequestDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// How long the rest of a body answered early may pause before the connection is closed.
    static let lingering = TimeAmount.seconds(5)

    private let limit: TimeAmount
    private var deadline: Scheduled<Void>?
    /// When the request whose body is arriving must have arrived whole; nil when none is.
    private var closesAt: NIODeadline?
    /// Requests whose head arrived and whose answer has not ended (more than one when a client
    /// pipelines).
    private var unanswered = 0
    /// The answer being written came before its request's body ended: it says
    /// `Connection: close`, and the connection closes once the body is dealt with.
    private var answeredEarly = false
    /// That answer has ended before the body: what more of the body comes is dropped.
    private var discarding = false
    /// The request answered early has ended: nothing after it is read (a pipelined request
    /// would otherwise be handled, and its body cut short by the close).
    private var ignoringRest = false

    init(limit: TimeAmount) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if ignoringRest { return }
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            close(context, at: context.eventLoop.now + limit)
        case .body:
            if discarding {
                if let closesAt { close(context, at: min(closesAt, context.eventLoop.now + Self.lingering)) }
                return
            }
        case .end:
            deadline?.cancel()
            deadline = nil
            closesAt = nil
            if answeredEarly || discarding { ignoringRest = true }
            if discarding {
                // The answer said `Connection: close`, and the body has been read: no reset.
                context.fireChannelRead(data)
                context.close(promise: nil)
                return
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var response) where unanswered == 1 && closesAt != nil && response.status.kind != .informational:
            answeredEarly = true
            response.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(response)), promise: promise)
        case .end where answeredEarly:
            answeredEarly = false
            unanswered = 0
            if ignoringRest {
                // The body ended while the answer was written.
                context.writeAndFlush(data, promise: promise)
                context.close(promise: nil)
                return
            }
            context.write(data, promise: promise)
            discarding = true
            // Hummingbird's reader keeps the part it read last until the next arrives: an empty
            // one takes its place, and the receive buffer it was a slice of is freed.
            context.fireChannelRead(wrapInboundOut(.body(ByteBuffer())))
            context.fireChannelReadComplete()
            let now = context.eventLoop.now
            close(context, at: min(closesAt ?? now + Self.lingering, now + Self.lingering))
        case .end:
            unanswered = max(0, unanswered - 1)
            context.write(data, promise: promise)
        case .head, .body:
            context.write(data, promise: promise)
        }
    }

    private func close(_ context: ChannelHandlerContext, at time: NIODeadline) {
        let channel = context.channel
        deadline?.cancel()
        if !discarding { closesAt = time }
        deadline = context.eventLoop.scheduleTask(deadline: time) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}
