import ArgumentParser
import Foundation
import NIOCore

@main
struct ChorusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chorus-bench",
        abstract: "Load generator for Chorus nodes (and Nchan, for comparison) over plain SwiftNIO.",
        discussion: """
            Subscribers are spread round-robin over the --url nodes; the publisher sends to \
            --publish-url (default: the first --url) at a fixed offered rate. Every message carries \
            its send time and a sequence number ({"t":<ns>,"s":<seq>}), so each delivery's latency and \
            every loss is measured. Loopback only: point it at servers on this machine.
            """,
        subcommands: [Broadcast.self, Rooms.self, Patterns.self, Latency.self, Connections.self])
}

extension TargetKind: ExpressibleByArgument {}
extension PublishVia: ExpressibleByArgument {}

struct CommonOptions: ParsableArguments {
    @Option(help: "chorus or nchan.") var target: TargetKind = .chorus
    @Option(name: .customLong("url"), help: "A node to connect subscribers to (repeatable), ws://host:port or host:port.")
    var urls: [String] = []
    @Option(help: "Node the publisher sends to (default: the first --url).") var publishURL: String?
    @Option(help: "ws: Chorus 'message' frames on /ws, Nchan frames on /pub/<topic> WebSockets; http: POST /api/publish or /pub/<topic>.")
    var publishVia: PublishVia = .ws
    @Option(help: "Nodes whose GET /stats to read (default for Chorus: every --url).") var statsURL: [String] = []
    @Option(help: "HS256 secret to mint tokens (default: $JWT_SECRET).") var jwtSecret: String?
    @Option(help: "API key for POST /api/publish (default: $API_KEY).") var apiKey: String?
    @Option(help: "Event-loop threads for the subscriber connections (the publisher has one more).") var threads = 1
    @Option(help: "Handshakes in flight at once while connecting.") var connectConcurrency = 200
    @Option(help: "Seconds a connection may take to be ready.") var connectTimeout = 15.0
    @Option(help: "Publisher connections (round-robin).") var publishers = 1
    @Option(help: "Pipelined requests in flight per HTTP publisher connection.") var httpPipeline = 64
    @Option(help: "Extra bytes of padding in each message.") var payloadBytes = 0
    @Flag(help: "Pad with chat-like text instead of x's, so that compression does what it does to chat messages.")
    var chatPadding = false
    @Flag(help: "Subscribers offer permessage-deflate (client_no_context_takeover) and inflate compressed deliveries.")
    var deflate = false
    @Option(help: "Measured seconds of publishing.") var duration = 5.0
    @Option(help: "Seconds of publishing before measuring.") var warmup = 1.0
    @Option(help: "At most this many seconds to wait for the last deliveries.") var drain = 10.0
    @Option(help: "Seconds to wait after connecting before publishing.") var settle = 1.0
    @Option(help: "A server process to sample for CPU and memory, NAME=PID (repeatable).") var watch: [String] = []
    @Option(help: "Write the result as JSON to this file.") var json: String?
    @Option(help: "A label stored in the JSON.") var label: String?
    @Flag(help: "No progress lines.") var quiet = false

    func settings() throws -> EngineSettings {
        let env = ProcessInfo.processInfo.environment
        guard !urls.isEmpty else { throw ValidationError("give at least one --url") }
        let nodes = try urls.map(Endpoint.init(parsing:))
        let publishNode = try publishURL.map(Endpoint.init(parsing:)) ?? nodes[0]
        let statsNodes = try statsURL.isEmpty ? (target == .chorus ? nodes : []) : statsURL.map(Endpoint.init(parsing:))
        let watched = try watch.map { spec -> WatchedProcess in
            let parts = spec.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let pid = Int32(parts[1]) else { throw ValidationError("--watch expects NAME=PID, got \(spec)") }
            return WatchedProcess(name: String(parts[0]), pid: pid)
        }
        return EngineSettings(
            target: target, subscriberNodes: nodes, publishNode: publishNode, publishVia: publishVia,
            statsNodes: statsNodes, jwtSecret: jwtSecret ?? env["JWT_SECRET"], apiKey: apiKey ?? env["API_KEY"],
            threads: threads, connectConcurrency: max(1, connectConcurrency), connectTimeout: connectTimeout,
            publishers: publishers, httpPipeline: max(1, httpPipeline), paddingBytes: payloadBytes,
            chatPadding: chatPadding, deflate: deflate,
            drainSeconds: drain, settleSeconds: settle, watched: watched, progress: !quiet)
    }
}

