import CMalloc
import Glibc
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
        // What is checked is the freed blocks' own pages (mincore), not the process's resident
        // size, which the suite's other tests move meanwhile (a full run once saw 4.5 MB
        // "released" of 128 MiB freed).
        let size = 64 << 10
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var freed: [UnsafeMutableRawPointer] = []
        var kept: [UnsafeMutableRawPointer] = []
        for _ in 0..<2048 {
            let block = try #require(malloc(size))
            block.initializeMemory(as: UInt8.self, repeating: 1, count: size)  // resident, not only reserved
            freed.append(block)
            kept.append(try #require(malloc(64)))
        }
        /// Resident pages of the blocks' interiors (the first and last page of each may hold
        /// the allocator's bookkeeping).
        func residentInteriorPages() -> (resident: Int, total: Int) {
            var counts = (resident: 0, total: 0)
            var vector = [UInt8](repeating: 0, count: size / page + 2)
            for block in freed {
                let first = (Int(bitPattern: block) / page + 1) * page
                let end = (Int(bitPattern: block) + size) / page * page - page
                guard end > first, let start = UnsafeMutableRawPointer(bitPattern: first) else { continue }
                guard mincore(start, end - first, &vector) == 0 else { continue }
                let pages = (end - first) / page
                counts.total += pages
                counts.resident += vector.prefix(pages).filter { $0 & 1 == 1 }.count
            }
            return counts
        }
        for block in freed { free(block) }
        let before = residentInteriorPages()
        _ = HeapTrimmer.trim()
        let after = residentInteriorPages()
        for block in kept { free(block) }
        // Not asserted before the trim: the in-process nodes of other suites trim the heap too
        // (MEMORY_TRIM_INTERVAL), and may have given these pages back already. Alone, without
        // the trim, every one of them stays resident.
        #expect(after.total > 0 && after.resident * 2 <= after.total,
            "the trim gave most of them back: \(after.resident) of \(after.total) still resident (before it: \(before))")
        #endif
    }
}
