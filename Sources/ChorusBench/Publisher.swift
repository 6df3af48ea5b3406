import NIOCore
import NIOHTTP1
import Synchronization

/// Where the publisher's messages go: a Chorus WebSocket, or HTTP (Chorus `/api/publish`,
/// Nchan `/pub/<topic>`). Everything runs on the publisher's event loop.
protocol PublishSink: AnyObject, Sendable {
    /// Sends one message; false when this sink cannot take another now (back-pressure).
    func send(topic: Int, sentAt: Int64, seq: Int64, measured: Bool) -> Bool
    func flush()
    /// Messages the server accepted, per topic, since the last reset: (trial, measured part).
    var accepted: [(trial: Int, measured: Int)] { get }
    var failed: Int { get }
    func reset()
}

/// The JSON that carries the send time and sequence number, plus optional padding.
struct PublishPayload {
    let padding: String

    /// - Parameter chat: pad with chat-like text (which deflate shrinks about as much as a chat
    ///   message) instead of x's (which it shrinks to almost nothing).
    init(paddingBytes: Int, chat: Bool = false) {
        let filler = chat ? Self.chatText : "x"
        let text = String(String(repeating: filler, count: paddingBytes / filler.count + 1).prefix(paddingBytes))
        padding = paddingBytes > 0 ? ",\"p\":\"" + text + "\"" : ""
    }

    /// Prose that does not repeat within a message (about 1,100 bytes), as chat text does not:
    /// the same as `PROSE` in scripts/lib/deflate_probe.py.
    static let chatText =
        "Morning all! The deploy went out at 9:40 and the error rate is back to normal. Bob, can you "
        + "check the dashboards for the EU region when you get a minute? Carol said the login page felt "
        + "slow around 10:15, maybe the cache warm-up after the restart, or the new font bundle we ship "
        + "since Tuesday. I opened ticket 4821 with the traces I had. Lunch is at 12:30 in the usual place; "
        + "Dmitri booked a table for eight, so tell him if you are coming. Reminder: the retro moved to "
        + "Thursday at 3pm, bring one thing that went well and one that did not. Also, whoever borrowed the "
        + "blue HDMI adapter from room 2B, please bring it back, the projector there has nothing else. "
        + "Quick poll for the offsite in March: Lisbon, Krakow or Valencia? Reply with an emoji below. "
        + "Finally, congratulations to Priya and the mobile team for shipping offline mode, the store "
        + "reviews this week are the best we have had all year, and support tickets dropped by a third."

    func data(sentAt: Int64, seq: Int64) -> String {
        "{\"t\":\(sentAt),\"s\":\(seq)\(padding)}"
    }
}

final class WebSocketPublishSink: PublishSink, @unchecked Sendable {
    private let channel: any Channel
    private let topics: [String]
    private let payload: PublishPayload
    private(set) var accepted: [(trial: Int, measured: Int)]
    var failed: Int { 0 }
    private var wrote = false

    init(channel: any Channel, topics: [String], payload: PublishPayload) {
        self.channel = channel
        self.topics = topics
        self.payload = payload
        self.accepted = Array(repeating: (0, 0), count: topics.count)
    }

    func send(topic: Int, sentAt: Int64, seq: Int64, measured: Bool) -> Bool {
        guard channel.isActive, channel.isWritable else { return false }
        let text =
            "{\"type\":\"message\",\"topic\":\"\(topics[topic])\",\"data\":\(payload.data(sentAt: sentAt, seq: seq))}"
        var buffer = channel.allocator.buffer(capacity: text.utf8.count + 14)
        WebSocketLoadHandler.writeFrameHeader(opcode: 0x1, length: text.utf8.count, into: &buffer)
        buffer.writeString(text)
        channel.write(buffer, promise: nil)
        wrote = true
        accepted[topic].trial += 1
        if measured { accepted[topic].measured += 1 }
        return true
    }

    func flush() {
        if wrote { channel.flush() }
        wrote = false
    }

    func reset() {
        accepted = Array(repeating: (0, 0), count: topics.count)
    }
}

