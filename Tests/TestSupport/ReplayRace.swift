import ChorusClient
import Foundation

/// The replay race: messages are published on one topic while subscribers recover from random
/// offsets (`since`), each from a fresh connection. Every recovering subscriber must receive
/// exactly the topic's sequence from its offset on: no gap, no duplicate, in order.
///
/// A *witness*, subscribed before the first publish, records the topic's sequence. The
/// publisher sends `count` messages (`data.seq` 1...count) on one connection, so their offsets
/// follow their sequence; every `count / (recoverers + 1)` messages it asks for an
/// acknowledgement, learns the offset assigned so far, and starts a recovery from a random
/// offset at or below it while publishing goes on.
public enum ReplayRace {
    public struct Report: Sendable {
        public var recoveries: [(since: Int, received: Int)] = []
    }

    /// - Parameter connect: a new authenticated connection for the n-th client (0 = the witness,
    ///   1... the recovering subscribers), on whichever node the caller chooses.
    public static func run(
        topic: String, count: Int, recoverers: Int, publisher: WebSocketClient,
        connect: @escaping @Sendable (Int) async throws -> WebSocketClient
    ) async throws -> Report {
        let witness = try await connect(0)
        let subscribed = try await witness.subscribeWithHistory(topic)
        guard let start = HistoryMark(subscribed) else { throw TestFailure("no position in \(subscribed)") }
        let last = start.offset + count
        let step = max(1, count / (recoverers + 1))

        return try await withThrowingTaskGroup(of: (since: Int, received: Int)?.self) { group in
            group.addTask {
                let messages = try await witness.messages(of: topic, through: last)
                try check(messages, after: start.offset, through: last, base: start, who: "witness")
                return nil
            }
            var started = 0
            for seq in 1...count {
                let data: [String: Any] = ["seq": seq]
                guard seq % step == 0, started < recoverers else {
                    try await publisher.send(json: ["type": "message", "topic": topic, "data": data])
                    continue
                }
                let ack = try await publisher.publishAcknowledged(topic: topic, data: data)
                guard let assigned = HistoryMark(ack), assigned.epoch == start.epoch else {
                    throw TestFailure("acknowledgement without the witness's epoch: \(ack)")
                }
                started += 1
                let since = Int.random(in: start.offset...assigned.offset)
                let client = started
                group.addTask {
                    let subscriber = try await connect(client)
                    let reply = try await subscriber.subscribeWithHistory(topic, since: HistoryMark(offset: since, epoch: start.epoch))
                    guard reply["recovered"] as? Bool == true else {
                        throw TestFailure("subscriber \(client) from \(since): not recovered: \(reply)")
                    }
                    let messages = since == last ? [] : try await subscriber.messages(of: topic, through: last)
                    try check(messages, after: since, through: last, base: start, who: "subscriber \(client)")
                    await subscriber.close()
                    return (since, messages.count)
                }
            }
            var report = Report()
            for try await result in group {
                if let result { report.recoveries.append(result) }
            }
            return report
        }
    }

    /// `messages` are exactly offsets `after + 1 ... last` of `epoch`, in order, each carrying
    /// the sequence number its offset stands for.
    static func check(_ messages: [[String: Any]], after: Int, through last: Int, base: HistoryMark, who: String) throws {
        let offsets = messages.map { $0["offset"] as? Int ?? -1 }
        let expected = Array(stride(from: after + 1, through: last, by: 1))
        guard offsets == expected else {
            throw TestFailure("\(who): expected offsets \(after + 1)...\(last), got \(Self.summary(offsets))")
        }
        for message in messages {
            guard message["epoch"] as? String == base.epoch else { throw TestFailure("\(who): epoch changed: \(message)") }
            let seq = (message["data"] as? [String: Any])?["seq"] as? Int
            guard seq == (message["offset"] as? Int ?? 0) - base.offset else {
                throw TestFailure("\(who): offset and sequence disagree: \(message)")
            }
        }
    }

    static func summary(_ offsets: [Int]) -> String {
        var problems: [String] = []
        for (previous, next) in zip(offsets, offsets.dropFirst()) where next != previous + 1 {
            problems.append(next <= previous ? "duplicate/back \(previous)->\(next)" : "gap \(previous)->\(next)")
        }
        return "\(offsets.count) messages \(offsets.first ?? 0)...\(offsets.last ?? 0) \(problems.prefix(10))"
    }
}
