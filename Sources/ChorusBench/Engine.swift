import Broker
import Foundation
import Histogram
import NIOCore
import NIOPosix
import Node

/// Which server the generator talks to.
enum TargetKind: String, Codable, Sendable {
    /// Chorus: `/ws?token=...`, subscribe frames, publish frames or `POST /api/publish`.
    case chorus
    /// Nchan: `/sub/<topic>` WebSockets, `POST /pub/<topic>` with the raw JSON body.
    case nchan
}

enum PublishVia: String, Codable, Sendable {
    case ws, http
}

/// A watched server process, for CPU and memory.
struct WatchedProcess: Sendable {
    var name: String
    var pid: Int32
}

/// Everything a run needs to know, fixed before it starts.
struct EngineSettings: Sendable {
    var target: TargetKind
    var subscriberNodes: [Endpoint]
    var publishNode: Endpoint
    var publishVia: PublishVia
    var statsNodes: [Endpoint]
    var jwtSecret: String?
    var apiKey: String?
    var threads: Int
    var connectConcurrency: Int
    var connectTimeout: Double
    var publishers: Int
    var httpPipeline: Int
    var paddingBytes: Int
    /// Padding of chat-like text rather than x's (`--chat-padding`).
    var chatPadding = false
    /// Subscribers offer permessage-deflate (`--deflate`).
    var deflate = false
    var drainSeconds: Double
    var settleSeconds: Double
    var watched: [WatchedProcess]
    var progress: Bool
}

/// Who connects where and subscribes to what, and what gets published.
struct LoadPlan: Sendable {
    /// Per connection: its node (index into subscriberNodes) and its subscriptions.
    var connections: [(node: Int, subscriptions: [String])]
    var publishTopics: [String]
    /// Check per-connection ordering (meaningful when each connection gets one topic's stream).
    var checkOrder: Bool
    /// Connections that stop reading once subscribed (slow consumers).
    var slow: Set<Int> = []
}

/// The load generator: subscriber connections on `threads` event loops, the publisher on one
/// more loop of its own.
final class Engine: @unchecked Sendable {
    let settings: EngineSettings
    let group: MultiThreadedEventLoopGroup
    let publisherGroup: MultiThreadedEventLoopGroup
    let utilityGroup: MultiThreadedEventLoopGroup
    let loops: [any EventLoop]
    let stats: [LoopStats]
    let marks = Marks()
    /// Shared by the publisher connections (their loop only): counts error replies.
    let publisherStats = LoopStats()
    private(set) var channels: [any Channel] = []
    private var publisherChannels: [any Channel] = []
    /// Indices of the connections that became ready.
    private(set) var readyConnections: [Int] = []
    private var plan: LoadPlan?

