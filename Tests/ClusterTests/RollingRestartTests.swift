import ChorusClient
import Foundation
import Synchronization
import Testing
import TestSupport

extension ClusterTests {
    /// A rolling restart of every node while a publisher publishes across topics: subscribers
    /// reconnect through nginx after their node drains (1001), resubscribe with `since`, and must
    /// end with every message of their topic exactly once, each recovery `recovered: true`.
    @Suite("Rolling restart with recovery")
    struct RollingRestartTests {
        static let subscribers = 30
        static let topics = (1...5).map { "rolling.t\($0)" }

        /// Messages published so far; negative once the restarts are done.
        final class Progress: Sendable {
            let value = Mutex(0)
            /// Subscribers between a close and their recovered resubscribe.
            let reconnecting = Mutex(0)
            /// Recovered resubscribes so far.
            let recovered = Mutex(0)
        }

        struct Outcome: Sendable {
            var topic: String
            var sequence: [Int]
            var recoveries: Int
        }

        @Test(
            "3 nodes restarted one after another: 0 missing, 0 duplicated, every recovery recovered:true",
            .enabled(
                if: ProcessInfo.processInfo.environment["CHORUS_ROLLING_RESTART"] == "1",
                "run by hand with CHORUS_ROLLING_RESTART=1: it passes on a quiet machine, but twice on a loaded one a restarted node logged nothing and the run hung past its time limit (under investigation)"),
            .timeLimit(.minutes(3)))
        func rollingRestart() async throws {
            try await withCluster(nodes: 3) { cluster in
                let clients = try await withThrowingTaskGroup(of: (Int, WebSocketClient, HistoryMark).self) { group in
                    for index in 0..<Self.subscribers {
                        group.addTask {
                            let client = try await Self.connect(cluster, as: "sub-\(index)")
                            let reply = try await client.subscribeWithHistory(Self.topics[index % Self.topics.count])
                            return (index, client, try #require(HistoryMark(reply)))
                        }
                    }
                    var clients: [(Int, WebSocketClient, HistoryMark)] = []
                    for try await client in group { clients.append(client) }
                    return clients
                }
                let published = Progress()
                let outcomes = try await withThrowingTaskGroup(of: Outcome?.self) { group in
                    for (index, client, start) in clients {
                        group.addTask {
                            try await Self.follow(
                                Self.topics[index % Self.topics.count], client: client, from: start, cluster: cluster,
                                user: "sub-\(index)", progress: published)
                        }
                    }
                    group.addTask {
                        try await Self.publish(cluster, counter: published)
                        return nil
                    }
                    group.addTask {
                        // Restart each node in turn once the publisher is well under way.
                        for number in 1...3 {
                            // Each restart once the publisher is well under way and every subscriber
                            // has recovered from the previous one.
                            let threshold = 200 * number
                            let settled = await eventually(within: .seconds(120)) {
                                published.value.withLock { $0 } >= threshold && published.reconnecting.withLock { $0 } == 0
                            }
                            guard settled else {
                                throw TestFailure("before restarting node \(number): \(published.value.withLock { $0 }) published, \(published.reconnecting.withLock { $0 }) subscribers reconnecting")
                            }
                            let before = published.recovered.withLock { $0 }
                            try await cluster.restart(number)
                            // The restarted node's subscribers have noticed the 1001 and
                            // recovered elsewhere before the next node goes.
                            let recovered = await eventually(within: .seconds(60)) {
                                published.recovered.withLock { $0 } > before && published.reconnecting.withLock { $0 } == 0
                            }
                            guard recovered else { throw TestFailure("the subscribers of node \(number) did not recover") }
                            // nginx takes a node that refused connections out for 10 s
                            // (max_fails, fail_timeout): the next node goes once nginx sends
                            // requests to this one again, so that two nodes always take clients.
                            let back = await eventually(within: .seconds(60), every: .milliseconds(200)) {
                                let health = try? await HTTP.get("\(cluster.nginx.baseURL)/health").json()
                                return health?["nodeId"] as? String == "node-\(number)"
                            }
                            guard back else { throw TestFailure("nginx did not route to node \(number) again") }
                        }
                        published.value.withLock { $0 = -1_000_000 }  // tells the publisher the restarts are done
                        return nil
                    }
                    var outcomes: [Outcome] = []
                    for try await outcome in group {
                        if let outcome { outcomes.append(outcome) }
                    }
                    return outcomes
                }
                #expect(outcomes.count == Self.subscribers)
                for outcome in outcomes {
                    let count = outcome.sequence.count
                    #expect(outcome.sequence == Array(1...max(1, count)), "\(outcome.topic): every message once, in order")
                    #expect(outcome.recoveries >= 1, "\(outcome.topic): the subscriber's node was restarted")
                }
                let perTopic = Dictionary(grouping: outcomes, by: \.topic).mapValues { Set($0.map(\.sequence.count)) }
                #expect(perTopic.values.allSatisfy { $0.count == 1 }, "every subscriber of a topic got the same messages: \(perTopic)")
                let total = outcomes.reduce(0) { $0 + $1.recoveries }
                print("rolling restart: \(Self.subscribers) subscribers, \(perTopic) messages per topic, \(total) recoveries, all recovered:true")
            }
        }

        /// A connection through nginx, retried while a node restarts.
        static func connect(_ cluster: Cluster, as user: String) async throws -> WebSocketClient {
            var lastError: (any Error)?
            // nginx takes a node that refused 3 connections out for 10 s (max_fails, fail_timeout).
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, !Task.isCancelled {
                do {
                    return try await cluster.connectThroughNginx(as: user)
                } catch {
                    lastError = error
                    try await Task.sleep(for: .milliseconds(50))  // backoff between attempts
                }
            }
            throw TestFailure("could not connect through nginx: \(String(describing: lastError))")
        }

        /// A new connection through nginx subscribed with `since`; a connection that lands on a node
        /// that is draining (closed at once with 1001) is retried.
        static func resubscribe(_ topic: String, since: HistoryMark, cluster: Cluster, user: String) async throws -> WebSocketClient {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                try Task.checkCancellation()
                let client = try await connect(cluster, as: user)
                do {
                    let reply = try await client.subscribeWithHistory(topic, since: since)
                    guard reply["recovered"] as? Bool == true else {
                        throw TestFailure("\(user) on \(topic): not recovered from \(since): \(reply)")
                    }
                    return client
                } catch is WebSocketClient.Failure {
                    try await Task.sleep(for: .milliseconds(50))  // backoff between attempts
                }
            }
            throw TestFailure("\(user) on \(topic): could not resubscribe")
        }

