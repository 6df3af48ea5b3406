import Foundation
import Synchronization

/// Unique message ids: `<node id>-<start time base36>-<sequence base36>`. Unique across nodes
/// (node ids differ) and across restarts of one node (start time differs).
final class MessageIDGenerator: Sendable {
    private let prefix: String
    private let sequence = Atomic<Int>(0)

    init(nodeId: String) {
        prefix = "\(nodeId)-\(String(Int(Date().timeIntervalSince1970 * 1000), radix: 36))-"
    }

    func next() -> String {
        let value = sequence.add(1, ordering: .relaxed).newValue
        return prefix + String(value, radix: 36)
    }
}
