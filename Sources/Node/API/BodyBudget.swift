import Synchronization

/// The bytes of HTTP request bodies a node reads at once. A request reserves its
/// `Content-Length` (the size limit, for a body without one) before reading, and gives it back
/// once read; past the budget it is answered 503. Without it each connection could hold a
/// body's worth of memory for as long as its client sent slowly: a drill held 3 GB with 3,000
/// such requests. Thread-safe.
final class BodyBudget: Sendable {
    /// Bytes that may be reserved at once: 64 bodies of the largest size.
    let capacity: Int
    private let reserved = Atomic<Int>(0)

    init(maxBodySize: Int) {
        capacity = 64 * maxBodySize
    }

    /// Reserves `bytes`; false when they do not fit.
    func reserve(_ bytes: Int) -> Bool {
        var current = reserved.load(ordering: .relaxed)
        while current + bytes <= capacity {
            let (exchanged, original) = reserved.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release(_ bytes: Int) {
        reserved.subtract(bytes, ordering: .relaxed)
    }
}
