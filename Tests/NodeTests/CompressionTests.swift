import ChorusClient
import Foundation
import NIOCore
import NIOWebSocket
import Testing
import TestSupport

@testable import Node

/// permessage-deflate over a running node, against clients the project does not write
/// (Python's `websockets`, Python's own zlib over a raw socket) as well as its own.
@Suite("permessage-deflate (WEBSOCKET_COMPRESSION) over a running node")
struct CompressionTests {
    static let on = ["WEBSOCKET_COMPRESSION": "on"]
    static let probe = Executable.packageRoot.appendingPathComponent("scripts/lib/deflate_probe.py").path

    /// Runs `scripts/lib/deflate_probe.py` with `arguments`.
    static func startProbe(_ arguments: [String]) async throws -> ChildProcess {
        let python = try Executable.find("python3", hint: "install Python 3 and `pip install websockets`")
        let log = try TestLogs.folder("deflate-probe").appendingPathComponent("probe.log")
        return try await ChildProcess.spawn(python, [probe] + arguments, log: log)
    }

    /// The JSON object a probe prints last, once it has exited 0.
    static func result(of probe: ChildProcess, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        let status = await probe.wait(timeout: timeout)
        guard status == 0, let last = probe.output().split(separator: "\n").last,
            let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        else {
            await probe.stop()
            throw TestFailure("probe exited \(status.map(String.init) ?? "not"): \(probe.output())")
        }
        return json
    }

    /// Waits until the raw probe has subscribed.
    static func ready(_ probe: ChildProcess) async throws {
        guard await eventually(within: .seconds(30), { probe.output().contains("ready") || !probe.isRunning }),
            probe.output().contains("ready")
        else { throw TestFailure("probe did not subscribe: \(probe.output())") }
    }

    static func stats(_ node: TestNode) async throws -> (messages: [String: Any], connections: [String: Any]) {
        let stats = try await HTTP.get("\(node.baseURL)/stats").json()
        return (stats["messages"] as? [String: Any] ?? [:], stats["connections"] as? [String: Any] ?? [:])
    }

    /// About 600 bytes of chat message, as `realistic_message` in the probe makes them.
    static func chatMessage(_ seq: Int) -> [String: Any] {
        let words = "the deploy finished and the dashboards look green again, thanks everyone for staying late; "
        return [
            "seq": seq, "text": String(repeating: words, count: 5), "author": "alice", "room": "general",
            "mentions": ["bob", "carol"],
        ]
    }

    @Test("Python's websockets negotiates permessage-deflate; its compressed messages (context takeover) are read, and it inflates what it receives")
    func pythonWebsockets() async throws {
        try await withNode(Self.on) { node in
            let count = 20
            let probe = try await Self.startProbe([
                "websockets", "\(node.port)", node.token("py-sub"), node.token("py-pub"), "py.room", "\(count)", "700",
            ])
            let result = try await Self.result(of: probe)
            #expect(result["subscriberExtensions"] as? String == "permessage-deflate; server_no_context_takeover")
            #expect(result["publisherExtensions"] as? String == "permessage-deflate; server_no_context_takeover")
            #expect(result["negotiated"] as? [String] == ["PerMessageDeflate"])
            #expect(result["intact"] as? Bool == true, "\(result)")
            let (messages, _) = try await Self.stats(node)
            #expect(messages["compressed"] as? Int == count)
            #expect((messages["inflated"] as? Int ?? 0) >= count, "the library compresses what it sends")
        }
    }

