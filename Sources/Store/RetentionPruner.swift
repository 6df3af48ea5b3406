import Foundation
import Logging

/// Deletes what ``StoreConfiguration/messageRetention`` no longer keeps, while the store runs:
/// every tenth of the retention (at least 100 ms apart, at most a minute), messages created
/// longer ago than it and the ids of messages deleted longer ago, in batches of
/// ``batchSize`` rows, each batch one statement, so that requests interleave with a long pass.
///
/// Every node of a cluster runs its own; passes that meet on one database delete each row once.
struct RetentionPruner: Sendable {
    let retention: Duration
    /// One batch: the store's ``MessageRepository/prune(before:limit:)``, through its gate.
    let prune: @Sendable (Date, Int) async throws -> PrunedRows
    /// Told what each pass deleted.
    let pruned: @Sendable (PrunedRows) -> Void
    let logger: Logger

    static let batchSize = 1_000

    var interval: Duration { min(max(retention / 10, .milliseconds(100)), .seconds(60)) }

    /// `retention` in the largest unit that divides it, for the log: "30 days", "90 minutes".
    static func describe(_ retention: Duration) -> String {
        let milliseconds = Int(retention / .milliseconds(1))
        for (size, unit) in [(86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute"), (1_000, "second")]
        where milliseconds >= size && milliseconds % size == 0 {
            let count = milliseconds / size
            return "\(count) \(unit)\(count == 1 ? "" : "s")"
        }
        return "\(milliseconds) ms"
    }

    /// Runs passes until the task is cancelled.
    func run() async {
        while true {
            do { try await Task.sleep(for: interval) } catch { return }
            await pass(now: Date())
        }
    }

    /// Deletes in batches until one comes back short. A failure ends the pass (the store has
    /// logged it); the next pass tries again.
    func pass(now: Date) async {
        let cutoff = now.addingTimeInterval(-(retention / .seconds(1)))
        var total = PrunedRows()
        while !Task.isCancelled {
            do {
                let rows = try await prune(cutoff, Self.batchSize)
                total += rows
                if rows.messages < Self.batchSize && rows.deletedIds < Self.batchSize { break }
            } catch {
                break
            }
        }
        guard total != PrunedRows() else { return }
        pruned(total)
        logger.debug("store: pruned \(total.messages) messages and \(total.deletedIds) deleted ids older than the retention")
    }
}
