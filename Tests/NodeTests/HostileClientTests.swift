import ChorusClient
import Foundation
import Testing
import TestSupport

/// What one misbehaving connection can make a node hold, measured on a real node process:
/// clients that send as fast as the socket takes bytes and never read.
///
/// Each test resets the node's peak resident memory (`VmHWM`) before the flood and reads it
/// after, so the growth reported is the worst moment, not where memory settled. The figures
/// are printed (`hostile client: ...`) for docs/security.md.
@Suite("Hostile clients against a node process", .serialized)
struct HostileClientTests {
    static let mebibyte = 1 << 20

    /// Floods, each a pattern of whole frames repeated without end.
    static let floods: [(String, [UInt8])] = [
        ("pings", RawWebSocket.frame(0x9, [])),
        ("binary frames", RawWebSocket.frame(0x2, [1])),
        ("invalid JSON", RawWebSocket.frame(0x1, Array("{not json".utf8))),
        (
            "subscribe/unsubscribe churn",
            RawWebSocket.frame(0x1, Array(#"{"type":"subscribe","topic":"churn"}"#.utf8))
                + RawWebSocket.frame(0x1, Array(#"{"type":"unsubscribe","topic":"churn"}"#.utf8))
        ),
    ]

    @Test(
        "a client flooding at full speed without reading is closed 1008, the node's memory stays put, and a subscriber keeps receiving",
        arguments: floods)
    func flood(name: String, pattern: [UInt8]) async throws {
        try await withNodeProcess { node in
            let watch = try await Bystander(node)
            let memory = MemoryWatch(node)
            let client = try await RawWebSocket.connect(port: node.port, token: node.token("flooder"))
            let outcome = await client.flood(pattern, timeout: .seconds(60))
            let growth = try memory.growth()
            #expect(outcome.closedByNode, "\(name): \(outcome)")
            let code = await client.closeCode()
            #expect(code == 1008 || code == nil, "\(name): closed with \(code.map(String.init) ?? "no close frame")")
            #expect(growth < 4 * Self.mebibyte, "\(name): peak RSS grew \(growth) bytes")
            let connections = try #require(try await node.stats()["connections"] as? [String: Any])
            #expect(connections["closedFlooding"] as? Int == 1, "\(connections)")
            try await watch.receivesMarker()
            print("hostile client: \(name) flood: \(outcome), close code \(code.map(String.init) ?? "unread"), peak RSS growth \(MemoryWatch.format(growth))")
        }
    }

    @Test("a client whose replies back up (pings within a high rate, never read) is closed 4008, and the node stops reading it meanwhile")
    func repliesCountAgainstThePendingLimit() async throws {
        let environment = ["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "1000000", "WEBSOCKET_MAX_PENDING_BYTES": "65536"]
        try await withNodeProcess(environment) { node in
            let watch = try await Bystander(node)
            let memory = MemoryWatch(node)
            let client = try await RawWebSocket.connect(port: node.port, token: node.token("flooder"))
            // Each 125-byte ping asks for a 127-byte pong: the replies grow as fast as the flood.
            let flood = Task { await client.flood(RawWebSocket.frame(0x9, Array(repeating: 7, count: 125)), timeout: .seconds(60)) }
            try await watch.receivesMarker()  // during the flood (which lasts the 5 s close timeout at least)
            let outcome = await flood.value
            let growth = try memory.growth()
            #expect(outcome.closedByNode, "\(outcome)")
            let code = await client.closeCode()
            #expect(code == 4008 || code == nil, "closed with \(code.map(String.init) ?? "no close frame")")
            #expect(growth < 4 * Self.mebibyte, "peak RSS grew \(growth) bytes")
            let connections = try #require(try await node.stats()["connections"] as? [String: Any])
            #expect(connections["closedSlowConsumer"] as? Int == 1, "\(connections)")
            try await watch.receivesMarker()
            print("hostile client: unread pongs: \(outcome), close code \(code.map(String.init) ?? "unread"), peak RSS growth \(MemoryWatch.format(growth))")
        }
    }

    @Test("fifty clients flooding at once are all closed, within a few MiB each, and a subscriber keeps receiving")
    func fiftyAtOnce() async throws {
        try await withNodeProcess { node in
            let watch = try await Bystander(node)
            let memory = MemoryWatch(node)
            var clients: [(String, RawWebSocket, [UInt8])] = []
            for index in 0..<50 {
                let (name, pattern) = Self.floods[index % Self.floods.count]
                clients.append((name, try await RawWebSocket.connect(port: node.port, token: node.token("flooder-\(index)")), pattern))
            }
            let outcomes = await withTaskGroup(of: (String, RawWebSocket.FloodOutcome).self) { group in
                for (name, client, pattern) in clients {
                    group.addTask { (name, await client.flood(pattern, timeout: .seconds(120))) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let growth = try memory.growth()
            for (name, outcome) in outcomes { #expect(outcome.closedByNode, "\(name): \(outcome)") }
            #expect(growth < 50 * Self.mebibyte, "peak RSS grew \(growth) bytes for 50 clients")
            try await watch.receivesMarker()
            let slowest = outcomes.map(\.1.elapsed).max() ?? .zero
            print("hostile client: 50 at once: all closed within \(slowest), peak RSS growth \(MemoryWatch.format(growth)) (\(MemoryWatch.format(growth / 50)) per client)")
        }
    }
}

/// A well-behaved subscriber and a publisher on the same node: a marker published after the
/// flood must reach the subscriber.
struct Bystander {
    let subscriber: WebSocketClient
    let publisher: WebSocketClient

    init(_ node: NodeProcess) async throws {
        subscriber = try await node.connect(as: "bystander")
        _ = try await subscriber.request(["type": "subscribe", "topic": "news"])
        publisher = try await node.connect(as: "publisher")
    }

    func receivesMarker() async throws {
        let marker = UUID().uuidString
        try await publisher.send(json: ["type": "message", "topic": "news", "data": marker])
        while true {
            let message = try await subscriber.next(type: "message", timeout: .seconds(30))
            if message["data"] as? String == marker { return }
        }
    }
}

/// The node's peak resident memory from now on, against what it is now.
struct MemoryWatch {
    let node: NodeProcess
    let before: Int
    let peakTracked: Bool

    init(_ node: NodeProcess) {
        self.node = node
        self.peakTracked = node.resetPeakResident()
        self.before = (try? node.residentBytes()) ?? 0
    }

    /// The peak since ``init(_:)`` less the resident memory then (the resident memory now,
    /// where the peak cannot be reset).
    func growth() throws -> Int {
        (peakTracked ? try node.peakResidentBytes() : try node.residentBytes()) - before
    }

    static func format(_ bytes: Int) -> String {
        String(format: "%.2f MiB", Double(bytes) / Double(1 << 20))
    }
}
