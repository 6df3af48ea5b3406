import ChorusClient
import Foundation
import Synchronization
import Testing
import TestSupport

extension ClusterTests {
    /// A rolling restart of every node while a publisher publishes across topics: subscribers
    /// reconnect through nginx after their node drains (1001), resubscribe with `since`, and must
    /// end with every message of their topic exactly once and in order, each recovery
    /// `recovered: true`; every stopped node exits with 0 and logs no crash.
    ///
    /// Every wait is bounded and names what it waited for (see ``RollingRestart``), so a run
    /// that cannot finish fails with the subscribers, publishes or node it was waiting on.
    @Suite("Rolling restart with recovery")
    struct RollingRestartTests {
        @Test(
            "3 nodes restarted one after another: 0 missing, 0 duplicated, every recovery recovered:true",
            .timeLimit(.minutes(5)))
        func rollingRestart() async throws {
            let plan = RollingRestart.Plan()
            try await withCluster(nodes: plan.nodes, environment: plan.environment) { cluster in
                let report = try await RollingRestart(plan: plan, cluster: cluster).run()
                #expect(report.outcomes.count == plan.subscribers)
                for outcome in report.outcomes {
                    let expected = report.published[outcome.topic] ?? -1
                    #expect(outcome.missing == 0 && outcome.duplicated == 0 && outcome.outOfOrder == 0,
                        "\(outcome.user) on \(outcome.topic): \(outcome.missing) missing, \(outcome.duplicated) duplicated, \(outcome.outOfOrder) out of order")
                    #expect(outcome.received == expected, "\(outcome.user) on \(outcome.topic): \(outcome.received) of \(expected) messages")
                }
                #expect(report.notRecovered.isEmpty, "recoveries answered recovered:false: \(report.notRecovered.prefix(5))")
                for (node, dropped) in report.droppedPerRestart.enumerated() {
                    #expect(dropped > 0, "node-\(node + 1)'s restart closed no subscriber")
                }
                #expect(report.exitStatuses == Array(repeating: 0, count: plan.nodes), "the stopped nodes' exit statuses")
                print("rolling restart: \(report.summary)")
            }
        }
    }
}

/// The rolling-restart run of ``ClusterTests/RollingRestartTests``: subscribers, a publisher
/// and the restarts, on their own tasks, sharing a ``Progress``.
struct RollingRestart {
    struct Plan {
        var nodes = 3
        /// Subscribers per node, connected through nginx (its `least_conn` spreads them).
        var subscribersPerNode = 200
        var topics = (1...20).map { "rolling.t\($0)" }
        /// Messages a second across all topics, for the whole run.
        var rate = 500.0
        /// Publishes in flight per topic (in order on one connection, so a topic's messages
        /// are stored in the order sent; retried in that order after a reconnect).
        var window = 16
        /// Published (acknowledged) between two restarts, after the previous restart's
        /// subscribers have all recovered, and after the last one before the end markers.
        var between = 1_500
        /// History kept per topic: a reconnect on a loaded machine may take seconds at 25
        /// messages a second per topic (the default 100 would be 4 s). Every client comes
        /// through nginx from 127.0.0.1, past the default limit of 100 per address.
        var environment = ["HISTORY_SIZE": "5000", "WEBSOCKET_MAX_CONNECTIONS_PER_IP": "10000"]

        var subscribers: Int { nodes * subscribersPerNode }
    }

    /// One subscriber's result.
    struct Outcome: Sendable {
        var user: String
        var topic: String
        var received = 0
        var missing = 0
        var duplicated = 0
        var outOfOrder = 0
        var recoveries = 0
    }

    struct Report {
        var outcomes: [Outcome]
        /// Messages acknowledged per topic (end markers not counted).
        var published: [String: Int]
        var notRecovered: [String]
        var droppedPerRestart: [Int]
        var exitStatuses: [Int32]
        var summary: String
    }

