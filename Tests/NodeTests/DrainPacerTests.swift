import ChorusClient
import Foundation
@testable import Node
import NIOCore
import Testing
import TestSupport

@Suite("DrainPacer: a busy loop waits a little to write several messages at once")
struct DrainPacerTests {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// Drains of `each` every `every` from `from` until `until`; returns when the last ended.
    @discardableResult
    private func drain(
        _ pacer: inout DrainPacer, each: TimeAmount, every: TimeAmount, from: NIODeadline, until: NIODeadline
    ) -> NIODeadline {
        var at = from
        var end = from
        while at < until {
            end = at + each
            pacer.drained(from: at, to: end)
            at = at + every
        }
        return end
    }

    /// Drain patterns under a quarter of the loop's time: 100 messages a second at 1 ms of
    /// writing each (a tenth), and 500 a second at 0.3 ms (15 %: enough to stay busy, not to
    /// become so).
    static let underAQuarter: [(each: TimeAmount, every: TimeAmount)] = [
        (.milliseconds(1), .milliseconds(10)), (.microseconds(300), .milliseconds(2)),
    ]

    @Test("a loop under a quarter of its time draining drains every message at once", arguments: underAQuarter)
    func idleLoopAtOnce(each: TimeAmount, every: TimeAmount) {
        var pacer = DrainPacer(delay: .milliseconds(1), now: start)
        drain(&pacer, each: each, every: every, from: start, until: start + .seconds(1))
        #expect(pacer.nextDrainDelay == nil)
    }

    @Test("from a quarter of its time draining the next drain waits the delay; a lull ends that")
    func busyLoopWaits() {
        var pacer = DrainPacer(delay: .milliseconds(1), now: start)
        // 500 messages a second, 0.6 ms of writing each: 30 % of the time.
        var end = drain(&pacer, each: .microseconds(600), every: .milliseconds(2), from: start, until: start + .milliseconds(250))
        #expect(pacer.nextDrainDelay == .milliseconds(1))
        // Paced drains are cheaper: at 15 % the loop stays busy (it leaves under an eighth).
        end = drain(&pacer, each: .microseconds(300), every: .milliseconds(2), from: end, until: end + .milliseconds(250))
        #expect(pacer.nextDrainDelay == .milliseconds(1))
        // Nothing for a second, then one message: that drain sees a window mostly idle.
        let later = end + .seconds(1)
        pacer.drained(from: later, to: later + .microseconds(600))
        #expect(pacer.nextDrainDelay == nil)
    }

    @Test("judged once per window: a burst shorter than a window does not change the decision early")
    func judgedPerWindow() {
        var pacer = DrainPacer(delay: .milliseconds(1), now: start)
        // Fully busy, but for less than one window.
        drain(&pacer, each: .milliseconds(5), every: .milliseconds(5), from: start, until: start + .milliseconds(90))
        #expect(pacer.nextDrainDelay == nil)
        drain(&pacer, each: .milliseconds(5), every: .milliseconds(5), from: start + .milliseconds(90), until: start + .milliseconds(110))
        #expect(pacer.nextDrainDelay == .milliseconds(1))
    }

    @Test("a node whose loops are busy writing deliveries paces its drains, and every subscriber still gets every message once, in order")
    func busyNodeDeliversEverything() async throws {
        try await withNode([
            "WEBSOCKET_MAX_MESSAGES_PER_SECOND": "100000", "WEBSOCKET_MAX_CONNECTIONS_PER_IP": "1000",
            "WEBSOCKET_MAX_PENDING_BYTES": "16777216",
        ]) { node in
            // 150 subscribers make each message 150 writes against one read and one reply, and
            // the publisher keeps 10 publishes in flight. The subscribers read only afterwards
            // (their socket buffers hold it all), so that this process's clients do not take the
            // CPU the node's loops need: the loops spend far more than a quarter of their time
            // draining.
            var subscribers: [WebSocketClient] = []
            for index in 0..<150 {
                let client = try await node.connect(as: "s\(index)")
                _ = try await client.request(["type": "subscribe", "topic": "feed"])
                subscribers.append(client)
            }
            for subscriber in subscribers { subscriber.pauseReading() }
            let publisher = try await node.connect(as: "pub")
            func publish(_ indices: Range<Int>) async throws {
                for window in stride(from: indices.lowerBound, to: indices.upperBound, by: 10) {
                    for index in window..<window + 10 {
                        try await publisher.send(json: ["type": "message", "topic": "feed", "id": index + 1, "data": ["i": index]])
                    }
                    for index in window..<window + 10 {
                        let reply = try await publisher.nextJSON()
                        guard reply["type"] as? String == "published" else { throw TestFailure("publish \(index): \(reply)") }
                    }
                }
            }
            func pacedDrains() async throws -> Int {
                let stats = try await HTTP.get("\(node.baseURL)/stats").json()
                return (stats["messages"] as? [String: Any])?["pacedDrains"] as? Int ?? 0
            }
            // In rounds of 600 until a loop has been busy long enough to be judged so (one round
            // here; more on a machine with many cores, where each loop holds fewer subscribers).
            var count = 0
            var paced = 0
            repeat {
                try await publish(count..<count + 600)
                count += 600
                paced = try await pacedDrains()
            } while paced == 0 && count < 6_000
            #expect(paced > 0, "the busy loops waited WEBSOCKET_WRITE_DELAY before some drains")
            let marker = try await publisher.publishMarker(topic: "feed")
            for subscriber in subscribers { subscriber.resumeReading() }
            for (index, subscriber) in subscribers.enumerated() {
                let received = try await subscriber.messages(before: marker, timeout: .seconds(60)).map { text in
                    let message = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                    return (message?["data"] as? [String: Any])?["i"] as? Int ?? -1
                }
                #expect(received == Array(0..<count), "subscriber \(index): every message once, in order")
            }
            for client in subscribers + [publisher] { await client.close() }
        }
    }

    @Test("a delay of zero (WEBSOCKET_WRITE_DELAY=0) never paces")
    func zeroDelayOff() {
        var pacer = DrainPacer(delay: .zero, now: start)
        drain(&pacer, each: .milliseconds(5), every: .milliseconds(5), from: start, until: start + .seconds(1))
        #expect(pacer.isBusy)
        #expect(pacer.nextDrainDelay == nil)
    }
}
