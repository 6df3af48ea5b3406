import Histogram
import NIOCore
import Synchronization

/// Sequence marks shared by the publisher and every subscriber.
///
/// A delivery whose sequence number is below `trialBase` belongs to an earlier trial (a late
/// straggler) and is ignored; at or above `measureBase` it is past the warm-up and counts for
/// latency and throughput.
final class Marks: Sendable {
    let trialBase = Atomic<Int64>(Int64.max)
    let measureBase = Atomic<Int64>(Int64.max)
    /// Errors logged so far (only the first few are printed).
    let errorsLogged = Atomic<Int>(0)
}

/// The counters of one event loop. Handlers of that loop update the plain fields with no
/// synchronization; the atomics let the progress line read totals from another thread.
final class LoopStats: @unchecked Sendable {
    var histogram = LoopStats.emptyHistogram()
    /// Deliveries of the current trial (warm-up included).
    var trialReceived = 0
    /// Deliveries past the warm-up.
    var measuredReceived = 0
    var stale = 0
    var outOfOrder = 0
    var firstMeasuredNs = Int64.max
    var lastMeasuredNs: Int64 = 0
    /// Time of the latest delivery of the current trial (warm-up included).
    var lastTrialNs: Int64 = 0
    var errors = 0
    var closeCodes: [Int: Int] = [:]
    var disconnected = 0
    var handlers: [WebSocketLoadHandler] = []
    /// Inflates the start of this loop's compressed deliveries (`--deflate`).
    lazy var inflater = PrefixInflater()
    /// Bytes of delivery frames received (headers included), to report bytes on the wire per delivery.
    var wireBytes = 0
    let progressReceived = Atomic<Int>(0)

    static func emptyHistogram() -> Histogram<UInt64> {
        // 1 µs to 10 minutes, three significant digits; values are nanoseconds.
        Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
    }

    func resetForTrial() {
        histogram.reset()
        trialReceived = 0
        measuredReceived = 0
        wireBytes = 0
        stale = 0
        outOfOrder = 0
        firstMeasuredNs = .max
        lastMeasuredNs = 0
        lastTrialNs = 0
        errors = 0
        closeCodes = [:]
        disconnected = 0
        for handler in handlers { handler.resetForTrial() }
    }

    func snapshot() -> LoopSnapshot {
        LoopSnapshot(
            histogram: histogram, trialReceived: trialReceived, measuredReceived: measuredReceived, stale: stale,
            outOfOrder: outOfOrder, firstMeasuredNs: firstMeasuredNs, lastMeasuredNs: lastMeasuredNs,
            lastTrialNs: lastTrialNs, errors: errors, wireBytes: wireBytes,
            closeCodes: closeCodes, disconnected: disconnected,
            perConnection: handlers.map { ($0.index, $0.received, $0.isOpen) })
    }
}

struct LoopSnapshot: Sendable {
    var histogram: Histogram<UInt64>
    var trialReceived: Int
    var measuredReceived: Int
    var stale: Int
    var outOfOrder: Int
    var firstMeasuredNs: Int64
    var lastMeasuredNs: Int64
    var lastTrialNs: Int64
    var errors: Int
    var wireBytes: Int
    var closeCodes: [Int: Int]
    var disconnected: Int
    var perConnection: [(index: Int, received: Int, open: Bool)]
}

/// What a load connection does once open.
enum LoadRole: Sendable {
    /// Chorus: wait for `subscribed` replies to these many subscribe frames.
    case chorusSubscriber(acks: Int)
    /// Nchan: subscribed once the upgrade succeeds.
    case nchanSubscriber
    /// Chorus publisher: ready at `auth_success`; deliveries are not expected.
    case chorusPublisher
}