        /// Receives `topic` until its end marker, reconnecting and recovering with `since` after
        /// each close; checks every message is the next offset of one epoch.
        static func follow(
            _ topic: String, client: WebSocketClient, from start: HistoryMark, cluster: Cluster, user: String,
            progress: Progress
        ) async throws -> Outcome {
            var client = client
            var last = start
            var sequence: [Int] = []
            var recoveries = 0
            while true {
                let message: [String: Any]
                do {
                    message = try await client.nextJSON(timeout: .seconds(40))
                } catch let failure as WebSocketClient.Failure where failure != .timeout {
                    progress.reconnecting.withLock { $0 += 1 }
                    client = try await resubscribe(topic, since: last, cluster: cluster, user: user)
                    progress.reconnecting.withLock { $0 -= 1 }
                    progress.recovered.withLock { $0 += 1 }
                    recoveries += 1
                    continue
                }
                guard message["type"] as? String == "message", message["topic"] as? String == topic else { continue }
                guard let mark = HistoryMark(message), mark.epoch == last.epoch, mark.offset == last.offset + 1 else {
                    throw TestFailure("\(user) on \(topic): after \(last) got \(message)")
                }
                last = mark
                let data = message["data"] as? [String: Any] ?? [:]
                if data["end"] as? Bool == true {
                    await client.close()
                    return Outcome(topic: topic, sequence: sequence, recoveries: recoveries)
                }
                sequence.append(data["seq"] as? Int ?? -1)
            }
        }

        /// Publishes round-robin across the topics (about 150 a second, each acknowledged, retried
        /// with its `messageId` after a reconnect) until the restarts are done and 100 more are
        /// out; then an end marker on every topic.
        static func publish(_ cluster: Cluster, counter: Progress) async throws {
            let started = ContinuousClock.now
            var client = try await connect(cluster, as: "publisher")
            var seqs = Dictionary(uniqueKeysWithValues: topics.map { ($0, 0) })
            var sent = 0
            var after = 0
            func send(_ topic: String, _ data: [String: Any], key: String) async throws {
                while true {
                    do {
                        _ = try await client.publishAcknowledged(topic: topic, data: data, messageId: key, timeout: .seconds(10))
                        return
                    } catch is WebSocketClient.Failure {
                        client = try await connect(cluster, as: "publisher")  // then the same messageId again
                    }
                }
            }
            while after < 100 {
                try Task.checkCancellation()
                guard sent < 20_000 else { throw TestFailure("the restarts did not end") }
                let topic = topics[sent % topics.count]
                seqs[topic]! += 1
                try await send(topic, ["seq": seqs[topic]!], key: "\(topic)-\(seqs[topic]!)")
                sent += 1
                let restartsDone = counter.value.withLock { value in
                    if value >= 0 { value = sent }
                    return value < 0
                }
                if restartsDone { after += 1 }
                try await Task.sleep(for: .milliseconds(5))  // pacing: about 150 messages a second
            }
            for topic in topics { try await send(topic, ["end": true], key: "\(topic)-end") }
            await client.close()
            let seconds = Double((ContinuousClock.now - started).components.seconds) + 0.001
            print("rolling restart: published \(sent) messages across \(topics.count) topics in \(Int(seconds)) s (\(Int(Double(sent) / seconds)) msg/s)")
        }
    }
}