    @Test("a broadcast is compressed once per message, not per subscriber: every subscriber that agreed gets the same compressed frame, the others plain text")
    func encodeOnce() async throws {
        try await withNode(Self.on) { node in
            let offer = "permessage-deflate; client_no_context_takeover"
            var compressing: [WebSocketClient] = []
            for index in 0..<4 {
                let client = try await node.connect(
                    path: "/ws?token=\(node.token("deflate-\(index)"))", headers: [("Sec-WebSocket-Extensions", offer)])
                _ = try await client.nextJSON()  // auth_success: short, so not compressed
                try await client.subscribe("room")
                compressing.append(client)
            }
            let probe = try await Self.startProbe(["raw", "\(node.port)", node.token("raw"), "room", "20", "permessage-deflate; client_max_window_bits"])
            try await Self.ready(probe)
            let plain = try await node.connect(as: "plain")
            try await plain.subscribe("room")
            let publisher = try await node.connect(as: "publisher")
            let messages = 20
            for seq in 0..<messages {
                try await publisher.publish(topic: "room", data: Self.chatMessage(seq))
            }

            for seq in 0..<messages {
                let delivery = try await plain.nextJSON()
                #expect((delivery["data"] as? [String: Any])?["seq"] as? Int == seq, "plain text, readable as JSON")
            }
            let raw = try await Self.result(of: probe)
            #expect(raw["extensions"] as? String == "permessage-deflate; server_no_context_takeover")
            let frames = raw["messages"] as? [[String: Any]] ?? []
            #expect(frames.count == messages)
            for frame in frames {
                #expect(frame["rsv1"] as? Bool == true)
                #expect((frame["wireBytes"] as? Int ?? .max) < (frame["jsonBytes"] as? Int ?? 0) / 2, "\(frame)")
            }
            let receivers = compressing.count + 2
            let delivered = await eventually { (try? await Self.stats(node).messages["delivered"] as? Int) == receivers * messages }
            #expect(delivered)
            let (stats, connections) = try await Self.stats(node)
            #expect(stats["compressed"] as? Int == messages, "one compression per message, not \(receivers) per message")
            #expect(connections["compressing"] as? Int == compressing.count)
            for client in compressing { await client.close() }
            await plain.close()
        }
    }