/// Nchan's WebSocket publisher: one connection per topic to `/pub/<topic>`; every text frame
/// sent there is published with its body as-is.
final class NchanWebSocketPublishSink: PublishSink, @unchecked Sendable {
    private let channels: [any Channel]
    private let payload: PublishPayload
    private(set) var accepted: [(trial: Int, measured: Int)]
    var failed: Int { 0 }
    private var wrote: Set<Int> = []

    init(channels: [any Channel], payload: PublishPayload) {
        self.channels = channels
        self.payload = payload
        self.accepted = Array(repeating: (0, 0), count: channels.count)
    }

    func send(topic: Int, sentAt: Int64, seq: Int64, measured: Bool) -> Bool {
        let channel = channels[topic]
        guard channel.isActive, channel.isWritable else { return false }
        let text = payload.data(sentAt: sentAt, seq: seq)
        var buffer = channel.allocator.buffer(capacity: text.utf8.count + 14)
        WebSocketLoadHandler.writeFrameHeader(opcode: 0x1, length: text.utf8.count, into: &buffer)
        buffer.writeString(text)
        channel.write(buffer, promise: nil)
        wrote.insert(topic)
        accepted[topic].trial += 1
        if measured { accepted[topic].measured += 1 }
        return true
    }

    func flush() {
        for topic in wrote { channels[topic].flush() }
        wrote.removeAll(keepingCapacity: true)
    }

    func reset() {
        accepted = Array(repeating: (0, 0), count: channels.count)
    }
}

final class HTTPPublishSink: PublishSink, @unchecked Sendable {
    enum Style {
        case chorus(apiKey: String)
        case nchan
    }

    private let channel: any Channel
    private let topics: [String]
    private let payload: PublishPayload
    private let style: Style
    private let host: String
    private let depth: Int
    private var inFlight: [(topic: Int, measured: Bool)] = []
    private var inFlightHead = 0
    private(set) var accepted: [(trial: Int, measured: Int)]
    private(set) var failed = 0
    private var wrote = false

    init(channel: any Channel, counter: HTTPResponseCounter, topics: [String], payload: PublishPayload, style: Style,
         host: String, depth: Int)
    {
        self.channel = channel
        self.topics = topics
        self.payload = payload
        self.style = style
        self.host = host
        self.depth = depth
        self.accepted = Array(repeating: (0, 0), count: topics.count)
        counter.onResponse = { [unowned self] status, _ in self.response(status) }
    }

    private func response(_ status: HTTPResponseStatus) {
        guard inFlightHead < inFlight.count else { return }
        let entry = inFlight[inFlightHead]
        inFlightHead += 1
        if inFlightHead > 1024, inFlightHead * 2 > inFlight.count {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
        if (200..<300).contains(status.code) {
            accepted[entry.topic].trial += 1
            if entry.measured { accepted[entry.topic].measured += 1 }
        } else {
            failed += 1
            if failed <= 3 { log("publish answered HTTP \(status.code)") }
        }
    }

    func send(topic: Int, sentAt: Int64, seq: Int64, measured: Bool) -> Bool {
        guard channel.isActive, inFlight.count - inFlightHead < depth else { return false }
        let body: String
        let uri: String
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Type", value: "application/json")
        switch style {
        case .chorus(let apiKey):
            body = "{\"topic\":\"\(topics[topic])\",\"data\":\(payload.data(sentAt: sentAt, seq: seq))}"
            uri = "/api/publish"
            headers.add(name: "X-API-Key", value: apiKey)
        case .nchan:
            body = payload.data(sentAt: sentAt, seq: seq)
            uri = "/pub/\(topics[topic])"
        }
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        let buffer = channel.allocator.buffer(string: body)
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: uri, headers: headers)), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        channel.write(HTTPClientRequestPart.end(nil), promise: nil)
        inFlight.append((topic, measured))
        wrote = true
        return true
    }

    func flush() {
        if wrote { channel.flush() }
        wrote = false
    }

    func reset() {
        accepted = Array(repeating: (0, 0), count: topics.count)
        failed = 0
    }
}

/// What the publisher did in one trial.
struct PublishTrial: Sendable {
    var startNs: Int64 = 0
    var sent: Int
    var measuredSent: Int
    /// Monotonic times of the measured phase.
    var measureStartNs: Int64
    var endNs: Int64
    /// Ticks on which every sink pushed back.
    var blockedTicks: Int
}