/// What one invocation reports (also the JSON file).
struct RunResult: Codable {
    var scenario: String
    var target: String
    var label: String?
    var startedAt: String
    var nodes: [String]
    var publishNode: String?
    var publishVia: String?
    var subscribers: Int
    var topics: Int
    var patternSubscribers: Int?
    var extraPatterns: Int?
    var slowConsumers: Int?
    var threads: Int
    var descriptorLimit: Int
    var connect: Engine.ConnectOutcome
    var result: TrialResult?
    var trials: [TrialResult]?
    var saturation: Saturation?
    var memory: MemoryResult?
    var nodeStatsAfter: [String: NodeStatsSample]?

    struct Saturation: Codable {
        var p99BoundMs: Double
        var highestPassingRate: Double?
        var deliveredPerSecondAtThatRate: Double?
        var firstFailingRate: Double?
    }
}

struct MemoryResult: Codable {
    struct Node: Codable {
        var node: String
        var connectionsBefore: Int
        var connectionsAfter: Int
        var residentBytesBefore: Int
        var residentBytesAfter: Int
        var bytesPerConnection: Double
    }

    struct Process: Codable {
        var name: String
        var rssBefore: Int
        var rssAfter: Int
        var pssBefore: Int
        var pssAfter: Int
    }

    var nodes: [Node] = []
    var processes: [Process] = []
    /// Sum of the watched processes' RSS (and PSS) growth over the connections held.
    var watchedRSSBytesPerConnection: Double?
    var watchedPSSBytesPerConnection: Double?
}

/// Scenario driver shared by the subcommands.
enum Runner {
    static func run(
        scenario: String, options: CommonOptions, plan: LoadPlan, rate: Double,
        findMax: (boundMs: Double, maxRate: Double, steps: Int)? = nil, extras: (inout RunResult) -> Void = { _ in }
    ) async throws {
        let limit = raiseDescriptorLimit()
        let settings = try options.settings()
        let engine = Engine(settings: settings)
        let started = ISO8601DateFormatter().string(from: Date())
        do {
            await engine.waitForQuiet()
            let connect = try await engine.connect(plan)
            log(String(format: "%d/%d connections ready in %.2f s (%.0f/s)", connect.ready, connect.requested, connect.seconds, connect.perSecond))
            guard connect.ready > 0 else { throw BenchError("no connection became ready") }
            try await Task.sleep(for: .milliseconds(Int(settings.settleSeconds * 1000)))
            let driver = try await engine.makePublisher(topics: plan.publishTopics)
            var report = RunResult(
                scenario: scenario, target: settings.target.rawValue, label: options.label, startedAt: started,
                nodes: settings.subscriberNodes.map(\.description), publishNode: settings.publishNode.description,
                publishVia: settings.publishVia.rawValue,
                subscribers: plan.connections.count, topics: plan.publishTopics.count, threads: settings.threads,
                descriptorLimit: limit, connect: connect)
            extras(&report)
            if let findMax {
                var trials: [TrialResult] = []
                var saturation = RunResult.Saturation(p99BoundMs: findMax.boundMs)
                var best: TrialResult?
                func passes(_ t: TrialResult) -> Bool {
                    t.lost == 0 && t.latency.p99Ms <= findMax.boundMs && t.publishedPerSecond >= 0.97 * t.offeredRate
                        && t.deliveredPerSecond >= 0.97 * t.offeredDeliveriesPerSecond
                }
                var low: Double? = nil
                var high: Double? = nil
                var current = rate
                var steps = 0
                while true {
                    log("trial at \(Int(current)) msg/s")
                    let t = try await engine.trial(
                        driver: driver, topics: plan.publishTopics, rate: current, warmup: options.warmup,
                        duration: options.duration)
                    printTrial(t, title: "trial \(Int(current)) msg/s: \(passes(t) ? "pass" : "fail")")
                    trials.append(t)
                    if passes(t) {
                        low = current
                        best = t
                    } else {
                        high = current
                    }
                    await engine.waitForQuiet()
                    if high == nil {
                        if current * 2 > findMax.maxRate { break }
                        current *= 2
                    } else if let l = low, let h = high {
                        steps += 1
                        if steps > findMax.steps || h - l < max(1, l * 0.05) { break }
                        current = ((l + h) / 2).rounded()
                    } else {
                        // Even the starting rate failed: halve until something passes (bounded).
                        steps += 1
                        if steps > findMax.steps || current / 2 < 1 { break }
                        current = (current / 2).rounded()
                    }
                }
                saturation.highestPassingRate = low
                saturation.deliveredPerSecondAtThatRate = best?.deliveredPerSecond
                saturation.firstFailingRate = high
                report.trials = trials
                report.saturation = saturation
                report.result = best ?? trials.last
            } else {
                let t = try await engine.trial(
                    driver: driver, topics: plan.publishTopics, rate: rate, warmup: options.warmup,
                    duration: options.duration)
                report.result = t
            }
            report.nodeStatsAfter = await nodeStats(engine)
            emit(report, options: options)
            await engine.shutdown()
        } catch {
            await engine.shutdown()
            throw error
        }
    }