    /// What the tasks of a run tell each other, and what a failing wait reports.
    final class Progress: Sendable {
        struct State {
            /// Publishes acknowledged so far (end markers not counted).
            var acknowledged = 0
            var restartsDone = false
            /// Subscribers (and the publisher) between a close and their recovered resubscribe,
            /// with what they are at.
            var reconnecting: [String: String] = [:]
            /// Closes seen since the current restart began.
            var dropped = 0
            var recoveries = 0
            var notRecovered: [String] = []
            var publisherReconnects = 0
            var refusals = 0
            var finished = 0
            /// What the publisher and the restarts are at, for a report of a wait that did not end.
            var publisher = "connecting"
            var restarts = "waiting for the first"
            /// What each subscriber is at (reading, reconnecting, subscribing, closing, done, or its error).
            var phases: [String: String] = [:]
        }
        let state = Mutex(State())

        func read<T>(_ body: (State) -> T) -> T { state.withLock { body($0) } }
        func update(_ body: (inout State) -> Void) { state.withLock { body(&$0) } }

        var description: String {
            read { state in
                let waiting = state.reconnecting.sorted { $0.key < $1.key }.prefix(8).map { "\($0.key): \($0.value)" }
                return "\(state.acknowledged) acknowledged, \(state.recoveries) recoveries, \(state.finished) subscribers done, "
                    + "\(state.reconnecting.count) reconnecting [\(waiting.joined(separator: "; "))], "
                    + "publisher: \(state.publisher), restarts: \(state.restarts), subscribers: "
                    + Dictionary(grouping: state.phases.values, by: { $0 }).mapValues(\.count).sorted { $0.key < $1.key }
                        .prefix(6).map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            }
        }
    }

    let plan: Plan
    let cluster: Cluster
    let progress = Progress()

    func run() async throws -> Report {
        let started = ContinuousClock.now
        let subscriptions = try await subscribeAll()
        let connected = ContinuousClock.now - started
        var distribution: [Int] = []
        for number in 1...plan.nodes { distribution.append(try await connections(on: number)) }

        // Where the run is, every 20 s, in the test's output, until it returns or throws: what a
        // run that stalls was at, also after a failure has cancelled its tasks.
        let watchdog = Task.detached { [progress] in
            let begun = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(20))
                // Standard error: standard output to a file or a pipe is buffered, and the line
                // must be there if the run stalls.
                let line = "rolling restart, \(Int((ContinuousClock.now - begun).seconds)) s: \(progress.description)\n"
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
        defer { watchdog.cancel() }
        let (outcomes, publisher, restarts) = try await withThrowingTaskGroup(of: Part.self) { group in
            for (user, topic, client, mark) in subscriptions {
                group.addTask {
                    do {
                        return .subscriber(try await follow(topic, as: user, client: client, from: mark))
                    } catch {
                        progress.update { $0.phases[user] = "threw \(type(of: error))" }
                        throw error
                    }
                }
            }
            group.addTask {
                do { return .publisher(try await publish()) } catch {
                    progress.update { $0.publisher = "threw \(error)" }
                    throw error
                }
            }
            group.addTask {
                do { return .restarts(try await restartAll()) } catch {
                    progress.update { $0.restarts = "threw \(error)" }
                    throw error
                }
            }

            var outcomes: [Outcome] = []
            var publisher: Publisher?
            var restarts: Restarts?
            for try await part in group {
                switch part {
                case .subscriber(let outcome): outcomes.append(outcome)
                case .publisher(let result): publisher = result
                case .restarts(let result): restarts = result
                }
            }
            return (outcomes, publisher!, restarts!)
        }
        let elapsed = ContinuousClock.now - started
        let state = progress.read { $0 }
        let received = outcomes.reduce(0) { $0 + $1.received }
        let summary = """
            \(plan.subscribers) subscribers on \(plan.topics.count) topics (per node at start: \(distribution), \
            connected in \(connected.seconds, format: 1) s), \
            \(publisher.total) messages published in \(publisher.seconds, format: 1) s (\(publisher.steadyCount) in the first \
            \(publisher.steadySeconds, format: 1) s: \(Double(publisher.steadyCount) / publisher.steadySeconds, format: 0) msg/s, target \
            \(plan.rate, format: 0), at most \(plan.window) in flight per topic, at most \(publisher.mostBehind) behind), \(received) delivered, \
            \(state.recoveries) recoveries (closes per restart: \(restarts.dropped)), \
            publisher reconnects \(state.publisherReconnects), refusals \(state.refusals), \
            restarts took \(restarts.seconds.map { String(format: "%.1f s", $0) }.joined(separator: ", ")), whole run \(elapsed.seconds, format: 1) s
            """
        return Report(
            outcomes: outcomes, published: publisher.perTopic, notRecovered: state.notRecovered,
            droppedPerRestart: restarts.dropped, exitStatuses: restarts.exitStatuses, summary: summary)
    }

