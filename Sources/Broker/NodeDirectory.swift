/// Where the nodes of a cluster announce themselves, so that any node can answer for all.
///
/// Each node writes its stats under its own key with a time to live and refreshes it; a node
/// that stops refreshing (crashed, partitioned) drops out when its key expires, and a node that
/// shuts down gracefully withdraws at once.
public protocol NodeDirectory: Sendable {
    /// Stores `document` (the node's stats as JSON) for `nodeId`, expiring after `ttl`.
    func announce(nodeId: String, document: [UInt8], ttl: Duration)
    /// Removes `nodeId` at once.
    func withdraw(nodeId: String) async
    /// The documents of every node currently announced.
    func members() async throws -> [[UInt8]]
    /// Why this node's last announcement was not stored (Redis refused it, or could not be
    /// reached); nil when it was. Other nodes' announcements likely fail alike, so the list of
    /// members may lack live nodes.
    var announcementProblem: String? { get }
}
