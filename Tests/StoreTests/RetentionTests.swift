import Foundation
import Synchronization
@testable import Store
import Testing

/// `MESSAGE_RETENTION`: old messages, and the ids of messages deleted long ago, are deleted.
@Suite("Message retention", .timeLimit(.minutes(3)))
struct RetentionTests {
    @Test("prune deletes messages created before the cutoff, oldest first, in batches, and frees old deleted ids", arguments: StoreBackend.allCases)
    func prune(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            var old: [StoredMessage] = []
            for content in ["a", "b", "c", "d"] {
                old.append(try await store.createMessage(NewMessage(authorId: "alice", topic: "chat.lobby", content: content)))
            }
            #expect(try await store.deleteMessage(id: old[3].id))
            // Everything so far is older than the cutoff; the next message, stored a millisecond
            // after it at least, is younger.
            let cutoff = Date().addingTimeInterval(0.001)
            while Date() < cutoff.addingTimeInterval(0.001) { await Task.yield() }
            let young = try await store.createMessage(NewMessage(authorId: "bob", topic: "chat.lobby", content: "young"))

            #expect(try await store.prune(before: .distantPast, limit: 100) == PrunedRows())
            #expect(try await store.prune(before: cutoff, limit: 2) == PrunedRows(messages: 2, deletedIds: 1))
            #expect(try await store.prune(before: cutoff, limit: 2) == PrunedRows(messages: 1, deletedIds: 0))
            #expect(try await store.prune(before: cutoff, limit: 2) == PrunedRows())
            let page = try await store.messages(in: .topic("chat.lobby"), before: nil, limit: 10)
            #expect(page.messages.map(\.id) == [young.id])
            // The deleted message's id is free again once it has aged out, as a new message's is.
            let again = try await store.createMessage(NewMessage(id: old[3].id, authorId: "alice", topic: "chat.lobby", content: "d again"))
            #expect(again.id == old[3].id)
        }
    }

    @Test("a message dated in the future (a node's clock ahead) stored first does not hold back the pruning of older ones", arguments: [StoreBackend.sqliteFile, .postgres])
    func futureDatedHead(_ backend: StoreBackend) async throws {
        try await backend.withStoreAndDatabase { store, database in
            try await database.execute(
                "INSERT INTO messages (id, author_id, topic, content, created_at) VALUES ('from-the-future', 'x', 'chat.lobby', 'f', 99999999999999)")
            for content in ["a", "b", "c"] {
                _ = try await store.createMessage(NewMessage(authorId: "alice", topic: "chat.lobby", content: content))
            }
            let cutoff = Date().addingTimeInterval(1)
            #expect(try await store.prune(before: cutoff, limit: 2) == PrunedRows(messages: 2))
            #expect(try await store.prune(before: cutoff, limit: 2) == PrunedRows(messages: 1))
            #expect(try await store.prune(before: cutoff, limit: 2) == PrunedRows())
            #expect(try await store.message(id: "from-the-future") != nil, "not old: kept")
        }
    }

    @Test("a store started with a retention deletes what aged out and counts it", arguments: [StoreBackend.sqliteFile, .postgres])
    func running(_ backend: StoreBackend) async throws {
        try await backend.withDatabase { url in
            // Written by a store without a retention, so that nothing is pruned under the test's feet.
            let message = try await StoreHarness.running(url) { store in
                let kept = try await store.createMessage(NewMessage(authorId: "alice", topic: "chat.lobby", content: "soon gone"))
                let deleted = try await store.createMessage(NewMessage(authorId: "alice", topic: "chat.lobby", content: "x"))
                #expect(try await store.deleteMessage(id: deleted.id))
                return kept
            }
            try await StoreHarness.running(url, configuration: StoreConfiguration(messageRetention: .seconds(1))) { store in
                // Nothing announces a pass: look until it has run (at most 20 s, far above the 1 s retention).
                let deadline = ContinuousClock.now + .seconds(20)
                while store.pruned != PrunedRows(messages: 1, deletedIds: 1), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(store.pruned == PrunedRows(messages: 1, deletedIds: 1))
                #expect(try await store.message(id: message.id) == nil)
            }
        }
    }

    @Test("a pass goes on while batches come back full, and stops at a short one or a failure")
    func batches() async {
        let calls = Mutex<[Int]>([])
        let counted = Mutex<[PrunedRows]>([])
        let full = RetentionPruner.batchSize
        let answers: [Result<PrunedRows, StoreError>] = [
            .success(PrunedRows(messages: full, deletedIds: 3)), .success(PrunedRows(messages: 10, deletedIds: full)),
            .success(PrunedRows(messages: 5)), .success(PrunedRows(messages: 99)),
        ]
        let pruner = RetentionPruner(
            retention: .seconds(60),
            prune: { cutoff, limit in
                let call = calls.withLock { $0.append(limit); return $0.count - 1 }
                #expect(abs(cutoff.timeIntervalSince(Date(timeIntervalSince1970: 1_000))) < 0.001)
                return try answers[call].get()
            },
            pruned: { rows in counted.withLock { $0.append(rows) } },
            logger: StoreHarness.logger)
        await pruner.pass(now: Date(timeIntervalSince1970: 1_060))
        #expect(calls.withLock { $0 } == [full, full, full], "stops after the third, short, batch")
        #expect(counted.withLock { $0 } == [PrunedRows(messages: full + 15, deletedIds: full + 3)])

        let failing = RetentionPruner(
            retention: .seconds(60), prune: { _, _ in throw StoreError.unavailable("down") },
            pruned: { rows in counted.withLock { $0.append(rows) } }, logger: StoreHarness.logger)
        await failing.pass(now: Date())
        #expect(counted.withLock { $0.count } == 1, "a pass that deleted nothing reports nothing")
    }

    @Test("the retention is logged in the largest unit that divides it")
    func described() {
        #expect(RetentionPruner.describe(.seconds(30 * 86_400)) == "30 days")
        #expect(RetentionPruner.describe(.seconds(5_400)) == "90 minutes")
        #expect(RetentionPruner.describe(.seconds(1)) == "1 second")
        #expect(RetentionPruner.describe(.milliseconds(1_500)) == "1500 ms")
    }

    @Test("passes run every tenth of the retention, 100 ms to a minute apart")
    func interval() {
        func interval(_ retention: Duration) -> Duration {
            RetentionPruner(retention: retention, prune: { _, _ in PrunedRows() }, pruned: { _ in }, logger: StoreHarness.logger).interval
        }
        #expect(interval(.seconds(10)) == .seconds(1))
        #expect(interval(.milliseconds(200)) == .milliseconds(100))
        #expect(interval(.seconds(30 * 86_400)) == .seconds(60))
    }
}