    private enum Part: Sendable {
        case subscriber(Outcome)
        case publisher(Publisher)
        case restarts(Restarts)
    }

    struct Publisher: Sendable {
        var perTopic: [String: Int]
        var total: Int
        var seconds: Double
        /// Acknowledged before the end markers, and in how long: the publishing rate.
        var steadyCount: Int
        var steadySeconds: Double
        /// The most messages that were due but not yet sent at once.
        var mostBehind: Int
    }

    struct Restarts: Sendable {
        var dropped: [Int] = []
        var exitStatuses: [Int32] = []
        var seconds: [Double] = []
    }

    /// Closes `client`, waiting at most 10 s (a close frame waits while the connection is not
    /// writable).
    private func close(_ client: WebSocketClient) async {
        _ = try? await withDeadline(.seconds(10), "closing a WebSocket") { await client.close() }
    }

    /// Sends `object` on `client`, waiting at most 30 s (a send waits while the connection is not
    /// writable: the server has stopped reading).
    private func send(_ object: [String: Any], on client: WebSocketClient, as user: String) async throws {
        let data = try JSONSerialization.data(withJSONObject: object)
        let text = String(decoding: data, as: UTF8.self)
        try await withDeadline(.seconds(30), "\(user): sending") { try await client.send(text: text) }
    }

    // MARK: Subscribers

    /// Every subscriber connected through nginx and subscribed (with history) to its topic, a
    /// few dozen at a time.
    private func subscribeAll() async throws -> [(String, String, WebSocketClient, HistoryMark)] {
        let users = (0..<plan.subscribers).map { ("sub-\($0)", plan.topics[$0 % plan.topics.count]) }
        var subscribed: [(String, String, WebSocketClient, HistoryMark)] = []
        for batch in stride(from: 0, to: users.count, by: 50) {
            try await withThrowingTaskGroup(of: (String, String, WebSocketClient, HistoryMark).self) { group in
                for (user, topic) in users[batch..<min(batch + 50, users.count)] {
                    group.addTask {
                        let client = try await connect(as: user)
                        let reply = try await client.subscribeWithHistory(topic)
                        guard let mark = HistoryMark(reply) else { throw TestFailure("\(user): subscribed without a position: \(reply)") }
                        return (user, topic, client, mark)
                    }
                }
                for try await subscription in group { subscribed.append(subscription) }
            }
        }
        return subscribed
    }

    /// `connections.total` of node `number`'s `/stats`.
    private func connections(on number: Int) async throws -> Int {
        let stats = try await cluster.node(number).stats()
        return (stats["connections"] as? [String: Any])?["total"] as? Int ?? -1
    }

