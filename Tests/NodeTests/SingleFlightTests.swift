@testable import Node
import Testing

@Suite("Single flight per key")
struct SingleFlightTests {
    @Test("a second run for a key while the first runs is refused; other keys run; the key is free again afterwards, also after a throw")
    func oneAtATime() async throws {
        let flights = SingleFlight()
        let (entered, enteredContinuation) = AsyncStream.makeStream(of: Void.self)
        let (release, releaseContinuation) = AsyncStream.makeStream(of: Void.self)
        let first = Task {
            await flights.run("alice") {
                enteredContinuation.yield()
                for await _ in release { break }
                return 1
            }
        }
        for await _ in entered { break }
        #expect(await flights.run("alice") { 2 } == nil, "alice's listing still runs")
        #expect(await flights.run("bob") { 3 } == 3)
        releaseContinuation.yield()
        #expect(await first.value == 1)
        #expect(await flights.run("alice") { 4 } == 4)
        struct Failure: Error {}
        await #expect(throws: Failure.self) { try await flights.run("alice") { throw Failure() } }
        #expect(await flights.run("alice") { 5 } == 5)
    }
}
