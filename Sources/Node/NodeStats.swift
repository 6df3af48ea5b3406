import Broker
import Foundation
import NIOCore
import Synchronization

/// The JSON document of `GET /stats` for one node.
public struct NodeStats: Codable, Sendable {
    public struct Connections: Codable, Sendable {
        public var total: Int
        public var authenticated: Int
        public var users: Int
        public var acceptedSinceStart: Int
        public var refusedByIPLimit: Int
        /// Upgrades refused at the node's connection limit (503). Optional for older nodes' documents.
        public var refusedNodeFull: Int?
        public var closedSlowConsumer: Int
        public var closedPingTimeout: Int
        /// Optional so that stats documents of nodes from before it still decode (cluster scope).
        public var closedFlooding: Int?
        /// Connections told `auth_expired`: their token expired and delivery paused until a fresh
        /// `auth`. Optional for older nodes' documents.
        public var authExpired: Int?
        /// Connections closed with 4001: no fresh `auth` within `JWT_RENEWAL_GRACE` after
        /// `auth_expired`. Optional for older nodes' documents.
        public var closedTokenExpired: Int?
        /// Times a connection was not read for a while past `WEBSOCKET_MAX_BYTES_PER_SECOND`.
        /// Optional for older nodes' documents.
        public var readsPaused: Int?
        public var topIPs: [IPCount]
        /// Open connections that agreed to permessage-deflate (`WEBSOCKET_COMPRESSION=on`).
        /// Optional for older nodes' documents.
        public var compressing: Int?
    }

    public struct IPCount: Codable, Sendable {
        public var ip: String
        public var connections: Int
    }

    public struct Subscriptions: Codable, Sendable {
        /// (connection, topic or pattern) pairs.
        public var total: Int
        /// Distinct concrete topics held on this node.
        public var topics: Int
        /// Distinct wildcard patterns held on this node.
        public var patterns: Int
    }

    public struct Messages: Codable, Sendable {
        /// Messages accepted for publishing on this node.
        public var published: Int
        /// Messages written to clients of this node (one per receiving connection).
        public var delivered: Int
        /// Per second, over the last few seconds.
        public var publishedPerSecond: Double
        public var deliveredPerSecond: Double
        /// Messages an event loop dropped because its delivery backlog (32 MiB of frames per
        /// loop) was full, once per loop. Optional only so that stats documents of older nodes
        /// still decode in the cluster view.
        public var droppedBacklog: Int?
        /// The topics with the most messages delivered on this node since start (at most 10;
        /// approximate past 64 distinct topics). Optional for older nodes' documents.
        public var topTopics: [TopicCount]?
        /// Delivered messages compressed for permessage-deflate: once per message, however
        /// many connections received it. Optional for older nodes' documents.
        public var compressed: Int?
        /// Client messages that arrived compressed (permessage-deflate) and were inflated.
        /// Optional for older nodes' documents.
        public var inflated: Int?
        /// Drains an event loop scheduled `WEBSOCKET_WRITE_DELAY` later because it was busy
        /// writing deliveries (``DrainPacer``): a sign of a busy node, not of a fault.
        /// Optional for older nodes' documents.
        public var pacedDrains: Int?
        /// `gap` notices written: a subscription (or a user's own messages) whose Redis server
        /// was unreachable for a while, told that messages may be missing. Optional for older
        /// nodes' documents.
        public var gapNotices: Int? = nil
    }

    public struct TopicCount: Codable, Sendable {
        public var topic: String
        public var messages: Int
    }

    public struct Memory: Codable, Sendable {
        public var residentBytes: Int
        /// Times the node gave freed memory back to the kernel (`MEMORY_TRIM_INTERVAL`), and the
        /// resident bytes that gave back; optional for older nodes' documents.
        public var trims: Int? = nil
        public var trimmedBytes: Int? = nil
    }

    public var nodeId: String
    public var status: String
    public var startedAt: String
    public var uptimeSeconds: Double
    public var connections: Connections
    public var subscriptions: Subscriptions
    public var messages: Messages
    public var adapter: AdapterStatus
    public var memory: Memory
    /// Presence and typing on this node (see ``PresenceStats``); optional for older nodes' documents.
    public var presence: PresenceStats? = nil
    /// Topic histories (`HISTORY_*`); absent when history is off.
    public var history: HistoryStats? = nil
    /// The accounts and messages store; absent with `DATABASE_URL=none`.
    public var store: Storage? = nil

    public struct Storage: Codable, Sendable {
        /// Messages deleted by `MESSAGE_RETENTION` since the node started.
        public var messagesPruned: Int
        /// Ids of deleted messages freed by `MESSAGE_RETENTION` since the node started.
        public var deletedIdsPruned: Int
    }
}

/// Samples the message counters once a second so `/stats` can report recent rates.
final class RateSampler: Sendable {
    private struct Sample {
        var time: NIODeadline
        var published: Int
        var delivered: Int
    }

    /// The last few seconds of samples, oldest first.
    private let samples = Mutex<[Sample]>([])
    private static let window = 5

    func record(published: Int, delivered: Int, at time: NIODeadline = .now()) {
        samples.withLock { samples in
            samples.append(Sample(time: time, published: published, delivered: delivered))
            if samples.count > Self.window + 1 { samples.removeFirst() }
        }
    }

    /// (published, delivered) per second between the oldest and newest samples.
    func rates() -> (published: Double, delivered: Double) {
        samples.withLock { samples in
            guard let first = samples.first, let last = samples.last, last.time > first.time else { return (0, 0) }
            let seconds = Double((last.time - first.time).nanoseconds) / 1e9
            return (
                Double(last.published - first.published) / seconds,
                Double(last.delivered - first.delivered) / seconds
            )
        }
    }
}

/// Resident set size of this process, from /proc (0 where there is no /proc).
func residentMemoryBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = statm.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