    static func nodeStats(_ engine: Engine) async -> [String: NodeStatsSample]? {
        guard !engine.settings.statsNodes.isEmpty else { return nil }
        var result: [String: NodeStatsSample] = [:]
        for node in engine.settings.statsNodes {
            if let sample = try? await NodeStatsSample.fetch(group: engine.utilityGroup, node) {
                result[node.description] = sample
            }
        }
        return result
    }

    static func emit(_ report: RunResult, options: CommonOptions) {
        printReport(report)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let path = options.json, let data = try? encoder.encode(report) {
            do {
                try data.write(to: URL(fileURLWithPath: path))
                log("wrote \(path)")
            } catch {
                log("cannot write \(path): \(error)")
            }
        }
    }

    static func printReport(_ r: RunResult) {
        var lines: [String] = []
        lines.append("== \(r.scenario) against \(r.target)\(r.label.map { " (\($0))" } ?? "") ==")
        lines.append("nodes            \(r.nodes.joined(separator: ", "))  publish via \(r.publishVia ?? "-") to \(r.publishNode ?? "-")")
        lines.append(
            String(
                format: "connections      %d/%d ready, %d failed, in %.2f s (%.0f connections/s)", r.connect.ready,
                r.connect.requested, r.connect.failed, r.connect.seconds, r.connect.perSecond))
        if let s = r.saturation {
            lines.append(
                "saturation       highest rate passing (no loss, p99 <= \(s.p99BoundMs) ms): "
                    + (s.highestPassingRate.map { "\(Int($0)) msg/s" } ?? "none")
                    + (s.deliveredPerSecondAtThatRate.map { String(format: ", %.0f deliveries/s", $0) } ?? "")
                    + (s.firstFailingRate.map { "; first failing: \(Int($0)) msg/s" } ?? ""))
        }
        print(lines.joined(separator: "\n"))
        if let t = r.result { printTrial(t, title: r.saturation == nil ? "result" : "best passing trial") }
        if let m = r.memory {
            for n in m.nodes {
                print(
                    String(
                        format: "memory %@  connections %d -> %d, RSS %.1f MiB -> %.1f MiB: %.0f bytes per connection",
                        n.node, n.connectionsBefore, n.connectionsAfter, Double(n.residentBytesBefore) / 1048576,
                        Double(n.residentBytesAfter) / 1048576, n.bytesPerConnection))
            }
            for p in m.processes {
                print(
                    String(
                        format: "process %@  RSS %.1f -> %.1f MiB, PSS %.1f -> %.1f MiB", p.name, Double(p.rssBefore) / 1048576,
                        Double(p.rssAfter) / 1048576, Double(p.pssBefore) / 1048576, Double(p.pssAfter) / 1048576))
            }
            if let rss = m.watchedRSSBytesPerConnection, let pss = m.watchedPSSBytesPerConnection {
                print(String(format: "watched processes: %.0f bytes RSS (%.0f PSS) per connection", rss, pss))
            }
        }
    }