/// One WebSocket client connection on plain NIO: writes the upgrade request, reads the 101, then
/// parses frames straight out of the receive buffer. A delivery is recognized by the publisher's
/// `"t":<ns>` and `"s":<seq>` found with a byte scan; nothing is JSON-decoded.
///
/// Client frames are masked with the all-zero key (allowed by RFC 6455), so no byte is XORed.
final class WebSocketLoadHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let index: Int
    private let role: LoadRole
    private let upgradeRequest: String
    private let afterUpgrade: [String]
    private let stats: LoopStats
    private let marks: Marks
    private let ready: EventLoopPromise<Void>
    private let checkOrder: Bool
    private let stopReadingWhenReady: Bool

    private var handshaking = true
    private var isReady = false
    private var acks = 0
    private var pending: ByteBuffer?
    private var lastSeq: Int64 = -1
    private(set) var received = 0
    private(set) var isOpen = false
    private var context: ChannelHandlerContext?

    init(
        index: Int, role: LoadRole, upgradeRequest: String, afterUpgrade: [String], stats: LoopStats, marks: Marks,
        ready: EventLoopPromise<Void>, checkOrder: Bool, stopReadingWhenReady: Bool = false
    ) {
        self.index = index
        self.role = role
        self.upgradeRequest = upgradeRequest
        self.afterUpgrade = afterUpgrade
        self.stats = stats
        self.marks = marks
        self.ready = ready
        self.checkOrder = checkOrder
        self.stopReadingWhenReady = stopReadingWhenReady
    }

    func resetForTrial() {
        received = 0
        lastSeq = -1
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        isOpen = true
        if case .chorusPublisher = role {} else { stats.handlers.append(self) }
        var request = context.channel.allocator.buffer(capacity: upgradeRequest.utf8.count)
        request.writeString(upgradeRequest)
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isOpen = false
        stats.disconnected += 1
        if !isReady {
            ready.fail(BenchError("connection \(index) closed before it was ready"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !isReady { ready.fail(error) }
        context.close(promise: nil)
    }

    /// Writes `text` as one masked text frame (zero key), and flushes when asked.
    func send(text: String, flush: Bool = true) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count + 14)
        Self.writeFrameHeader(opcode: 0x1, length: text.utf8.count, into: &buffer)
        buffer.writeString(text)
        context.write(wrapOutboundOut(buffer), promise: nil)
        if flush { context.flush() }
    }

    /// Appends a FIN client frame header with the zero masking key.
    static func writeFrameHeader(opcode: UInt8, length: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(0x80 | opcode)
        switch length {
        case 0...125:
            buffer.writeInteger(UInt8(0x80 | length))
        case 126...0xFFFF:
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(length))
        default:
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(length))
        }
        buffer.writeInteger(UInt32(0))  // masking key
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let now = monotonicNanos()
        if handshaking {
            guard handshake(context: context, buffer: &buffer) else { return }
        }
        let before = stats.trialReceived
        if pending != nil {
            pending!.writeBuffer(&buffer)
            parseFrames(context: context, buffer: &pending!, now: now)
            if pending!.readableBytes == 0 {
                pending = nil
            } else {
                pending!.discardReadBytes()
            }
        } else {
            parseFrames(context: context, buffer: &buffer, now: now)
            if buffer.readableBytes > 0 { pending = buffer }
        }
        let delta = stats.trialReceived - before
        if delta > 0 { stats.progressReceived.add(delta, ordering: .relaxed) }
    }

    /// Consumes the HTTP response; true once frames may follow in `buffer`.
    private func handshake(context: ChannelHandlerContext, buffer: inout ByteBuffer) -> Bool {
        if pending != nil {
            pending!.writeBuffer(&buffer)
            buffer = pending!
            pending = nil
        }
        let view = buffer.readableBytesView
        guard let end = Self.find([13, 10, 13, 10], in: view) else {
            pending = buffer
            return false
        }
        let head = String(decoding: view[view.startIndex..<end], as: UTF8.self)
        buffer.moveReaderIndex(to: end + 4)
        guard head.hasPrefix("HTTP/1.1 101") else {
            let status = head.split(separator: "\r\n").first.map(String.init) ?? head
            ready.fail(BenchError("connection \(index): upgrade refused: \(status)"))
            context.close(promise: nil)
            return false
        }
        handshaking = false
        for text in afterUpgrade { send(text: text, flush: false) }
        context.flush()
        if case .nchanSubscriber = role { becomeReady(context: context) }
        return true
    }

    private func becomeReady(context: ChannelHandlerContext) {
        guard !isReady else { return }
        isReady = true
        ready.succeed()
        if stopReadingWhenReady {
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
    }

    private static func find(_ needle: [UInt8], in view: ByteBufferView) -> Int? {
        guard view.count >= needle.count else { return nil }
        var i = view.startIndex
        let last = view.endIndex - needle.count
        while i <= last {
            if view[i] == needle[0] {
                var j = 1
                while j < needle.count, view[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    private func parseFrames(context: ChannelHandlerContext, buffer: inout ByteBuffer, now: Int64) {
        let consumed = buffer.withUnsafeReadableBytes { raw -> Int in
            var offset = 0
            let count = raw.count
            while count - offset >= 2 {
                let b0 = raw[offset]
                let b1 = raw[offset + 1]
                var length = Int(b1 & 0x7F)
                var header = 2
                if length == 126 {
                    guard count - offset >= 4 else { break }
                    length = Int(raw[offset + 2]) << 8 | Int(raw[offset + 3])
                    header = 4
                } else if length == 127 {
                    guard count - offset >= 10 else { break }
                    length = 0
                    for k in 2..<10 { length = length << 8 | Int(raw[offset + k]) }
                    header = 10
                }
                if b1 & 0x80 != 0 { header += 4 }  // a masked server frame: not expected
                guard count - offset >= header + length else { break }
                let payload = UnsafeRawBufferPointer(rebasing: raw[(offset + header)..<(offset + header + length)])
                if b0 & 0x40 != 0 {  // RSV1: a permessage-deflate message
                    stats.wireBytes += header + length
                    inflateFrame(context: context, opcode: b0 & 0x0F, payload: payload, now: now)
                } else {
                    if b0 & 0x0F == 0x1 { stats.wireBytes += header + length }
                    handleFrame(context: context, opcode: b0 & 0x0F, payload: payload, now: now)
                }
                offset += header + length
            }
            return offset
        }
        buffer.moveReaderIndex(forwardBy: consumed)
    }

    private func inflateFrame(context: ChannelHandlerContext, opcode: UInt8, payload: UnsafeRawBufferPointer, now: Int64) {
        stats.inflater.withPrefix(of: payload) { handleFrame(context: context, opcode: opcode, payload: $0, now: now) }
    }

    private func handleFrame(context: ChannelHandlerContext, opcode: UInt8, payload: UnsafeRawBufferPointer, now: Int64) {
        switch opcode {
        case 0x1, 0x2, 0x0:
            if let (sent, seq) = Self.scanMarkers(payload) {
                delivered(sent: sent, seq: seq, now: now)
            } else {
                control(context: context, payload: payload)
            }
        case 0x9:  // ping: answer with a pong carrying the same payload
            var pong = context.channel.allocator.buffer(capacity: payload.count + 14)
            Self.writeFrameHeader(opcode: 0xA, length: payload.count, into: &pong)
            pong.writeBytes(payload)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case 0x8:
            let code = payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 1005
            stats.closeCodes[code, default: 0] += 1
            var close = context.channel.allocator.buffer(capacity: 8)
            Self.writeFrameHeader(opcode: 0x8, length: 2, into: &close)
            close.writeInteger(UInt16(1000))
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(close)).whenComplete { _ in channel.close(promise: nil) }
        default:
            break
        }
    }

    @inline(__always)
    private func delivered(sent: Int64, seq: Int64, now: Int64) {
        guard seq >= marks.trialBase.load(ordering: .relaxed) else {
            stats.stale += 1
            return
        }
        received += 1
        stats.trialReceived += 1
        if now > stats.lastTrialNs { stats.lastTrialNs = now }
        if checkOrder {
            if seq <= lastSeq { stats.outOfOrder += 1 } else { lastSeq = seq }
        }
        if seq >= marks.measureBase.load(ordering: .relaxed) {
            stats.measuredReceived += 1
            if now < stats.firstMeasuredNs { stats.firstMeasuredNs = now }
            if now > stats.lastMeasuredNs { stats.lastMeasuredNs = now }
            let latency = now - sent
            _ = stats.histogram.record(UInt64(max(latency, 1_000)))
        }
    }

    private func control(context: ChannelHandlerContext, payload: UnsafeRawBufferPointer) {
        if Self.contains(payload, "\"type\":\"error\"") || Self.contains(payload, "\"type\":\"auth_error\"") {
            stats.errors += 1
            if marks.errorsLogged.add(1, ordering: .relaxed).newValue <= 5 {
                log("connection \(index) got: \(String(decoding: payload.prefix(300), as: UTF8.self))")
            }
            if !isReady, Self.contains(payload, "auth_error") {
                ready.fail(BenchError("connection \(index): authentication refused"))
            }
            return
        }
        switch role {
        case .chorusSubscriber(let expected):
            if !isReady, Self.contains(payload, "\"type\":\"subscribed\"") {
                acks += 1
                if acks >= expected { becomeReady(context: context) }
            }
        case .chorusPublisher:
            if !isReady, Self.contains(payload, "\"type\":\"auth_success\"") { becomeReady(context: context) }
        case .nchanSubscriber:
            break
        }
    }

    private static func contains(_ payload: UnsafeRawBufferPointer, _ needle: StaticString) -> Bool {
        let n = needle.utf8CodeUnitCount
        guard payload.count >= n else { return false }
        let p = needle.utf8Start
        var i = 0
        while i <= payload.count - n {
            if payload[i] == p[0] {
                var j = 1
                while j < n, payload[i + j] == p[j] { j += 1 }
                if j == n { return true }
            }
            i += 1
        }
        return false
    }

    /// Finds `"t":<digits>` and `"s":<digits>` anywhere in the payload in one pass.
    @inline(__always)
    static func scanMarkers(_ p: UnsafeRawBufferPointer) -> (Int64, Int64)? {
        let quote = UInt8(ascii: "\"")
        let colon = UInt8(ascii: ":")
        var t: Int64 = -1
        var s: Int64 = -1
        var i = 0
        let end = p.count - 4
        while i < end {
            if p[i] == quote, p[i + 2] == quote, p[i + 3] == colon {
                let key = p[i + 1]
                if key == UInt8(ascii: "t") || key == UInt8(ascii: "s") {
                    var j = i + 4
                    var value: Int64 = 0
                    var digits = 0
                    while j < p.count {
                        let d = p[j] &- 48
                        if d > 9 { break }
                        value = value &* 10 &+ Int64(d)
                        digits += 1
                        j += 1
                    }
                    if digits > 0 {
                        if key == UInt8(ascii: "t") { t = value } else { s = value }
                        if t >= 0, s >= 0 { return (t, s) }
                    }
                    i = j
                    continue
                }
                i += 4
                continue
            }
            i += 1
        }
        return nil
    }
}