    /// A connection through nginx, retried while a node restarts (nginx takes a node that
    /// refused 3 connections out for 10 s); fails after `timeout` with the last error.
    private func connect(as user: String, within timeout: Duration = .seconds(60)) async throws -> WebSocketClient {
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        var attempts = 0
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            attempts += 1
            do {
                return try await cluster.connectThroughNginx(as: user, within: .seconds(20))
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))  // backoff between attempts
            }
        }
        throw TestFailure("\(user): no WebSocket through nginx in \(attempts) attempts within \(timeout): \(String(describing: lastError))")
    }

    /// A new connection subscribed with `since`; a connection that lands on a node that is
    /// draining (closed at once with 1001) is retried. Throws on `recovered: false`.
    private func resubscribe(_ topic: String, as user: String, since: HistoryMark) async throws -> WebSocketClient {
        let deadline = ContinuousClock.now + .seconds(90)
        var lastError: (any Error)?
        var attempts = 0
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            attempts += 1
            progress.update {
                $0.reconnecting[user] = "since \(since), attempt \(attempts), last error \(lastError.map { "\($0)" } ?? "none")"
                $0.phases[user] = "connecting"
            }
            let client = try await connect(as: user)
            progress.update { $0.phases[user] = "subscribing" }
            let reply: [String: Any]
            do {
                reply = try await client.subscribeWithHistory(topic, since: since, timeout: .seconds(30))
            } catch where !(error is CancellationError) && !Task.isCancelled {
                // Closed (1001 from a node that began draining), a send on a channel that had
                // just closed (NIO's ChannelError), or no answer: another connection.
                lastError = error
                await close(client)
                try await Task.sleep(for: .milliseconds(100))  // backoff between attempts
                continue
            }
            guard reply["recovered"] as? Bool == true else {
                progress.update { $0.notRecovered.append("\(user) on \(topic) since \(since): \(reply)") }
                throw TestFailure("\(user) on \(topic): not recovered from \(since): \(reply)")
            }
            return client
        }
        throw TestFailure("\(user) on \(topic): could not resubscribe since \(since) in \(attempts) attempts: \(String(describing: lastError))")
    }

    /// Receives `topic` until its end marker, reconnecting and recovering with `since` after
    /// each close; checks every message is the next offset of one epoch and the publisher's
    /// next sequence number.
    private func follow(_ topic: String, as user: String, client: WebSocketClient, from start: HistoryMark) async throws -> Outcome {
        var client = client
        var last = start
        var outcome = Outcome(user: user, topic: topic)
        var expected = 1
        while true {
            let message: [String: Any]
            do {
                message = try await client.nextJSON(timeout: .seconds(45))
                if outcome.received == 0 { progress.update { $0.phases[user] = "reading" } }
            } catch WebSocketClient.Failure.timeout {
                throw TestFailure("\(user) on \(topic): nothing for 45 s after \(last) (\(outcome.received) received); \(progress.description)")
            } catch where error is WebSocketClient.Failure && !Task.isCancelled {
                progress.update {
                    $0.dropped += 1
                    $0.reconnecting[user] = "closed after \(last)"
                }
                client = try await resubscribe(topic, as: user, since: last)
                outcome.recoveries += 1
                progress.update {
                    $0.reconnecting[user] = nil
                    $0.recoveries += 1
                    $0.phases[user] = "reading"
                }
                continue
            }
            guard message["type"] as? String == "message", message["topic"] as? String == topic else { continue }
            guard let mark = HistoryMark(message), mark.epoch == last.epoch, mark.offset == last.offset + 1 else {
                throw TestFailure("\(user) on \(topic): after \(last) got \(message)")
            }
            last = mark
            let data = message["data"] as? [String: Any] ?? [:]
            if data["end"] as? Bool == true {
                progress.update { $0.phases[user] = "closing" }
                await close(client)
                progress.update {
                    $0.finished += 1
                    $0.phases[user] = "done"
                }
                return outcome
            }
            let seq = data["seq"] as? Int ?? -1
            if seq == expected {
                expected += 1
            } else if seq > expected {
                outcome.missing += seq - expected
                expected = seq + 1
            } else {
                outcome.duplicated += 1  // a sequence number already passed: repeated, or late
                outcome.outOfOrder += 1
            }
            outcome.received += 1
        }
    }

    // MARK: Publisher

    /// One publish not yet acknowledged.
    private struct Pending {
        var topic: Int
        /// The topic's sequence number; 0 for the end marker.
        var seq: Int
        var requestId = ""
        var sentAt = ContinuousClock.now
        var key: String { seq == 0 ? "end" : "\(seq)" }
    }

    /// Publishes round-robin across the topics at `plan.rate` (each acknowledged by `published`,
    /// up to `plan.window` in flight per topic, all unacknowledged ones sent again in order with
    /// the same `messageId` after a reconnect) until the restarts are done and `plan.between`
    /// more are acknowledged; then an end marker on every topic.
    private func publish() async throws -> Publisher {
        let started = ContinuousClock.now
        let topics = plan.topics
        var client = try await connect(as: "publisher")
        progress.update { $0.publisher = "publishing" }
        var nextSeq = Array(repeating: 1, count: topics.count)
        var acknowledged = Array(repeating: 0, count: topics.count)
        /// Per topic, in the order sent.
        var pending = Array(repeating: [Pending](), count: topics.count)
        var byRequest: [String: (topic: Int, seq: Int)] = [:]
        var ending = false
        var ended = Array(repeating: false, count: topics.count)
        var stopAt = Int.max
        /// Acknowledged, and seconds, when the end markers began.
        var steady = (count: 0, seconds: 0.0)
        /// The most messages that were due but not yet sent (window full, or reconnecting).
        var behind = 0

        func send(_ item: inout Pending) async throws {
            item.requestId = UUID().uuidString
            item.sentAt = .now
            byRequest[item.requestId] = (item.topic, item.seq)
            let data: [String: Any] = item.seq == 0 ? ["end": true] : ["seq": item.seq]
            try await self.send([
                "type": "message", "topic": topics[item.topic], "data": data, "id": item.requestId,
                "messageId": "\(topics[item.topic])-\(item.key)",
            ], on: client, as: "publisher")
        }
        /// A new connection, and every unacknowledged publish again, in order per topic.
        func reconnect(after problem: String) async throws {
            progress.update {
                $0.publisherReconnects += 1
                $0.dropped += 1
                $0.reconnecting["publisher"] = problem
            }
            await close(client)
            let deadline = ContinuousClock.now + .seconds(90)
            while true {
                guard ContinuousClock.now < deadline else { throw TestFailure("publisher: could not reconnect and resend after \(problem)") }
                client = try await connect(as: "publisher")
                byRequest = [:]
                do {
                    for topic in pending.indices {
                        for index in pending[topic].indices { try await send(&pending[topic][index]) }
                    }
                    break
                } catch where !(error is CancellationError) && !Task.isCancelled {
                    continue  // closed again (ChannelError), or a send that waited 30 s
                }
            }
            progress.update {
                $0.reconnecting["publisher"] = nil
                $0.publisher = "publishing"
            }
        }

        while !ended.allSatisfy({ $0 }) || pending.contains(where: { !$0.isEmpty }) {
            try Task.checkCancellation()
            // What is due by now, per topic in turn, within the window.
            let total = acknowledged.reduce(0, +)
            if !ending, progress.read({ $0.restartsDone }) {
                if stopAt == .max { stopAt = total + plan.between }
                if total >= stopAt {
                    ending = true
                    progress.update { $0.publisher = "sending the end markers" }
                    steady = (total, (ContinuousClock.now - started).seconds)
                }
            }
            do {
                if ending {
                    for topic in topics.indices where !ended[topic] && pending[topic].isEmpty {
                        var item = Pending(topic: topic, seq: 0)
                        try await send(&item)
                        pending[topic].append(item)
                        ended[topic] = true
                    }
                } else {
                    let due = Int((ContinuousClock.now - started).seconds * plan.rate)
                    behind = max(behind, due - nextSeq.reduce(0) { $0 + $1 - 1 })
                    for topic in topics.indices {
                        while (nextSeq[topic] - 1) * topics.count + topic < due, pending[topic].count < plan.window {
                            var item = Pending(topic: topic, seq: nextSeq[topic])
                            try await send(&item)
                            pending[topic].append(item)
                            nextSeq[topic] += 1
                        }
                    }
                }
                // Acknowledgements until the next publish is due.
                let reply = try await client.nextJSON(timeout: .milliseconds(10))
                guard let id = reply["id"] as? String, let entry = byRequest.removeValue(forKey: id) else { continue }
                let (topic, seq) = entry
                switch reply["type"] as? String {
                case "published":
                    pending[topic].removeAll { $0.seq == seq }
                    if seq > 0 {
                        acknowledged[topic] += 1
                        progress.update { $0.acknowledged += 1 }
                    }
                case "error":
                    // Not accepted (503): sent again on a new connection, in order after the
                    // ones before it, which are still unacknowledged or already stored.
                    progress.update { $0.refusals += 1 }
                    try await reconnect(after: "refused: \(reply)")
                default:
                    throw TestFailure("publisher: unexpected reply \(reply)")
                }
            } catch WebSocketClient.Failure.timeout {
                let oldest = pending.compactMap { $0.first?.sentAt }.min()
                if let oldest, ContinuousClock.now - oldest > .seconds(15) {
                    try await reconnect(after: "no acknowledgement for 15 s")
                }
            } catch where !(error is CancellationError) && !Task.isCancelled {
                // Closed (1001, or a send on a channel the node had just closed: NIO's
                // ChannelError), or a send that waited 30 s: every unacknowledged one again.
                try await reconnect(after: "\(error)")
            }
        }
        await close(client)
        progress.update { $0.publisher = "done" }
        let seconds = (ContinuousClock.now - started).seconds
        var perTopic: [String: Int] = [:]
        for (index, topic) in topics.enumerated() { perTopic[topic] = acknowledged[index] }
        return Publisher(
            perTopic: perTopic, total: acknowledged.reduce(0, +), seconds: seconds, steadyCount: steady.count,
            steadySeconds: steady.seconds, mostBehind: behind)
    }

    // MARK: Restarts

    /// Restarts each node in turn once `plan.between` more messages are acknowledged and
    /// every subscriber has recovered from the previous restart; then waits until nginx routes
    /// to the restarted node again, so that two nodes always take clients.
    private func restartAll() async throws -> Restarts {
        var result = Restarts()
        var baseline = 0
        for number in 1...plan.nodes {
            progress.update { $0.restarts = "node-\(number): waiting for \(plan.between) more publishes and nobody reconnecting" }
            let settled = await eventually(within: .seconds(120), every: .milliseconds(100)) {
                progress.read { $0.acknowledged >= baseline + plan.between && $0.reconnecting.isEmpty }
            }
            guard settled else {
                throw TestFailure("before restarting node-\(number) (\(plan.between) more published, nobody reconnecting): \(progress.description)")
            }
            let held = try await connections(on: number)
            progress.update { $0.dropped = 0 }
            let began = ContinuousClock.now
            let old = cluster.node(number)
            progress.update { $0.restarts = "node-\(number): restarting (it held \(held) connections)" }
            try await cluster.restart(number)
            progress.update { $0.restarts = "node-\(number): waiting for the \(held) connections it held to recover" }
            result.exitStatuses.append(old.process.exitStatus ?? -1)
            // Every connection the node held has seen its close and recovered elsewhere.
            let recovered = await eventually(within: .seconds(120), every: .milliseconds(100)) {
                progress.read { $0.dropped >= held && $0.reconnecting.isEmpty }
            }
            guard recovered else {
                throw TestFailure("after restarting node-\(number), which held \(held) connections: \(progress.description)")
            }
            result.dropped.append(progress.read { $0.dropped })
            progress.update { $0.restarts = "node-\(number): waiting for nginx to route to it again" }
            // nginx sends requests to it again at once (max_fails=0; see BackToBackRestartTests).
            let back = await eventually(within: .seconds(60), every: .milliseconds(200)) {
                let health = try? await HTTP.get("\(cluster.nginx.baseURL)/health").json()
                return health?["nodeId"] as? String == "node-\(number)"
            }
            guard back else { throw TestFailure("nginx did not route to node-\(number) again within 60 s") }
            result.seconds.append((ContinuousClock.now - began).seconds)
            baseline = progress.read { $0.acknowledged }
        }
        progress.update {
            $0.restartsDone = true
            $0.restarts = "done"
        }
        return result
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension DefaultStringInterpolation {
    mutating func appendInterpolation(_ value: Double, format digits: Int) {
        appendLiteral(String(format: "%.\(digits)f", value))
    }
}
