import Foundation
import Logging
import Synchronization
import ServiceLifecycle
import Store
import Testing
import TestSupport

@Suite("Store lifecycle", .timeLimit(.minutes(2)))
struct StoreLifecycleTests {
    @Test("a request made before run() waits for the store and then succeeds")
    func requestBeforeRun() async throws {
        // Time limits far above a loaded machine's start-up time: what is tested is the wait.
        let store = makeStore(
            .sqliteMemory, logger: StoreHarness.logger,
            configuration: StoreConfiguration(readyWaitTimeout: .seconds(60), requestTimeout: .seconds(60)))
        let early = Task { try await store.createUser(username: "early", passwordHash: "h") }
        let group = ServiceGroup(services: [store], logger: StoreHarness.logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let user = try await early.value
            #expect(try await store.user(id: user.id)?.username == "early")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("a store that never starts turns requests away after the ready wait")
    func neverStarted() async throws {
        // The request deadline far above the ready wait: on a starved machine both timers may
        // be overdue at once, and only the ready wait's answer is under test.
        let store = makeStore(
            .sqliteMemory, logger: StoreHarness.logger,
            configuration: StoreConfiguration(readyWaitTimeout: .milliseconds(100), requestTimeout: .seconds(600)))
        do {
            _ = try await store.user(named: "anyone")
            Issue.record("a store that was never run answered")
        } catch let error as StoreError {
            guard case .unavailable(let reason) = error else { throw error }
            #expect(reason.contains("not open yet"))
        }
    }

    @Test("after graceful shutdown requests are refused as unavailable")
    func afterShutdown() async throws {
        let store = try await StoreHarness.running(.sqliteMemory) { store in
            _ = try await store.createUser(username: "u", passwordHash: "h")
            return store
        }
        await #expect(throws: StoreError.unavailable("the store has stopped")) {
            try await store.user(named: "u")
        }
        await #expect(throws: StoreError.unavailable("the store has stopped")) { try await store.ready() }
    }

    @Test("a SQLite file that cannot be opened fails run() and ready() with the path")
    func unopenableFile() async throws {
        let path = "/nonexistent-\(UUID().uuidString)/chorus.db"
        let store = makeStore(.sqliteFile(path), logger: StoreHarness.logger)
        let run = Task { try await store.run() }
        do {
            try await store.ready()
            Issue.record("ready() returned for \(path)")
        } catch let error as StoreError {
            guard case .unavailable(let reason) = error else { throw error }
            #expect(reason.contains(path), "reason: \(reason)")
        }
        await #expect(throws: StoreError.self) { try await run.value }
        await #expect(throws: StoreError.self) { try await store.user(named: "u") }
    }

    @Test("StoreError descriptions are one line for a client")
    func descriptions() {
        #expect(StoreError.duplicateUsername.description == "username is already taken")
        #expect(StoreError.invalidCursor.description.hasPrefix("invalid cursor"))
        #expect(StoreError.unavailable("the store has stopped").description == "store unavailable: the store has stopped")
    }
}

@Suite("Store lifecycle: failures logged", .timeLimit(.minutes(1)))
struct StoreFailureLogTests {
    @Test("a database failing every request (its file locked by another process) is logged once per 10 s, not once per request")
    func failuresLoggedOnce() async throws {
        let folder = try TestLogs.folder("store-locked")
        let path = folder.appendingPathComponent("chorus.db").path
        let recorder = RecordingLogHandler()
        let store = makeStore(
            .sqliteFile(path), logger: Logger(label: "chorus.test.store-locked") { _ in recorder },
            configuration: StoreConfiguration(sqliteBusyTimeout: .milliseconds(100)))
        let run = Task { try await store.run() }
        try await store.ready()
        // Another process takes the write lock and keeps it until it is stopped.
        let python = try Executable.find("python3", hint: "install Python 3")
        let locker = try await ChildProcess.spawn(
            python,
            ["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); import signal; signal.pause()", path],
            log: folder.appendingPathComponent("locker.log"))
        #expect(await eventually { locker.output().contains("locked") }, "\(locker.output())")
        for n in 1...5 {
            await #expect(throws: StoreError.self) { _ = try await store.createUser(username: "user\(n)", passwordHash: "x") }
        }
        _ = await locker.stop()
        let failures = recorder.messages.list.withLock { $0 }.filter { $0.contains("failed") }
        #expect(failures.count == 1, "\(failures)")
        #expect(failures.first?.contains("locked") == true, "\(failures)")
        _ = try await store.createUser(username: "after", passwordHash: "x")
        run.cancel()
        try await run.value
    }
}

/// Keeps every message logged through it, for tests that check what a component reported.
private struct RecordingLogHandler: LogHandler {
    final class Messages: Sendable {
        let list = Mutex<[String]>([])
    }

    let messages = Messages()
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        messages.list.withLock { $0.append("\(event.level) \(event.message)") }
    }
}

@Suite("Store lifecycle: cancelled", .timeLimit(.minutes(1)))
struct StoreCancellationTests {
    @Test("a store whose run is cancelled after it opened (another service failed to start) closes without claiming requests were in flight")
    func cancelledAfterOpen() async throws {
        let recorder = RecordingLogHandler()
        let store = makeStore(.sqliteMemory, logger: Logger(label: "chorus.test.store-cancel") { _ in recorder })
        let run = Task { try await store.run() }
        try await store.ready()
        run.cancel()
        try await run.value
        let messages = recorder.messages.list.withLock { $0 }
        #expect(messages.contains { $0.contains("closed") }, "\(messages)")
        #expect(!messages.contains { $0.contains("still in flight") }, "\(messages)")
    }
}