    init(settings: EngineSettings) {
        self.settings = settings
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, settings.threads))
        publisherGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        utilityGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loops = group.makeIterator().map { $0 }
        stats = loops.map { _ in LoopStats() }
    }

    func shutdown() async {
        for channel in channels + publisherChannels { channel.close(promise: nil) }
        try? await Task.sleep(for: .milliseconds(200))
        try? await group.shutdownGracefully()
        try? await publisherGroup.shutdownGracefully()
        try? await utilityGroup.shutdownGracefully()
    }

    // MARK: Connecting

    struct ConnectOutcome: Codable, Sendable {
        var requested: Int
        var ready: Int
        var failed: Int
        var seconds: Double
        var perSecond: Double
        var firstError: String?
    }

    private func minter() throws -> TokenMinter {
        guard let secret = settings.jwtSecret, !secret.isEmpty else {
            throw BenchError("Chorus needs --jwt-secret (or JWT_SECRET) to mint tokens")
        }
        return TokenMinter(secret: Array(secret.utf8))
    }

    private static func upgradeRequest(path: String, endpoint: Endpoint, deflate: Bool = false) -> String {
        "GET \(path) HTTP/1.1\r\nHost: \(endpoint)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + (deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n" : "")
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    }

    /// Opens every connection of the plan, at most `connectConcurrency` handshakes at a time.
    func connect(_ plan: LoadPlan) async throws -> ConnectOutcome {
        self.plan = plan
        // Tokens are minted before the clock starts, so the connect rate measures the server.
        let tokens: [String]
        if settings.target == .chorus {
            let minter = try minter()
            tokens = plan.connections.indices.map { minter.mint(subject: "bench-\($0)", ttl: .seconds(7200)) }
        } else {
            tokens = []
        }
        let start = monotonicNanos()
        var failed = 0
        var firstError: String?
        var ready: [Int] = []
        var opened: [any Channel] = []
        let total = plan.connections.count
        var lastProgress = start

        try await withThrowingTaskGroup(of: (Int, (any Channel)?, String?).self) { tasks in
            var next = 0
            func add() {
                let index = next
                next += 1
                let spec = plan.connections[index]
                let endpoint = settings.subscriberNodes[spec.node]
                let loopIndex = index % loops.count
                let loop = loops[loopIndex]
                let stats = stats[loopIndex]
                let marks = marks
                let path: String
                let role: LoadRole
                var after: [String] = []
                switch settings.target {
                case .chorus:
                    path = "/ws?token=" + tokens[index]
                    role = .chorusSubscriber(acks: spec.subscriptions.count)
                    after = spec.subscriptions.map { "{\"type\":\"subscribe\",\"topic\":\"\($0)\"}" }
                case .nchan:
                    path = "/sub/" + spec.subscriptions[0]
                    role = .nchanSubscriber
                }
                let request = Self.upgradeRequest(path: path, endpoint: endpoint, deflate: settings.deflate)
                let afterUpgrade = after  // a constant for the connection task
                let checkOrder = plan.checkOrder
                let slow = plan.slow.contains(index)
                let timeout = settings.connectTimeout
                tasks.addTask {
                    let promise = loop.makePromise(of: Void.self)
                    do {
                        var bootstrap = ClientBootstrap(group: loop).channelOption(.socketOption(.tcp_nodelay), value: 1)
                        if slow {
                            // A small receive window, so that a client that stops reading backs
                            // up into the server's queue within seconds rather than after
                            // filling megabytes of loopback socket buffers.
                            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: 4096)
                        }
                        let channel = try await bootstrap
                            .connectTimeout(.seconds(Int64(timeout)))
                            .channelInitializer { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try channel.pipeline.syncOperations.addHandler(
                                        WebSocketLoadHandler(
                                            index: index, role: role, upgradeRequest: request, afterUpgrade: afterUpgrade,
                                            stats: stats, marks: marks, ready: promise, checkOrder: checkOrder,
                                            stopReadingWhenReady: slow))
                                }
                            }
                            .connect(host: endpoint.host, port: endpoint.port).get()
                        let timer = loop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) {
                            promise.fail(BenchError("connection \(index) not ready within \(timeout) s"))
                        }
                        do {
                            try await promise.futureResult.get()
                            timer.cancel()
                            return (index, channel, nil)
                        } catch {
                            timer.cancel()
                            channel.close(promise: nil)
                            return (index, nil, "\(error)")
                        }
                    } catch {
                        promise.fail(error)
                        return (index, nil, "\(error)")
                    }
                }
            }
            while next < total, next < settings.connectConcurrency { add() }
            while let (index, channel, error) = try await tasks.next() {
                if let channel {
                    opened.append(channel)
                    ready.append(index)
                } else {
                    failed += 1
                    if firstError == nil { firstError = error }
                }
                if next < total { add() }
                let now = monotonicNanos()
                if settings.progress, now - lastProgress > 1_000_000_000 {
                    lastProgress = now
                    log("connecting: \(ready.count)/\(total) ready, \(failed) failed")
                }
            }
        }
        let seconds = Double(monotonicNanos() - start) / 1e9
        channels = opened
        readyConnections = ready.sorted()
        if let firstError { log("\(failed) connections failed; first: \(firstError)") }
        return ConnectOutcome(
            requested: total, ready: ready.count, failed: failed, seconds: seconds,
            perSecond: Double(ready.count) / max(seconds, 1e-9), firstError: firstError)
    }

    // MARK: Publishing

    /// A publisher's WebSocket to `path`, upgraded and kept for closing at the end.
    private func openPublisherSocket(
        path: String, index: Int, role: LoadRole, on loop: any EventLoop, to endpoint: Endpoint
    ) async throws -> any Channel {
        let promise = loop.makePromise(of: Void.self)
        let request = Self.upgradeRequest(path: path, endpoint: endpoint)
        let (stats, marks) = (publisherStats, marks)
        let channel = try await ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        WebSocketLoadHandler(
                            index: index, role: role, upgradeRequest: request, afterUpgrade: [],
                            stats: stats, marks: marks, ready: promise, checkOrder: false))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        try await promise.futureResult.get()
        publisherChannels.append(channel)
        return channel
    }

    func makePublisher(topics: [String]) async throws -> PublishDriver {
        let loop = publisherGroup.next()
        let payload = PublishPayload(paddingBytes: settings.paddingBytes, chat: settings.chatPadding)
        var sinks: [any PublishSink] = []
        let endpoint = settings.publishNode
        let via = settings.publishVia
        if settings.target == .nchan, via == .ws {
            // One WebSocket per topic to /pub/<topic>, per publisher connection set.
            for _ in 0..<max(1, settings.publishers) {
                var channels: [any Channel] = []
                for topic in topics {
                    channels.append(try await openPublisherSocket(
                        path: "/pub/\(topic)", index: -1, role: .nchanSubscriber, on: loop, to: endpoint))
                }
                let sink = try await loop.submit { [channels] in
                    NchanWebSocketPublishSink(channels: channels, payload: payload)
                }.get()
                sinks.append(sink)
            }
            return PublishDriver(loop: loop, sinks: sinks, topicCount: topics.count, marks: marks)
        }
        for p in 0..<max(1, settings.publishers) {
            switch via {
            case .ws:
                let token = try minter().mint(subject: "bench-publisher-\(p)", ttl: .seconds(7200))
                let channel = try await openPublisherSocket(
                    path: "/ws?token=" + token, index: -1 - p, role: .chorusPublisher, on: loop, to: endpoint)
                let sink = try await loop.submit {
                    WebSocketPublishSink(channel: channel, topics: topics, payload: payload)
                }.get()
                sinks.append(sink)
            case .http:
                let style: HTTPPublishSink.Style
                if settings.target == .nchan {
                    style = .nchan
                } else {
                    guard let key = settings.apiKey else { throw BenchError("HTTP publishing to Chorus needs --api-key") }
                    style = .chorus(apiKey: key)
                }
                let (channel, counter) = try await connectHTTP(group: loop, to: endpoint, keepBody: false)
                publisherChannels.append(channel)
                let depth = settings.httpPipeline
                let sink = try await loop.submit {
                    HTTPPublishSink(
                        channel: channel, counter: counter, topics: topics, payload: payload, style: style,
                        host: "\(endpoint)", depth: depth)
                }.get()
                sinks.append(sink)
            }
        }
        return PublishDriver(loop: loop, sinks: sinks, topicCount: topics.count, marks: marks)
    }

    /// How many ready, reading connections each published topic reaches.
    func audience(for topics: [String]) throws -> [Int] {
        guard let plan else { return topics.map { _ in 0 } }
        let parsedTopics = try topics.map { try Topic($0) }
        var counts = Array(repeating: 0, count: topics.count)
        var cache: [String: [Bool]] = [:]
        for index in readyConnections where !plan.slow.contains(index) {
            for subscription in plan.connections[index].subscriptions {
                let matches: [Bool]
                if let cached = cache[subscription] {
                    matches = cached
                } else if settings.target == .nchan {
                    matches = topics.map { $0 == subscription }
                    cache[subscription] = matches
                } else {
                    let pattern = try TopicPattern(subscription)
                    matches = parsedTopics.map { pattern.matches($0) }
                    cache[subscription] = matches
                }
                for (t, hit) in matches.enumerated() where hit { counts[t] += 1 }
            }
        }
        return counts
    }

    // MARK: Trials

    /// Waits (at most `maxSeconds`) until the watched server processes are idle, so one
    /// measurement does not start while a server still works off the previous one's backlog.
    func waitForQuiet(maxSeconds: Double = 30, threshold: Double = 0.1) async {
        guard !settings.watched.isEmpty else { return }
        let start = monotonicNanos()
        var before = sampleProcesses()
        var t0 = monotonicNanos()
        while Double(monotonicNanos() - start) / 1e9 < maxSeconds {
            try? await Task.sleep(for: .milliseconds(500))
            let after = sampleProcesses()
            let t1 = monotonicNanos()
            var busy = 0.0
            for (name, a) in after { if let b = before[name] { busy += a.cpuSeconds - b.cpuSeconds } }
            let cores = busy / (Double(t1 - t0) / 1e9)
            if cores < threshold { return }
            before = after
            t0 = t1
        }
        log("servers still busy after \(Int(maxSeconds)) s of waiting; starting anyway")
    }

    func sampleProcesses() -> [String: ProcessSample] {
        var samples: [String: ProcessSample] = [:]
        for process in settings.watched {
            if let sample = ProcessSample.read(pid: process.pid) { samples[process.name] = sample }
        }
        return samples
    }

    private func snapshots() async throws -> [LoopSnapshot] {
        var result: [LoopSnapshot] = []
        for (loop, stats) in zip(loops, stats) {
            result.append(try await loop.submit { stats.snapshot() }.get())
        }
        return result
    }

    private func receivedSoFar() -> Int {
        stats.reduce(0) { $0 + $1.progressReceived.load(ordering: .relaxed) }
    }

    /// One trial at `rate`: reset counters, publish for warm-up + duration, wait for the last
    /// deliveries (bounded), and gather.
    func trial(driver: PublishDriver, topics: [String], rate: Double, warmup: Double, duration: Double) async throws
        -> TrialResult
    {
        let audience = try audience(for: topics)
        for (loop, stats) in zip(loops, stats) {
            try await loop.submit {
                stats.resetForTrial()
                stats.progressReceived.store(0, ordering: .relaxed)
            }.get()
        }
        var nodeDeliveredBefore: [String: Int] = [:]
        for node in settings.statsNodes {
            if let sample = try? await NodeStatsSample.fetch(group: utilityGroup, node) {
                nodeDeliveredBefore[node.description] = sample.delivered
            }
        }
        let processBefore = sampleProcesses()
        let cpuBefore = ownCPUSeconds()
        let wallBefore = monotonicNanos()

        let progressTask: Task<Void, Never>? =
            settings.progress
            ? Task { [self] in
                var lastReceived = 0
                var lastSent = 0
                var last = monotonicNanos()
                let begin = last
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if Task.isCancelled { break }
                    let now = monotonicNanos()
                    let received = receivedSoFar()
                    let sent = driver.progressSent.load(ordering: .relaxed)
                    let dt = Double(now - last) / 1e9
                    log(
                        String(
                            format: "t=%4.1fs  sent %d (%.0f/s)  delivered %d (%.0f/s)",
                            Double(now - begin) / 1e9, sent, Double(sent - lastSent) / dt, received,
                            Double(received - lastReceived) / dt))
                    lastReceived = received
                    lastSent = sent
                    last = now
                }
            } : nil
        defer { progressTask?.cancel() }

        let published = try await driver.run(rate: rate, warmup: warmup, duration: duration).get()
        let processAfter = sampleProcesses()
        let cpuAfter = ownCPUSeconds()
        let wallAfter = monotonicNanos()

        var result = TrialResult()
        // Drain: wait until every expected delivery arrived, nothing moved for 2 s, or the bound.
        let drainStart = monotonicNanos()
        var lastCount = -1
        var lastChange = drainStart
        var expectedTotal = 0
        var accepted = try await driver.accepted().get()
        while true {
            accepted = try await driver.accepted().get()
            expectedTotal = zip(accepted.perTopic, audience).reduce(0) { $0 + $1.0.trial * $1.1 }
            let received = receivedSoFar()
            let now = monotonicNanos()
            if received >= expectedTotal, accepted.perTopic.reduce(0, { $0 + $1.trial }) + accepted.failed >= published.sent {
                break
            }
            if received != lastCount {
                lastCount = received
                lastChange = now
            }
            if now - lastChange > 5_000_000_000 { break }
            if Double(now - drainStart) / 1e9 > settings.drainSeconds {
                result.drainTimedOut = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        progressTask?.cancel()
        let processEnd = sampleProcesses()
        let cpuEnd = ownCPUSeconds()
        if !settings.statsNodes.isEmpty {
            var total = 0
            var complete = true
            for node in settings.statsNodes {
                if let before = nodeDeliveredBefore[node.description],
                    let after = try? await NodeStatsSample.fetch(group: utilityGroup, node)
                {
                    total += after.delivered - before
                } else {
                    complete = false
                }
            }
            if complete { result.nodeReportedDeliveries = total }
        }

        let parts = try await snapshots()
        let publisherStats = publisherStats
        result.publisherErrors = try await driver.loop.submit {
            defer { publisherStats.errors = 0 }
            return publisherStats.errors
        }.get()
        var histogram = LoopStats.emptyHistogram()
        var firstMeasured = Int64.max
        var lastMeasured: Int64 = 0
        var lastTrial: Int64 = 0
        var wireBytes = 0
        for part in parts {
            lastTrial = max(lastTrial, part.lastTrialNs)
            histogram.add(part.histogram)
            result.delivered += part.trialReceived
            result.measuredDelivered += part.measuredReceived
            wireBytes += part.wireBytes
            result.stale += part.stale
            result.outOfOrder += part.outOfOrder
            result.serverErrors += part.errors
            firstMeasured = min(firstMeasured, part.firstMeasuredNs)
            lastMeasured = max(lastMeasured, part.lastMeasuredNs)
            for (code, n) in part.closeCodes { result.closeCodes["\(code)", default: 0] += n }
            result.disconnected += part.disconnected
        }
        let measuredSeconds = Double(published.endNs - published.measureStartNs) / 1e9
        result.offeredRate = rate
        result.published = accepted.perTopic.reduce(0) { $0 + $1.measured }
        result.publishFailures = accepted.failed
        result.publishedPerSecond = Double(published.measuredSent) / max(measuredSeconds, 1e-9)
        result.publisherBlockedTicks = published.blockedTicks
        result.expectedDeliveries = expectedTotal
        let expectedMeasured = zip(accepted.perTopic, audience).reduce(0) { $0 + $1.0.measured * $1.1 }
        result.lost = expectedTotal - result.delivered
        result.lossPercent = expectedTotal > 0 ? 100 * Double(result.lost) / Double(expectedTotal) : 0
        result.measuredSeconds = measuredSeconds
        // Every delivery of the trial over the time from its first publish to its last delivery: when
        // the server keeps up this is the offered rate; when it falls behind, the rate it sustained.
        let deliverySpan = Double(max(lastTrial, published.endNs) - published.startNs) / 1e9
        result.deliverySeconds = deliverySpan
        result.deliveredPerSecond = Double(result.delivered) / max(deliverySpan, 1e-9)
        let measuredSpan = Double(max(lastMeasured, published.endNs) - published.measureStartNs) / 1e9
        result.measuredDeliveredPerSecond = lastMeasured > 0 ? Double(result.measuredDelivered) / max(measuredSpan, 1e-9) : 0
        result.offeredDeliveriesPerSecond = Double(expectedTotal) / max(Double(published.endNs - published.startNs) / 1e9, 1e-9)
        _ = expectedMeasured
        result.latency = LatencySummary(histogram)
        let wall = Double(wallAfter - wallBefore) / 1e9
        var serverCPU = 0.0
        for process in settings.watched {
            if let b = processBefore[process.name], let e = processEnd[process.name] { serverCPU += e.cpuSeconds - b.cpuSeconds }
        }
        if result.delivered > 0 {
            result.wireBytesPerDelivery = Double(wireBytes) / Double(result.delivered)
            result.serverCPUMicrosPerDelivery = serverCPU * 1e6 / Double(result.delivered)
            result.benchCPUMicrosPerDelivery = (cpuEnd - cpuBefore) * 1e6 / Double(result.delivered)
        }
        result.benchCPUPercent = 100 * (cpuAfter - cpuBefore) / wall
        for process in settings.watched {
            guard let before = processBefore[process.name], let after = processAfter[process.name] else { continue }
            result.processes.append(
                ProcessUsage(
                    name: process.name, cpuPercent: 100 * (after.cpuSeconds - before.cpuSeconds) / wall,
                    rssBytes: after.rssBytes))
        }
        return result
    }
}