/// Paces messages at a fixed offered rate with a 1 ms timer on the publisher's event loop. Each
/// tick sends what the elapsed time calls for (catching up after a late tick) and flushes once.
final class PublishDriver: @unchecked Sendable {
    let loop: any EventLoop
    private let sinks: [any PublishSink]
    private let topicCount: Int
    private let marks: Marks
    private var nextSeq: Int64 = 0
    let progressSent = Atomic<Int>(0)

    init(loop: any EventLoop, sinks: [any PublishSink], topicCount: Int, marks: Marks) {
        self.loop = loop
        self.sinks = sinks
        self.topicCount = topicCount
        self.marks = marks
    }

    // Trial state, touched only on `loop`.
    private var trial = PublishTrial(sent: 0, measuredSent: 0, measureStartNs: 0, endNs: 0, blockedTicks: 0)
    private var measuring = false
    private var sinkIndex = 0
    private var startNs: Int64 = 0
    private var warmupNs: Int64 = 0
    private var endNs: Int64 = 0
    private var rate = 0.0
    private var totalDue = 0
    private var maxPerTick = 1000
    private var promise: EventLoopPromise<PublishTrial>?

    /// Runs one trial; the future completes when the publisher stops sending.
    func run(rate: Double, warmup: Double, duration: Double) -> EventLoopFuture<PublishTrial> {
        loop.flatSubmit { [self] in
            for sink in sinks { sink.reset() }
            progressSent.store(0, ordering: .relaxed)
            let promise = loop.makePromise(of: PublishTrial.self)
            self.promise = promise
            marks.trialBase.store(nextSeq, ordering: .relaxed)
            marks.measureBase.store(warmup > 0 ? Int64.max : nextSeq, ordering: .relaxed)
            startNs = monotonicNanos()
            warmupNs = Int64(warmup * 1e9)
            endNs = startNs + Int64((warmup + duration) * 1e9)
            self.rate = rate
            totalDue = Int(rate * (warmup + duration))
            trial = PublishTrial(
                startNs: startNs, sent: 0, measuredSent: 0, measureStartNs: warmup > 0 ? 0 : startNs, endNs: 0, blockedTicks: 0)
            measuring = warmup <= 0
            maxPerTick = max(1000, Int(rate / 20))
            loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(1)) { task in
                self.tick(task)
            }
            return promise.futureResult
        }
    }

    private func tick(_ task: RepeatedTask) {
        let now = monotonicNanos()
        if !measuring, now - startNs >= warmupNs {
            measuring = true
            marks.measureBase.store(nextSeq, ordering: .relaxed)
            trial.measureStartNs = now
        }
        let due = min(Int(Double(min(now, endNs) - startNs) / 1e9 * rate) + 1, totalDue)
        var sentThisTick = 0
        var refusals = 0
        while trial.sent < due, sentThisTick < maxPerTick, refusals < sinks.count {
            let sink = sinks[sinkIndex % sinks.count]
            sinkIndex &+= 1
            let seq = nextSeq
            if sink.send(topic: Int(seq % Int64(topicCount)), sentAt: now, seq: seq, measured: measuring) {
                nextSeq += 1
                trial.sent += 1
                if measuring { trial.measuredSent += 1 }
                sentThisTick += 1
                refusals = 0
            } else {
                refusals += 1
            }
        }
        if refusals >= sinks.count { trial.blockedTicks += 1 }
        for sink in sinks { sink.flush() }
        progressSent.add(sentThisTick, ordering: .relaxed)
        if now >= endNs {
            trial.endNs = now
            task.cancel()
            promise?.succeed(trial)
            promise = nil
        }
    }

    /// Accepted counts of all sinks, per topic, and failures.
    func accepted() -> EventLoopFuture<(perTopic: [(trial: Int, measured: Int)], failed: Int)> {
        loop.submit { [self] in
            var total = Array(repeating: (trial: 0, measured: 0), count: topicCount)
            var failed = 0
            for sink in sinks {
                for (i, a) in sink.accepted.enumerated() {
                    total[i].trial += a.trial
                    total[i].measured += a.measured
                }
                failed += sink.failed
            }
            return (total, failed)
        }
    }
}
