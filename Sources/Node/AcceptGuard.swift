#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore

/// Sits first in a listener's (server channel's) pipeline: counts what it accepts against the
/// node's ``AcceptGate``, stops accepting at the cap, closes at once a connection whose client
/// network holds its share already (``PeerLimit``), and pauses accepting when `accept` fails
/// for want of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`).
///
/// The pause is needed because NIO's own `AcceptBackoffHandler` does not stop the spin: after a
/// failed `accept` the listener stays registered for readability, the connection waiting in the
/// backlog keeps it readable, and the event loop calls `accept` again at once (`strace`: some
/// 13,000 failing `accept4` a second; 3.49 s of CPU in 4 s in `ConnectionFloodTests` with this
/// pause disabled). Turning `autoRead` off unregisters
/// the listener; it is turned back on after ``pause`` (doubling while `accept` keeps failing,
/// up to ``longestPause``). Lives on the listener's event loop, like every handler.
final class AcceptGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel
    typealias OutboundIn = Never
    typealias OutboundOut = Never

    static let firstPause = TimeAmount.milliseconds(50)
    static let longestPause = TimeAmount.seconds(1)

    private let gate: AcceptGate
    private let peers: PeerLimit
    private let logger: Logger
    private let listener: String
    /// A read withheld at the cap, to be passed on once a connection closes.
    private var readWithheld = false
    /// After a failure: how long the next pause lasts (reset by a successful accept).
    private var pause: TimeAmount?
    /// Accepting is paused after a failure: reads are withheld until the pause ends.
    private var paused = false

    /// - Parameter listener: the setting that names the port, for log lines.
    init(gate: AcceptGate, peers: PeerLimit, logger: Logger, listener: String) {
        self.gate = gate
        self.peers = peers
        self.logger = logger
        self.listener = listener
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        let (gate, peers) = (self.gate, self.peers)
        gate.opened()
        pause = nil
        let address = child.remoteAddress?.ipAddress
        let admission = peers.admit(address)
        let counted = admission == .counted ? address : nil
        // One callback for both releases: every connection holds it (and its closure) for life.
        child.closeFuture.whenComplete { _ in
            gate.closed()
            if let counted { peers.release(counted) }
        }
        context.fireChannelRead(data)
        guard admission == .refused else { return }
        // Closed once the bootstrap has registered it (queued behind that on the child's loop):
        // before its first read, so nothing it sent is parsed.
        if peers.warnings.allows() {
            logger.warning(
                "closed a connection at once: its address holds HTTP_MAX_CONNECTIONS_PER_IP (\(peers.perAddress)) connections",
                metadata: ["listener": "\(listener)", "address": "\(address ?? "unknown")"])
        }
        child.eventLoop.execute { child.close(promise: nil) }
    }

    func read(context: ChannelHandlerContext) {
        guard !paused else { return }  // the end of the pause turns reading back on
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        let admits = gate.admitsMore {
            loop.execute {
                let (handler, context) = bound.value
                guard handler.readWithheld else { return }
                handler.readWithheld = false
                context.read()
            }
        }
        guard admits else {
            if !readWithheld, gate.warnings.allows() {
                logger.warning(
                    "connections wait in the listen backlog: the node holds \(gate.limit) connections, its limit (HTTP_MAX_CONNECTIONS, or the open-file limit less what other uses keep)",
                    metadata: ["listener": "\(listener)"])
            }
            readWithheld = true
            return
        }
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, Self.isExhaustion(error.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        let delay = pause ?? Self.firstPause
        pause = min(delay * 2, Self.longestPause)
        if gate.warnings.allows() {
            logger.warning(
                "accept failed: \(error); pausing accepts (open connections: \(gate.open)); raise `ulimit -n` or lower HTTP_MAX_CONNECTIONS",
                metadata: ["listener": "\(listener)"])
        }
        // Turning autoRead off unregisters the listener from readability: no `accept` until it
        // is turned back on. (Already off, it must be turned on first: only the change acts.)
        guard let options = context.channel.syncOptions else { return }
        if (try? options.getOption(ChannelOptions.autoRead)) == false {
            try? options.setOption(ChannelOptions.autoRead, value: true)
        }
        try? options.setOption(ChannelOptions.autoRead, value: false)
        paused = true
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            handler.paused = false
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        }
    }

    static func isExhaustion(_ code: CInt) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }
}
