import NIOCore

/// The RFC 6455 side of one upgraded connection: frames, control frames, the close handshake,
/// keep-alive pings, backpressure and the per-connection limits. It hands whole text messages
/// to its ``delegate`` (the Chorus protocol, ``WebSocketSession``) and knows nothing of topics.
///
/// The transport is the only handler of an upgraded channel: it reads frames from the socket's
/// bytes itself (``WebSocketFrameReader``) and writes pre-encoded ``OutboundFrame`` bytes, so
/// there is no frame decoder, aggregator or encoder in the pipeline. It sends those bytes to the
/// socket itself (``DirectSocketWriter``: one `send`/`sendmsg` per flush) and hands NIO only
/// what the socket does not take, writing through NIO until NIO has sent it all. Everything here
/// runs on the channel's event loop, which is also the executor of the connection's
/// ``ConnectionRegistry``, so the registry writes deliveries to it synchronously.
///
/// What one client can make the node hold is bounded, whatever it sends:
/// - Every byte queued for the client (deliveries, replies, pongs, pings) counts against
///   `WEBSOCKET_MAX_PENDING_BYTES`, the channel's write-buffer high watermark. Whenever the node
///   has something to queue while the client is over it, the client is closed 4008: it does not
///   read. While over it, the node also stops reading the socket (no `read` is passed on until
///   the channel is writable again), so no request is parsed into replies that cannot drain;
///   the client's further bytes wait in the kernel, and TCP slows it down.
/// - Every message and control frame counts against `WEBSOCKET_MAX_MESSAGES_PER_SECOND`; past
///   it messages are dropped (no pong for a ping), and a client that keeps it up is closed 1008
///   (``MessageRateLimiter``).
/// - Every message's bytes (inflated) count against `WEBSOCKET_MAX_BYTES_PER_SECOND`; past it
///   the node stops reading the connection until the debt is repaid (``ReadBudget``), so one
///   client cannot keep an event loop busy for the others.
/// - Input held between reads is at most one unfinished message (``WebSocketFrameReader``).
/// - After the close frame the node sends nothing more: further pings get no pong.
/// - With permessage-deflate agreed, a compressed message counts against
///   `WEBSOCKET_MAX_MESSAGE_SIZE` both as received and as inflated (1009 past either).
///
/// With permessage-deflate agreed (``init(settings:agreed:)``),
/// deliveries go out as the hub's shared compressed frame when it made one, and replies of at
/// least `WEBSOCKET_COMPRESSION_MIN_SIZE` bytes are compressed for this connection alone.
final class WebSocketTransport: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The protocol above; set once, before the transport is added to a pipeline. Held strongly:
    /// the pipeline holds the transport, and through it the session.
    var delegate: (any WebSocketTransportDelegate)?

    private var context: ChannelHandlerContext? {
        didSet { updateTakesDeliveries() }
    }
    /// The node's limits, counters and compressor, shared by all its connections.
    private let settings: WebSocketSettings
    private var reader: WebSocketFrameReader
    private var rate: MessageRateLimiter
    private var budget: ReadBudget
    /// The one timer a connection runs at a time (closing ends a pause).
    private var timer = Timer.none
    /// Bytes of ``charge(work:)`` during a pause, charged when it ends (the pause was set to
    /// repay the debt before them).
    private var workDuringPause = 0
    private var lastHeard = NIODeadline.now()
    /// Writes past NIO (``DirectSocketWriter``); nil where the channel has no socket to give.
    private var direct: DirectSocketWriter?

    // Flags last, packed together into what the fields above leave.

    /// Set while the transport sits in its registry's flush list.
    var needsFlush = false
    /// Whether the protocol above wants deliveries now (authenticated, token valid); the
    /// transport adds its own conditions (open, not closing) in ``takesDeliveries``.
    var deliveriesWanted = false {
        didSet { updateTakesDeliveries() }
    }
    /// Whether ``write(_:)`` queues a delivery, kept up to date where its parts change, so that
    /// a delivery tests one flag.
    private var takesDeliveries = false
    /// The channel's writability (below `WEBSOCKET_MAX_PENDING_BYTES` unsent, the write-buffer
    /// watermark), kept from `channelWritabilityChanged` so that a delivery does not ask the
    /// channel each time.
    private var writable = true
    /// Set once the node has sent (or queued) its close frame.
    private(set) var isClosing = false {
        didSet {
            updateTakesDeliveries()
            reader.discardsData = isClosing
        }
    }
    /// Set when the client broke the protocol, flooded or sent its close: its further bytes are
    /// not read.
    private var failed = false
    /// Between `channelRead` and `channelReadComplete`: replies wait for the flush there.
    private var reading = false
    private var repliesPending = false
    /// A `read` the channel asked for while it was not writable, passed on once it is.
    private var readHeld = false
    /// NIO may still hold bytes of this connection (the upgrade's answer, or what the socket
    /// did not take): writes go through NIO until it has sent them all.
    private var nioHoldsBytes = true
    /// Bytes written through NIO since its last flush.
    private var nioUnflushed = false
    /// Set when the client agreed to permessage-deflate: deliveries go out compressed where the
    /// hub compressed them, and this connection's replies are compressed.
    private let compresses: Bool

    /// The timer of a connection: the end of a read-budget pause (messages already received
    /// wait in ``reader``, at most what one read brought, until it), or once closing, the
    /// deadline for the client's answer to the close frame.
    private enum Timer {
        case none
        case pause(Scheduled<Void>)
        /// The node closed (or is closing): the deadline for the client's answer.
        case closing(Scheduled<Void>)
        /// The client sent a close frame, which the node answered: the deadline for the end.
        /// Kept after the end, so the session can tell (``clientClosed``); no extra field.
        case answering(Scheduled<Void>)
    }

    /// Whether the client closed the connection with a close frame: its way of saying it is
    /// leaving. A connection that ended otherwise (a network lost, an app killed, or closed by
    /// the node) may have a client on its way back.
    var clientClosed: Bool {
        if case .answering = timer { return true }
        return false
    }

    /// Reading is paused for ``budget``.
    private var paused: Bool {
        if case .pause = timer { return true }
        return false
    }

    /// How long a closing connection may take to answer the close frame.
    static let closeTimeout = TimeAmount.seconds(5)

    /// - Parameter agreed: the permessage-deflate the client agreed to in the upgrade (then
    ///   `settings` has the node's compressor); nil without.
    init(settings: WebSocketSettings, agreed: PerMessageDeflate? = nil) {
        self.settings = settings
        let compresses = agreed != nil && settings.deflate != nil
        self.reader = WebSocketFrameReader(
            maxMessageSize: settings.maxMessageSize, inflation: compresses ? agreed.map { .init($0) } : nil)
        self.rate = MessageRateLimiter(settings.rate)
        self.budget = ReadBudget(settings.budget)
        self.compresses = compresses
    }

    /// A transport with settings of its own (tests).
    convenience init(
        maxMessageSize: Int, maxMessagesPerSecond: Int, maxBytesPerSecond: Int = 1 << 20, counters: NodeCounters,
        deflate: (agreed: PerMessageDeflate, outbound: OutboundDeflate)? = nil
    ) {
        self.init(
            settings: WebSocketSettings(
                maxMessageSize: maxMessageSize, maxMessagesPerSecond: maxMessagesPerSecond,
                maxBytesPerSecond: maxBytesPerSecond, counters: counters, deflate: deflate?.outbound),
            agreed: deflate?.agreed)
    }

    private var counters: NodeCounters { settings.counters }
    /// The node's compressor, where this connection agreed to permessage-deflate.
    private var deflate: OutboundDeflate? { compresses ? settings.deflate : nil }

    private func updateTakesDeliveries() {
        takesDeliveries = deliveriesWanted && context != nil && !isClosing
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        writable = context.channel.isWritable
        if let socket = try? context.pipeline.syncOperations.withUnsafeTransportIfAvailable(
            of: NIOBSDSocket.Handle.self, { $0 })
        {
            direct = DirectSocketWriter(socket: socket)
        }
        if deflate != nil { counters.compressingConnections.add(1, ordering: .relaxed) }
        delegate?.transportDidOpen(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        switch timer {
        case .pause(let scheduled), .closing(let scheduled), .answering(let scheduled): scheduled.cancel()
        case .none: break
        }
        if !clientClosed { timer = .none }  // cancelled; `.answering` stays for the delegate
        if deflate != nil { counters.compressingConnections.subtract(1, ordering: .relaxed) }
        delegate?.transportDidClose(self)
        self.context = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            close(.goingAway, reason: "node shutting down")
        case ChannelEvent.inputClosed:
            context.close(promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let now = NIODeadline.now()
        lastHeard = now
        reading = true
        reader.receive(unwrapInboundIn(data))
        readReceived(now: now)
    }

    /// Hands on the messages received, until the reader needs more bytes or ``budget`` pauses.
    private func readReceived(now: NIODeadline) {
        do {
            while !failed, !paused, let frame = try reader.next() {
                if !isClosing, let pause = budget.charge(frame.payload.readableBytes, now: now, within: settings.budget) { pauseReading(for: pause) }
                handle(frame, now: now)
            }
        } catch {
            fail(error)
        }
        if failed {
            reader.reset()
        } else {
            reader.endOfRead()
        }
    }

    /// Charges `bytes` of work a request made the node do besides reading it (a history page
    /// read and encoded for a `subscribe` with `since` or `replay`) to the read budget: a
    /// client cannot make the node read history faster than it may send messages.
    ///
    /// The debt from work is at most ``maxWorkPause`` of the budget: a client that reconnects
    /// to many topics far behind must still be read within its SDK's pong timeout (10 s), or it
    /// would reconnect, and pay again, for ever.
    func charge(work bytes: Int) {
        guard !isClosing else { return }
        let most = Int(Double(settings.budget.perSecond) * Double(Self.maxWorkPause.nanoseconds) / 1e9)
        guard !paused else {
            workDuringPause = min(workDuringPause + bytes, most)
            return
        }
        if let pause = budget.charge(min(bytes, most), now: .now(), within: settings.budget) { pauseReading(for: pause) }
    }

    /// The longest pause that work (``charge(work:)``) adds.
    static let maxWorkPause = TimeAmount.seconds(4)

    /// Stops handing on messages and passing on reads for `pause`, then goes on with what was
    /// received meanwhile (one read's worth) as a read would.
    private func pauseReading(for pause: TimeAmount) {
        guard let context else { return }
        counters.readsPaused.add(1, ordering: .relaxed)
        timer = .pause(context.eventLoop.assumeIsolated().scheduleTask(in: pause) {
            guard self.paused else { return }
            self.timer = .none
            guard let context = self.context, !self.failed else { return }
            let now = NIODeadline.now()
            self.lastHeard = now  // its bytes were waiting: the client is not silent
            self.budget.repaid(now: now)
            // Work charged during the pause (a history page, ``charge(work:)``) is repaid next.
            let work = self.workDuringPause
            self.workDuringPause = 0
            if work > 0, !self.isClosing, let more = self.budget.charge(work, now: now, within: self.settings.budget) {
                return self.pauseReading(for: more)
            }
            self.reading = true
            self.readReceived(now: now)
            self.endOfRead()
            self.passHeldRead(context: context)
        })
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        endOfRead()
        context.fireChannelReadComplete()
    }

    /// The replies of a read (or of what a pause held) go out together.
    private func endOfRead() {
        reading = false
        if repliesPending {
            repliesPending = false
            flushOut()
        }
    }

    private func handle(_ frame: WebSocketFrameReader.Frame, now: NIODeadline) {
        if frame.opcode == .close { return receivedClose(frame.payload) }
        guard !isClosing else { return }
        switch rate.admit(now: now, at: settings.rate) {
        case .allow:
            break
        case .drop:
            if frame.opcode == .text, delegate?.transport(self, answeredDropped: frame.payload) == true { return }
            if rate.shouldWarn(now: now) { delegate?.transportIsDroppingMessages(self) }
            return
        case .flood:
            counters.floods.add(1, ordering: .relaxed)
            return failConnection(
                .policyViolation, reason: "flood: kept sending past \(settings.rate.perSecond) messages per second")
        }
        if frame.wasCompressed { counters.messagesInflated.add(1, ordering: .relaxed) }
        switch frame.opcode {
        case .text: delegate?.transport(self, didReceiveText: frame.payload)
        case .binary: delegate?.transport(self, didReceiveBinary: frame.payload)
        case .ping: send(.pong(frame.payload, allocator: context!.channel.allocator))
        case .pong, .continuation, .close: break
        }
    }

    /// Fails the connection after a frame it cannot read past (RFC 6455 §7.1.7): see
    /// ``failConnection(_:reason:)``.
    private func fail(_ violation: WebSocketFrameReader.Violation) {
        switch violation {
        case .tooBig: failConnection(.messageTooBig, reason: "message larger than \(reader.maxMessageSize) bytes")
        case .protocolError(let why): failConnection(.protocolError, reason: why)
        case .invalidUTF8: failConnection(.invalidPayload, reason: "a text message that is not valid UTF-8")
        }
    }

    /// Sends a close frame with `code`, then reads (and drops) whatever the client still sends
    /// until it closes or ``closeTimeout`` passes. The node's side of the TCP connection is
    /// shut down as soon as the close frame is out. Closing outright would make the kernel
    /// answer the client's further bytes with a reset, and a client that sees a reset may
    /// never read the close frame.
    private func failConnection(_ code: CloseCode, reason: String) {
        failed = true
        close(code, reason: reason, awaitingReply: false)
    }

    private func receivedClose(_ payload: ByteBuffer) {
        guard let context else { return }
        if isClosing {
            context.close(promise: nil)
            return
        }
        var data = payload
        var code = CloseCode.normal.rawValue
        if data.readableBytes > 0 {
            guard let given = data.readInteger(as: UInt16.self) else {
                return failConnection(.protocolError, reason: "a close frame with a 1-byte payload")
            }
            guard Self.mayBeSent(closeCode: given) else {
                return failConnection(.protocolError, reason: "close code \(given) may not be sent")
            }
            guard data.withUnsafeReadableBytes(UTF8Validation.isValid) else {
                return failConnection(.invalidPayload, reason: "the close reason is not UTF-8")
            }
            code = given  // echoed, as RFC 6455 §5.5.1 suggests
        }
        isClosing = true
        endPause()
        delegate?.transport(self, willCloseWith: code, reason: "the client closed")
        flushOut()  // the replies of this read go before the close frame
        let channel = context.channel
        let frame = OutboundFrame.close(code: code, reason: "", allocator: channel.allocator)
        // Nothing may follow a client's close (RFC 6455 §5.5.1): what does is not even parsed.
        failed = true
        context.writeAndFlush(wrapOutboundOut(frame.bytes)).whenComplete { _ in channel.close(promise: nil) }
        // A client that closes but does not read would otherwise hold the connection for ever:
        // the reply never goes out, and closing connections are not swept.
        timer = .answering(context.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) })
    }

    /// Close codes a client may send (RFC 6455 §7.4 and the IANA registry): not 1004-1006 or
    /// 1015, which are reserved or never sent, and nothing outside 1000-1014 and 3000-4999.
    static func mayBeSent(closeCode code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    // MARK: Backpressure

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        passHeldRead(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Once closing, nothing is handled but the client's close frame: a pause ends, so that the
    /// close reply (or the end of the connection) is read.
    private func endPause() {
        guard case .pause(let pause) = timer, let context else { return }
        pause.cancel()
        timer = .none
        passHeldRead(context: context)
    }

    /// The `read` held while the client was over the pending limit or its read budget, passed
    /// on once it is over neither.
    private func passHeldRead(context: ChannelHandlerContext) {
        guard readHeld, writable, !paused else { return }
        readHeld = false
        context.read()
    }

    /// Passes a read on only while the channel is writable: a client over the pending limit is
    /// not read, so it cannot make the node parse requests whose replies would only queue. Nor
    /// is one over its read budget.
    func read(context: ChannelHandlerContext) {
        guard writable, !paused else {
            readHeld = true
            return
        }
        context.read()
    }

    // MARK: Outbound

    /// Queues a delivered message, `compressed` (the hub's permessage-deflate frame of it) if
    /// there is one and this connection agreed to it, `frame` otherwise; false when this
    /// connection does not take deliveries now. Closes the connection as a slow consumer when
    /// its unsent bytes are over the limit.
    ///
    /// The hot path of every delivery: one flag, the cached writability, and the frame staged
    /// for ``flush()``'s one system call (``DirectSocketWriter``), or written through NIO while
    /// NIO still holds bytes of this connection.
    func write(_ frame: OutboundFrame, compressed: OutboundFrame? = nil) -> Bool {
        guard takesDeliveries else { return false }
        guard writable else {
            closeSlowConsumer()
            return false
        }
        let chosen = compresses ? compressed ?? frame : frame
        queue(chosen.bytes)
        return true
    }

    /// Flushes the deliveries written since the last flush (the registry's, once per drain).
    func flush() {
        needsFlush = false
        flushOut()
    }

    /// Stages `bytes` for the socket when nothing of this connection waits in NIO, and
    /// writes them through NIO otherwise; ``flushOut()`` sends them.
    private func queue(_ bytes: ByteBuffer) {
        if direct != nil, !nioHoldsBytes || bufferedBytes == 0 {
            nioHoldsBytes = false
            direct!.stage(bytes)
        } else {
            nioUnflushed = true
            context?.write(wrapOutboundOut(bytes), promise: nil)
        }
    }

    /// Sends what ``queue(_:)`` staged, handing NIO what the socket did not take, and flushes
    /// NIO if it was written to.
    private func flushOut() {
        guard let context else { return }
        if direct?.isEmpty == false {
            guard context.channel.isActive else {
                // Closed (NIO closes the socket before it says so): nothing more can be sent.
                direct = nil
                return
            }
            let rest = direct!.flush()
            if !rest.isEmpty {
                nioHoldsBytes = true
                nioUnflushed = true
                for bytes in rest { context.write(wrapOutboundOut(bytes), promise: nil) }
            }
        }
        if nioUnflushed {
            nioUnflushed = false
            context.flush()
        }
    }

    /// Queues a text message of the protocol above (a reply to the client's own message, or a
    /// notice such as an expired token), flushed at the end of the current read or at once.
    /// Nothing is queued once closing; over the pending limit the client is closed 4008.
    func send(text payload: some Collection<UInt8>) {
        guard let context else { return }
        if let deflate, payload.count >= deflate.minimumSize,
            let compressed = deflate.compressedReply(Array(payload), on: context.eventLoop)
        {
            return send(compressed)
        }
        send(.text(payload, allocator: context.channel.allocator))
    }

    private func send(_ frame: OutboundFrame) {
        guard context != nil, !isClosing else { return }
        guard writable else { return closeSlowConsumer() }
        queue(frame.bytes)
        if reading {
            repliesPending = true
        } else {
            flushOut()
        }
    }

    private func closeSlowConsumer() {
        counters.slowConsumers.add(1, ordering: .relaxed)
        close(.slowConsumer, reason: "slow consumer: more than WEBSOCKET_MAX_PENDING_BYTES unsent")
    }

    /// Called by the registry's sweep: pings, or closes a connection silent for too long (4000)
    /// or over the pending limit (4008).
    func keepAlive(now: NIODeadline, timeout: TimeAmount, ping: OutboundFrame) {
        guard !isClosing, context != nil else { return }
        if !writable {
            closeSlowConsumer()
        } else if !paused, now - lastHeard > timeout {  // a paused client is not silent
            counters.pingTimeouts.add(1, ordering: .relaxed)
            close(.pingTimeout, reason: "ping timeout: nothing heard within WEBSOCKET_PING_TIMEOUT")
        } else {
            send(ping)
        }
    }

    /// Completes when the connection's channel has closed; nil once the handler is removed.
    var closeFuture: EventLoopFuture<Void>? { context?.channel.closeFuture }

    /// Bytes written to the channel and not yet taken by the kernel (what counts against
    /// `WEBSOCKET_MAX_PENDING_BYTES`); 0 once closed.
    var bufferedBytes: Int {
        (try? context?.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    /// Closes the channel at once, handshake or not (a shutdown that has run out of time).
    func abort() {
        context?.channel.close(promise: nil)
    }

    /// Starts the closing handshake: sends a close frame, stops deliveries, and drops the
    /// connection if the client does not answer within ``closeTimeout``. Without
    /// `awaitingReply` (the client broke the protocol, so its further bytes cannot be read) the
    /// node's side is shut down as soon as the close frame is sent.
    ///
    /// The close frame is the one frame queued even over the pending limit: one per connection,
    /// at most 125 bytes, and it follows whatever the client has not read yet.
    func close(_ code: CloseCode, reason: String, awaitingReply: Bool = true) {
        guard !isClosing, let context else { return }
        isClosing = true
        endPause()
        delegate?.transport(self, willCloseWith: code.rawValue, reason: reason)
        flushOut()  // what was staged goes before the close frame
        let channel = context.channel
        let frame = OutboundFrame.close(code, reason: reason, allocator: channel.allocator)
        let written = context.writeAndFlush(wrapOutboundOut(frame.bytes))
        if !awaitingReply { written.whenComplete { _ in channel.close(mode: .output, promise: nil) } }
        timer = .closing(context.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) })
    }
}
