@testable import Broker
import Dispatch
import Synchronization
import Testing

@Suite("Memory adapter queue")
struct MemoryAdapterTests {
    static func message(_ n: Int, bytes: Int) -> Envelope {
        Envelope(id: "n-\(n)", origin: "n", topic: try! Topic("t"), data: RawJSON(.string(String(repeating: "x", count: bytes))))
    }

    /// Waits, off the cooperative pool, until `semaphore` is signalled or `timeout` passes;
    /// whether it was signalled, so a delivery that never starts fails the test instead of
    /// hanging it.
    static func signalled(_ semaphore: DispatchSemaphore, within timeout: DispatchTimeInterval = .seconds(30)) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: semaphore.wait(timeout: .now() + timeout) == .success)
            }
        }
    }

    @Test("the publish queue is bounded in bytes as well as in messages: past the byte bound a publish is refused and counted as dropped; an empty queue takes any one message")
    func bytesBound() async throws {
        let adapter = MemoryAdapter(maxMessages: 1_000, maxBytes: 12_000)
        let delivering = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let batches = Atomic<Int>(0)
        adapter.start { _ in
            // The first batch holds the adapter's thread, so that later publishes wait in the queue.
            if batches.add(1, ordering: .relaxed).newValue == 1 {
                delivering.signal()
                release.wait()
            }
        }
        let refusals = Mutex<[Bool]>([])
        let record: PublishCompletion = { outcome in refusals.withLock { $0.append(outcome.refusal != nil) } }
        adapter.publish(Self.message(0, bytes: 20_000), completion: record)
        guard await Self.signalled(delivering) else {
            release.signal()  // should the batch come late
            Issue.record("the first batch was not delivered within 30 s")
            return
        }
        adapter.publish(Self.message(1, bytes: 30_000), completion: record)  // the queue is empty: taken, over the bound
        adapter.publish(Self.message(2, bytes: 10), completion: record)
        #expect(refusals.withLock { $0 } == [false, false, true], "past 12,000 bytes waiting")
        #expect(adapter.status().dropped == 1)
        release.signal()
        await adapter.shutdown()
        let small = MemoryAdapter(maxMessages: 1_000, maxBytes: 12_000)
        let held = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        small.start { _ in
            started.signal()
            held.wait()
        }
        small.publish(Self.message(0, bytes: 1), completion: record)
        guard await Self.signalled(started) else {
            held.signal()  // should the batches come late
            held.signal()
            Issue.record("the first batch was not delivered within 30 s")
            return
        }
        refusals.withLock { $0 = [] }
        for n in 1...3 { small.publish(Self.message(n, bytes: 5_000), completion: record) }
        #expect(refusals.withLock { $0 } == [false, false, true], "two messages of 5,000 bytes and their envelopes fit, a third does not")
        held.signal()
        held.signal()
        await small.shutdown()
    }
}