    static func printTrial(_ t: TrialResult, title: String) {
        var lines: [String] = ["-- \(title)"]
        lines.append(
            String(
                format: "publish          offered %.0f msg/s, sent %.0f msg/s, %d accepted in the measured %.1f s, %d failed, %d publisher errors",
                t.offeredRate, t.publishedPerSecond, t.published, t.measuredSeconds, t.publishFailures, t.publisherErrors))
        lines.append(
            String(
                format: "deliveries       %.0f/s (offered %.0f/s, after warm-up %.0f/s); %d of %d expected, lost %d (%.4f%%)%@, out of order %d",
                t.deliveredPerSecond, t.offeredDeliveriesPerSecond, t.measuredDeliveredPerSecond, t.delivered, t.expectedDeliveries, t.lost,
                t.lossPercent, t.drainTimedOut ? " (still arriving when the drain bound ended the wait)" : "", t.outOfOrder))
        lines.append(
            String(
                format: "latency ms       p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (n=%llu)",
                t.latency.p50Ms, t.latency.p90Ms, t.latency.p99Ms, t.latency.p999Ms, t.latency.maxMs, t.latency.meanMs,
                t.latency.count))
        var cpu = String(format: "cpu              bench %.0f%%", t.benchCPUPercent)
        for p in t.processes { cpu += String(format: ", %@ %.0f%%", p.name, p.cpuPercent) }
        lines.append(cpu)
        if let server = t.serverCPUMicrosPerDelivery, let bench = t.benchCPUMicrosPerDelivery {
            lines.append(String(format: "cpu per delivery servers %.3f us, generator %.3f us", server, bench))
        }
        if let wire = t.wireBytesPerDelivery {
            lines.append(String(format: "wire bytes       %.1f per delivery (text frames, headers included)", wire))
        }
        if let counted = t.nodeReportedDeliveries {
            lines.append("node /stats       \(counted) deliveries written by the nodes during the trial")
        }
        if t.serverErrors > 0 || t.disconnected > 0 || !t.closeCodes.isEmpty || t.stale > 0 {
            lines.append(
                "trouble          server errors \(t.serverErrors), disconnected \(t.disconnected), close codes \(t.closeCodes), stale \(t.stale)")
        }
        print(lines.joined(separator: "\n"))
        fflush(nil)  // all streams: `stdout` is a C global Swift 6 treats as shared mutable state
    }
}

// MARK: Scenarios

struct Broadcast: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "N subscribers on one topic spread over the nodes; a publisher at a fixed offered rate.")
    @OptionGroup var options: CommonOptions
    @Option(help: "Subscribers.") var subscribers = 1000
    @Option(help: "Offered messages per second (the starting rate with --find-max).") var rate = 2000.0
    @Option(help: "The topic.") var topic = "bench.broadcast"
    @Flag(help: "Search for the highest rate with no loss and p99 under --p99-bound-ms.") var findMax = false
    @Option(help: "The p99 bound for --find-max, in ms.") var p99BoundMs = 50.0
    @Option(help: "Highest rate --find-max tries.") var maxRate = 200_000.0
    @Option(help: "Bisection steps for --find-max.") var searchSteps = 4
    @Option(help: "Subscribers that never read (slow consumers), spread among the others.") var slowConsumers = 0

    func run() async throws {
        let n = subscribers
        let nodes = options.urls.count
        var plan = LoadPlan(
            connections: (0..<n).map { (node: $0 % max(1, nodes), subscriptions: [topic]) }, publishTopics: [topic],
            checkOrder: true)
        if slowConsumers > 0 {
            let step = max(1, n / slowConsumers)
            plan.slow = Set((0..<slowConsumers).map { ($0 * step + step / 2) % n })
        }
        let slow = slowConsumers
        try await Runner.run(
            scenario: slowConsumers > 0 ? "slow-consumers" : "broadcast", options: options, plan: plan, rate: rate,
            findMax: findMax ? (p99BoundMs, maxRate, searchSteps) : nil,
            extras: { if slow > 0 { $0.slowConsumers = slow } })
    }
}

