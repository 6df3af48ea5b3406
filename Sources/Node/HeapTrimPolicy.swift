/// When ``HeapTrimmer`` trims: the free heap grew by `threshold` or more above the lowest it
/// was since the last trim (memory was freed and not used again), and it stopped growing
/// (whatever freed it, connections closing one by one, is done: a trim halfway through the
/// close of 10,000 connections gave back 2.7 MB, one after it 23.7 MB). A pure value, fed
/// one reading of the free heap per interval.
struct HeapTrimPolicy {
    /// Growth of the free heap (bytes) worth a trim.
    let threshold: Int
    private var lowest: Int
    private var previous: Int

    init(threshold: Int, free: Int) {
        self.threshold = threshold
        self.lowest = free
        self.previous = free
    }

    /// Takes this interval's reading; true when it is time to trim.
    mutating func shouldTrim(free: Int) -> Bool {
        defer { previous = free }
        lowest = min(lowest, free)
        return free - lowest >= threshold && free - previous < threshold / 16
    }

    /// After a trim: the chunks stay free in the arenas (their pages are the kernel's now), so
    /// the next trim waits for memory freed after this one.
    mutating func trimmed(free: Int) {
        lowest = free
        previous = free
    }
}
