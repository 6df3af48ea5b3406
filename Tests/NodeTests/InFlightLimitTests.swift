@testable import Node
import Testing
import TestSupport

@Suite("Requests in flight per key")
struct InFlightLimitTests {
    @Test("a second run for a key while the first runs is refused; other keys run; the key is free again afterwards, also after a throw")
    func oneAtATime() async throws {
        let flights = InFlightLimit(perKey: 1)
        let (entered, enteredContinuation) = AsyncStream.makeStream(of: Void.self)
        let (release, releaseContinuation) = AsyncStream.makeStream(of: Void.self)
        let first = Task {
            await flights.run("alice") {
                enteredContinuation.yield()
                for await _ in release { break }
                return 1
            }
        }
        // Bounded, so a run that never starts fails the test instead of hanging it.
        try await withDeadline(.seconds(30), "alice's first run to start") { for await _ in entered { break } }
        #expect(await flights.run("alice") { 2 } == nil, "alice's listing still runs")
        #expect(await flights.run("bob") { 3 } == 3)
        releaseContinuation.yield()
        #expect(await first.value == 1)
        #expect(await flights.run("alice") { 4 } == 4)
        struct Failure: Error {}
        await #expect(throws: Failure.self) { try await flights.run("alice") { throw Failure() } }
        #expect(await flights.run("alice") { 5 } == 5)
    }

    @Test("with a limit of two, a third run for a key while two run is refused; freed as each ends")
    func twoAtATime() async throws {
        let flights = InFlightLimit(perKey: 2)
        let (entered, enteredContinuation) = AsyncStream.makeStream(of: Void.self)
        let releases = (0..<2).map { _ in AsyncStream.makeStream(of: Void.self) }
        let running = (0..<2).map { n in
            Task {
                await flights.run("alice") {
                    enteredContinuation.yield()
                    for await _ in releases[n].stream { break }
                    return n
                }
            }
        }
        try await withDeadline(.seconds(30), "both of alice's runs to start") {
            var iterator = entered.makeAsyncIterator()
            for _ in 0..<2 { await iterator.next() }
        }
        #expect(await flights.run("alice") { 9 } == nil, "two run already")
        releases[0].continuation.yield()
        #expect(await running[0].value == 0)
        #expect(await flights.run("alice") { 7 } == 7, "one place free again")
        releases[1].continuation.yield()
        #expect(await running[1].value == 1)
    }
}