struct Rooms: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "N subscribers over K topics (chat rooms); the publisher cycles over every topic.")
    @OptionGroup var options: CommonOptions
    @Option(help: "Subscribers.") var subscribers = 1000
    @Option(help: "Topics (rooms).") var topics = 100
    @Option(help: "Offered messages per second, over all topics.") var rate = 2000.0
    @Option(help: "Extra exact topics (bench.quiet.<j>) subscribed and never published to, spread over the connections: a bigger index, the same fan-out (Chorus only).")
    var extraTopics = 0

    func run() async throws {
        guard extraTopics == 0 || options.target == .chorus else {
            throw ValidationError("--extra-topics needs several subscriptions per connection (Chorus only)")
        }
        let names = (0..<topics).map { "bench.room.\($0)" }
        let nodes = max(1, options.urls.count)
        var connections: [(node: Int, subscriptions: [String])] = (0..<subscribers).map {
            (node: $0 % nodes, subscriptions: [names[$0 % names.count]])
        }
        for j in 0..<extraTopics { connections[j % subscribers].subscriptions.append("bench.quiet.\(j)") }
        let plan = LoadPlan(connections: connections, publishTopics: names, checkOrder: true)
        try await Runner.run(scenario: "rooms", options: options, plan: plan, rate: rate)
    }
}

struct Patterns: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Subscribers on a wildcard pattern among many exact ones, plus non-matching patterns (Chorus only).")
    @OptionGroup var options: CommonOptions
    @Option(help: "Subscribers.") var subscribers = 1000
    @Option(help: "Topics bench.pat.<k>.msg.") var topics = 100
    @Option(help: "Subscribers on bench.pat.*.msg instead of one exact topic.") var patternSubscribers = 100
    @Option(help: "Extra patterns that match nothing (bench.none<j>.*), spread over the connections.") var extraPatterns = 0
    @Option(help: "Offered messages per second, over all topics.") var rate = 2000.0

    func run() async throws {
        guard options.target == .chorus else { throw ValidationError("Nchan has no wildcard subscriptions") }
        let names = (0..<topics).map { "bench.pat.\($0).msg" }
        let nodes = max(1, options.urls.count)
        let step = max(1, subscribers / max(1, patternSubscribers))
        var connections: [(node: Int, subscriptions: [String])] = (0..<subscribers).map { i in
            let usesPattern = patternSubscribers > 0 && i % step == 0 && i / step < patternSubscribers
            return (node: i % nodes, subscriptions: [usesPattern ? "bench.pat.*.msg" : names[i % names.count]])
        }
        for j in 0..<extraPatterns { connections[j % subscribers].subscriptions.append("bench.none\(j).*") }
        let plan = LoadPlan(connections: connections, publishTopics: names, checkOrder: false)
        let (p, e) = (patternSubscribers, extraPatterns)
        try await Runner.run(
            scenario: "patterns", options: options, plan: plan, rate: rate,
            extras: {
                $0.patternSubscribers = p
                $0.extraPatterns = e
            })
    }
}

