import CMalloc
import Testing

@testable import Node

@Suite("Giving freed memory back to the kernel")
struct HeapTrimTests {
    @Test("the policy trims once a spike's memory is freed and the freeing has stopped, once per spike")
    func policy() {
        let mib = 1 << 20
        var policy = HeapTrimPolicy(threshold: 16 * mib, free: 2 * mib)
        var trims: [Int] = []
        // Free heap per interval: a spike's connections close over several readings, then a
        // second spike reuses the free chunks and frees them again.
        let readings = [1, 12, 20, 31, 31, 31, 40, 40, 5, 30, 30].map { $0 * mib }
        for (index, free) in readings.enumerated() where policy.shouldTrim(free: free) {
            trims.append(index)
            policy.trimmed(free: free)
        }
        // Not at 12 (under the threshold), 20 or 31 (still growing); at the second 31 (settled);
        // not again at 31 or 40 (9 MiB since the trim); at the second 30 (25 MiB above 5).
        #expect(trims == [4, 10])
    }

    @Test("a trim gives back the pages of memory freed between blocks still in use (glibc)")
    func trimReleases() throws {
        #if canImport(Glibc)
        // 64 KiB blocks (under glibc's mmap threshold: heap memory), each followed by a small
        // block that stays: the freed ones cannot merge into the top of the arena, so glibc
        // keeps their pages resident until a trim, as it does after a spike of connections.
        // 128 MiB freed and a quarter asked back: `released` is the process's resident size
        // before and after, which the suite's other tests, running meanwhile, also move (a run
        // under CI's load released 29.8 of 64 MiB).
        let size = 64 << 10
        var freed: [UnsafeMutableRawPointer] = []
        var kept: [UnsafeMutableRawPointer] = []
        for _ in 0..<2048 {
            let block = try #require(malloc(size))
            block.initializeMemory(as: UInt8.self, repeating: 1, count: size)  // resident, not only reserved
            freed.append(block)
            kept.append(try #require(malloc(64)))
        }
        for block in freed { free(block) }
        let outcome = HeapTrimmer.trim()
        for block in kept { free(block) }
        #expect(outcome.released >= 32 << 20, "released \(outcome.released) bytes of 128 MiB freed")
        #endif
    }
}