struct LatencySummary: Codable, Sendable {
    var count: UInt64 = 0
    var p50Ms = 0.0
    var p90Ms = 0.0
    var p99Ms = 0.0
    var p999Ms = 0.0
    var maxMs = 0.0
    var meanMs = 0.0

    init() {}

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        guard count > 0 else { return }
        func ms(_ value: UInt64) -> Double { Double(value) / 1e6 }
        p50Ms = ms(histogram.valueAtPercentile(50))
        p90Ms = ms(histogram.valueAtPercentile(90))
        p99Ms = ms(histogram.valueAtPercentile(99))
        p999Ms = ms(histogram.valueAtPercentile(99.9))
        maxMs = ms(histogram.max)
        meanMs = histogram.mean / 1e6
    }
}

struct ProcessUsage: Codable, Sendable {
    var name: String
    var cpuPercent: Double
    var rssBytes: Int
}

struct TrialResult: Codable, Sendable {
    var offeredRate = 0.0
    var publishedPerSecond = 0.0
    /// Messages accepted by the server in the measured phase.
    var published = 0
    var publishFailures = 0
    var publisherBlockedTicks = 0
    /// Error replies the publisher's connections received (rate limits, refusals).
    var publisherErrors = 0
    /// Deliveries the whole trial (warm-up included) should have produced, and what arrived.
    var expectedDeliveries = 0
    var delivered = 0
    /// Expected deliveries that had not arrived when the drain ended.
    var lost = 0
    var lossPercent = 0.0
    /// True when deliveries were still arriving at the drain bound (a backlog, not necessarily loss).
    var drainTimedOut = false
    var measuredDelivered = 0
    var measuredSeconds = 0.0
    var deliverySeconds = 0.0
    var offeredDeliveriesPerSecond = 0.0
    /// All deliveries of the trial / (last delivery - first publish).
    var deliveredPerSecond = 0.0
    /// Deliveries past the warm-up / (their last delivery - the warm-up's end).
    var measuredDeliveredPerSecond = 0.0
    var latency = LatencySummary()
    var outOfOrder = 0
    var stale = 0
    var serverErrors = 0
    var disconnected = 0
    var closeCodes: [String: Int] = [:]
    var benchCPUPercent = 0.0
    var processes: [ProcessUsage] = []
    /// CPU seconds of all watched server processes from the trial's start to the end of the
    /// drain, per delivery, in µs: a cost measure that holds on a busy machine.
    var serverCPUMicrosPerDelivery: Double?
    var benchCPUMicrosPerDelivery: Double?
    /// Bytes of text frames (headers included) the subscribers received, per delivery: what
    /// permessage-deflate (`--deflate`) saves on the wire.
    var wireBytesPerDelivery: Double?
    /// Deliveries the Chorus nodes count in /stats over the trial (all nodes).
    var nodeReportedDeliveries: Int?
}
