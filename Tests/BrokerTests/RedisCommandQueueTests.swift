import Testing

@testable import Broker

@Suite("Redis command queue: waits bounded by the timeout", .serialized)
struct RedisCommandQueueTests {
    @Test("commands queued behind one a hung Redis never answers fail at their turn without being sent, instead of one timeout each; a long queue to a Redis that answers is served whole")
    func queuedBehindHungServer() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            let queue = RedisCommandQueue(url: redis.url, timeout: .milliseconds(300), clientName: "test")
            let pong = try await queue.command(["PING"])
            #expect(pong == .status("PONG"))
            redis.pause()
            defer { redis.resume() }
            let failures = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        do {
                            _ = try await queue.command(["PING"])
                            return nil
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                return await group.reduce(into: [String]()) { if let failure = $1 { $0.append(failure) } }
            }
            #expect(failures.count == 5, "every command fails while Redis is hung")
            // The first waits for its reply; the others' turns come after their timeout.
            #expect(failures.filter { $0.contains("not sent: queued behind") }.count >= 3, "\(failures)")
            redis.resume()
            // Commands sent after the failure are tried again.
            #expect(try await queue.command(["PING"]) == .status("PONG"))
            // A burst longer than the timeout to take is answered whole: waiting in the queue
            // does not count. A 1-s timeout rather than 300 ms, so that one round trip slowed
            // on a loaded machine is no timeout (which, by design, fails the commands behind it).
            let patient = RedisCommandQueue(url: redis.url, timeout: .seconds(1), clientName: "test-burst")
            let started = ContinuousClock.now
            let answered = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<20_000 {
                    group.addTask { (try? await patient.command(["SET", "k\(index)", "v"])) == .status("OK") }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(answered == 20_000, "answered in \(ContinuousClock.now - started)")
        }
    }
}
