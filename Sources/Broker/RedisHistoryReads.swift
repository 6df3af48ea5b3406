import Synchronization

/// The history reads of one Redis server, on its ``RedisCommandQueue``, shared per topic.
///
/// **Why share.** After a node restarts, its clients reconnect to the other nodes at once and
/// each recovers its topics with `since`. A read is a round trip and, costlier, the decoding
/// of every message in the page, one read at a time on the queue. Hundreds of reads of a few
/// topics kept a queue busy for longer than clients wait for their `subscribed`, and each
/// client that gave up and retried only added another read. So the reads of one topic that
/// wait together become one (``HistoryReadBatch``): when its turn comes, it covers every query
/// that joined meanwhile, and each gets its own part of the page.
///
/// **Why it is still exact.** A query joins a read that has not started, so the read is made
/// after the query was asked for: it sees every message the caller's subscription will not
/// deliver (``PubSubAdapter/readHistory(_:_:completion:)``).
///
/// **Stopping.** ``stop()`` answers every read not yet started with a failure at once, so
/// that a node's shutdown does not wait behind a backlog of reads for sessions that are
/// closing anyway.
final class RedisHistoryReads: Sendable {
    typealias Completion = @Sendable (Result<HistoryPage, HistoryError>) -> Void

    private struct Waiting {
        var query: HistoryQuery
        var completion: Completion
    }

    private struct State {
        /// Queries waiting for their topic's shared read, which is queued.
        var waiting: [Topic: [Waiting]] = [:]
        var stopped = false
    }

    let commands: RedisCommandQueue
    private let channels: RedisChannels
    private let policy: HistoryPolicy
    private let state = Mutex(State())
    private let scriptRuns = Atomic<Int>(0)

    /// Runs of the read script so far (for tests: fewer than the reads asked for when shared).
    var readsMade: Int { scriptRuns.load(ordering: .relaxed) }

    init(commands: RedisCommandQueue, channels: RedisChannels, policy: HistoryPolicy) {
        self.commands = commands
        self.channels = channels
        self.policy = policy
    }

    /// Reads `query` of `topic` from Redis and hands the page to `completion`, on the queue.
    func read(_ topic: Topic, _ query: HistoryQuery, completion: @escaping Completion) {
        guard HistoryReadBatch.canShare(query) else {
            return commands.perform { [self] turn in
                guard !state.withLock({ $0.stopped }) else { return completion(.failure(Self.stopping)) }
                completion(read(topic, query, on: turn))
            }
        }
        let first = state.withLock { state -> Bool? in
            guard !state.stopped else { return nil }
            let first = state.waiting[topic] == nil
            state.waiting[topic, default: []].append(Waiting(query: query, completion: completion))
            return first
        }
        switch first {
        case nil: completion(.failure(Self.stopping))
        case true?: commands.perform { [self] turn in readShared(topic, on: turn) }
        case false?: break
        }
    }

    /// Queries of `topic` waiting for their shared read (for tests).
    func waitingCount(for topic: Topic) -> Int {
        state.withLock { $0.waiting[topic]?.count ?? 0 }
    }

    /// Fails every read not yet started; reads asked for later fail at once.
    func stop() {
        let waiting = state.withLock { state in
            state.stopped = true
            defer { state.waiting = [:] }
            return state.waiting.values.joined()
        }
        for read in waiting { read.completion(.failure(Self.stopping)) }
    }

    private static let stopping = HistoryError("history read on Redis abandoned: the node is stopping")

    /// One read for every query of `topic` waiting now; a query whose part the shared page
    /// cannot give is read on its own.
    private func readShared(_ topic: Topic, on turn: RedisCommandQueue.Turn) {
        guard let waiting = state.withLock({ $0.waiting.removeValue(forKey: topic) }) else { return }  // stopped
        let batch = HistoryReadBatch(waiting.map(\.query))
        let shared = read(topic, batch.read, on: turn)
        for (index, waiter) in waiting.enumerated() {
            guard case .success(let page) = shared else {
                waiter.completion(shared)
                continue
            }
            if let part = batch.part(of: page, for: index) {
                waiter.completion(.success(part))
            } else {
                waiter.completion(read(topic, waiter.query, on: turn))
            }
        }
    }

    /// One run of ``RedisHistory/readScript``. A connection that broke since its last use (a
    /// Redis restart) fails once and is remade by the next command: one retry.
    private func read(_ topic: Topic, _ query: HistoryQuery, on turn: RedisCommandQueue.Turn) -> Result<HistoryPage, HistoryError> {
        let keys = [RedisHistory.metaKey(channels, topic), RedisHistory.streamKey(channels, topic)].map { Array($0.utf8) }
        let arguments = RedisHistory.readArguments(query, policy: policy, newEpoch: MemoryHistory.randomEpoch())
        var retry = true
        while true {
            do {
                scriptRuns.add(1, ordering: .relaxed)
                let reply = try turn.evaluate(RedisHistory.readScript, keys: keys, arguments: arguments)
                return Result { () throws(HistoryError) in try RedisHistory.page(reply) }
            } catch where retry && !error.isReplyError {
                retry = false
            } catch {
                return .failure(HistoryError("history read on Redis failed: \(error)"))
            }
        }
    }
}