    @Test("a compressed message that inflates past WEBSOCKET_MAX_MESSAGE_SIZE (a zip bomb) closes with 1009; the node serves on")
    func zipBomb() async throws {
        try await withNode(Self.on.merging(["WEBSOCKET_MAX_MESSAGE_SIZE": "65536"]) { $1 }) { node in
            let bomber = try await node.connect(
                path: "/ws?token=\(node.token("bomber"))", headers: [("Sec-WebSocket-Extensions", "permessage-deflate")])
            _ = try await bomber.nextJSON()
            // 64 MiB of the same JSON byte: a frame of about 64 KiB, far under the limit.
            let bomb = MessageDeflater().compress([UInt8](repeating: 0x20, count: 64 << 20))
            #expect(bomb.count < 65536)
            try await bomber.send(WebSocketFrame(fin: true, rsv1: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: bomb)))
            #expect(try await bomber.closeCode() == 1009)
            let other = try await node.connect(as: "other")
            #expect(try await other.request(["type": "ping"])["type"] as? String == "pong")
        }
    }

    @Test("small compressed messages that inflate large count as inflated against WEBSOCKET_MAX_BYTES_PER_SECOND: the node stops reading their sender for a while, and handles every one of them, in order")
    func inflatedBytesAreBudgeted() async throws {
        let environment = Self.on.merging(["WEBSOCKET_MAX_MESSAGE_SIZE": "65536", "WEBSOCKET_MAX_BYTES_PER_SECOND": "131072"]) { $1 }
        try await withNode(environment) { node in
            let subscriber = try await node.connect(as: "reader")
            _ = try await subscriber.request(["type": "subscribe", "topic": "big.t"])
            let sender = try await node.connect(
                path: "/ws?token=\(node.token("sender"))", headers: [("Sec-WebSocket-Extensions", "permessage-deflate")])
            _ = try await sender.nextJSON()
            // Six messages of 60,000 bytes, about 100 bytes each on the wire: 360,000 bytes to
            // handle against a budget of 131,072 and then 131,072 a second.
            let pad = String(repeating: " ", count: 60_000)
            for n in 1...6 {
                let text = #"{"type":"message","topic":"big.t","data":{"n":\#(n),"pad":"\#(pad)"}}"#
                let deflated = MessageDeflater().compress(Array(text.utf8))
                #expect(deflated.count < 1000)
                try await sender.send(WebSocketFrame(fin: true, rsv1: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: deflated)))
            }
            var received: [Int] = []
            for _ in 1...6 {
                let message = try await subscriber.next(type: "message")
                received.append((message["data"] as? [String: Any])?["n"] as? Int ?? -1)
            }
            #expect(received == [1, 2, 3, 4, 5, 6], "nothing dropped")
            let connections = try await Self.stats(node).connections
            #expect(connections["readsPaused"] as? Int ?? 0 >= 1, "\(connections)")
            #expect(connections["closedFlooding"] as? Int == 0)
        }
    }

    @Test("off by default: an offer gets no extension in the 101 and deliveries go uncompressed; on, a client that offers nothing gets none")
    func offUnlessAgreed() async throws {
        for (environment, offer) in [([String: String](), "permessage-deflate"), (Self.on, "")] {
            try await withNode(environment) { node in
                let probe = try await Self.startProbe(["raw", "\(node.port)", node.token("raw"), "room", "3", offer])
                try await Self.ready(probe)
                let publisher = try await node.connect(as: "publisher")
                for seq in 0..<3 { try await publisher.publish(topic: "room", data: Self.chatMessage(seq)) }
                let raw = try await Self.result(of: probe)
                #expect(raw["extensions"] == nil || raw["extensions"] is NSNull, "\(environment)")
                #expect((raw["messages"] as? [[String: Any]])?.allSatisfy { $0["rsv1"] as? Bool == false } == true)
                #expect(try await Self.stats(node).messages["compressed"] as? Int == 0)
            }
        }
    }

    @Test("headless Chromium negotiates permessage-deflate, inflates the broadcasts it receives, and its compressed echoes (context takeover) are read")
    func chromium() async throws {
        try await withNode(Self.on) { node in
            let browser = try await Browser.open(logDirectory: try TestLogs.folder("chromium"))
            do {
                let echoes = try await node.connect(as: "listener")
                try await echoes.subscribe("browser.out")
                try await browser.navigate(to: "\(node.baseURL)/health")
                // A page that subscribes to browser.in and publishes what it receives to browser.out.
                _ = try await browser.evaluate("""
                    window.log = {extensions: null, subscribed: false, received: 0, closed: null};
                    const ws = new WebSocket("ws://127.0.0.1:\(node.port)/ws?token=\(node.token("browser"))");
                    ws.onopen = () => {
                      window.log.extensions = ws.extensions;
                      ws.send(JSON.stringify({type: "subscribe", topic: "browser.in", id: "s"}));
                    };
                    ws.onmessage = (event) => {
                      const message = JSON.parse(event.data);
                      if (message.type === "subscribed") window.log.subscribed = true;
                      if (message.type === "message") {
                        window.log.received += 1;
                        ws.send(JSON.stringify({type: "message", topic: "browser.out", data: message.data}));
                      }
                    };
                    ws.onclose = (event) => { window.log.closed = event.code; };
                    return true;
                    """)
                let subscribed = try await eventually(within: .seconds(30), every: .milliseconds(100)) {
                    try await browser.evaluate("return window.log.subscribed;") as? Bool == true
                }
                #expect(subscribed)
                #expect(try await browser.evaluate("return window.log.extensions;") as? String
                    == "permessage-deflate; server_no_context_takeover")
                let publisher = try await node.connect(as: "publisher")
                let count = 5
                for seq in 0..<count { try await publisher.publish(topic: "browser.in", data: Self.chatMessage(seq)) }
                for seq in 0..<count {
                    let echo = try await echoes.nextJSON(timeout: .seconds(30))
                    let data = echo["data"] as? [String: Any]
                    #expect(data?["seq"] as? Int == seq)
                    #expect(data?["text"] as? String == Self.chatMessage(seq)["text"] as? String)
                }
                #expect(try await browser.evaluate("return window.log.closed;") == nil)
                // Both topics' messages were compressed (the page is a compressing connection),
                // and the page's echoes came compressed.
                let (stats, _) = try await Self.stats(node)
                #expect(stats["compressed"] as? Int == 2 * count)
                #expect(stats["inflated"] as? Int == count + 1, "the subscribe and the echoes")
                // The same counts in Prometheus, for dashboards and alerts.
                let metrics = MetricsTests.samples(try await HTTP.get("\(node.baseURL)/metrics").text)
                #expect(metrics["chorus_messages_compressed_total"] == Double(2 * count))
                #expect(metrics["chorus_messages_inflated_total"] == Double(count + 1))
                #expect(metrics["chorus_websocket_connections_compressing"] == 1, "the page")
                await echoes.close()
            } catch {
                await browser.close()
                throw error
            }
            await browser.close()
        }
    }

    @Test("a compressed frame without the extension agreed closes with 1002")
    func rsv1WithoutAgreement() async throws {
        try await withNode(Self.on) { node in
            let client = try await node.connect(as: "no-offer")
            let data = ByteBuffer(bytes: MessageDeflater().compress(Array(#"{"type":"ping"}"#.utf8)))
            try await client.send(WebSocketFrame(fin: true, rsv1: true, opcode: .text, maskKey: .random(), data: data))
            #expect(try await client.closeCode() == 1002)
        }
    }
}