struct Latency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Low rate, cross-node: subscribers on every --url except the publisher's node (when there are several).")
    @OptionGroup var options: CommonOptions
    @Option(help: "Subscribers.") var subscribers = 100
    @Option(help: "Offered messages per second.") var rate = 100.0
    @Option(help: "The topic.") var topic = "bench.latency"

    func run() async throws {
        let settings = try options.settings()
        var nodeIndices = settings.subscriberNodes.indices.filter {
            settings.subscriberNodes[$0].description != settings.publishNode.description
        }
        if nodeIndices.isEmpty { nodeIndices = Array(settings.subscriberNodes.indices) }
        let plan = LoadPlan(
            connections: (0..<subscribers).map { (node: nodeIndices[$0 % nodeIndices.count], subscriptions: [topic]) },
            publishTopics: [topic], checkOrder: true)
        try await Runner.run(scenario: "latency", options: options, plan: plan, rate: rate)
    }
}

struct Connections: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hold N idle, authenticated, subscribed connections; report node memory per connection.")
    @OptionGroup var options: CommonOptions
    @Option(help: "Connections.") var connections = 10_000
    @Option(help: "Topics the connections subscribe to (round-robin).") var topics = 100
    @Option(help: "Seconds to hold the connections before reading memory.") var hold = 3.0

    func run() async throws {
        let limit = raiseDescriptorLimit()
        let settings = try options.settings()
        let engine = Engine(settings: settings)
        let names = (0..<topics).map { "bench.idle.\($0)" }
        let nodes = max(1, settings.subscriberNodes.count)
        let plan = LoadPlan(
            connections: (0..<connections).map { (node: $0 % nodes, subscriptions: [names[$0 % names.count]]) },
            publishTopics: names, checkOrder: false)
        let started = ISO8601DateFormatter().string(from: Date())
        do {
            await engine.waitForQuiet()
            var statsBefore: [String: NodeStatsSample] = [:]
            for node in settings.statsNodes {
                statsBefore[node.description] = try await NodeStatsSample.fetch(group: engine.utilityGroup, node)
            }
            let processBefore = engine.sampleProcesses()
            let connect = try await engine.connect(plan)
            log(String(format: "%d/%d connections ready in %.2f s (%.0f/s)", connect.ready, connect.requested, connect.seconds, connect.perSecond))
            try await Task.sleep(for: .milliseconds(Int(hold * 1000)))
            var memory = MemoryResult()
            var statsAfter: [String: NodeStatsSample] = [:]
            for node in settings.statsNodes {
                let after = try await NodeStatsSample.fetch(group: engine.utilityGroup, node)
                statsAfter[node.description] = after
                if let before = statsBefore[node.description] {
                    let added = after.connections - before.connections
                    memory.nodes.append(
                        .init(
                            node: node.description, connectionsBefore: before.connections, connectionsAfter: after.connections,
                            residentBytesBefore: before.residentBytes, residentBytesAfter: after.residentBytes,
                            bytesPerConnection: added > 0 ? Double(after.residentBytes - before.residentBytes) / Double(added) : 0))
                }
            }
            let processAfter = engine.sampleProcesses()
            var rssGrowth = 0
            var pssGrowth = 0
            for process in settings.watched {
                guard let b = processBefore[process.name], let a = processAfter[process.name] else { continue }
                memory.processes.append(
                    .init(name: process.name, rssBefore: b.rssBytes, rssAfter: a.rssBytes, pssBefore: b.pssBytes, pssAfter: a.pssBytes))
                rssGrowth += a.rssBytes - b.rssBytes
                pssGrowth += a.pssBytes - b.pssBytes
            }
            if !memory.processes.isEmpty, connect.ready > 0 {
                memory.watchedRSSBytesPerConnection = Double(rssGrowth) / Double(connect.ready)
                memory.watchedPSSBytesPerConnection = Double(pssGrowth) / Double(connect.ready)
            }
            let report = RunResult(
                scenario: "connections", target: settings.target.rawValue, label: options.label, startedAt: started,
                nodes: settings.subscriberNodes.map(\.description), publishNode: nil, publishVia: nil,
                subscribers: connections, topics: topics, threads: settings.threads, descriptorLimit: limit,
                connect: connect, memory: memory, nodeStatsAfter: statsAfter.isEmpty ? nil : statsAfter)
            Runner.emit(report, options: options)
            await engine.shutdown()
        } catch {
            await engine.shutdown()
            throw error
        }
    }
}
