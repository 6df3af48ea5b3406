import Broker
import Foundation
import NIOCore

extension ConnectionRegistry {
    /// Tells the sessions of this loop that messages may be missing: a Redis server whose
    /// channels `affected` accepts was unreachable, so what other nodes published there meanwhile
    /// never reached this node; or another node announced that it published to them while it
    /// could not reach Redis (``PeerGap``). Each session gets `{"type":"gap","topic":..,"timestamp":..}` for
    /// each of its subscriptions (the topic or pattern as subscribed) that `affected` accepts, and
    /// `{"type":"gap","timestamp":..}` when messages addressed to its user travel there. Sent once
    /// the server is back, so everything published after the notice arrives. Written
    /// `sessionsPerTask` sessions at a time, each batch a task of its own, so that a loop of
    /// many connections goes on serving between them; `counted` hears each batch's notices.
    func reportGaps(
        where affected: @escaping @Sendable (Interest) -> Bool, at timestamp: Date,
        sessionsPerTask: Int = gapSessionsPerTask, counted: @escaping @Sendable (Int) -> Void
    ) {
        reportGaps(to: sessionIds, from: 0, where: affected, at: timestamp, sessionsPerTask: sessionsPerTask, counted: counted)
    }

    static let gapSessionsPerTask = 1_024

    private func reportGaps(
        to ids: [Int], from start: Int, where affected: @escaping @Sendable (Interest) -> Bool, at timestamp: Date,
        sessionsPerTask: Int, counted: @escaping @Sendable (Int) -> Void
    ) {
        var frames: [String?: OutboundFrame] = [:]
        // Many sessions hold the same subscription (a `rooms.*` each): `affected` is asked once
        // per subscription per batch, not once per session (a pattern's answer may cost a match
        // per announced topic).
        var verdicts: [String: Bool] = [:]
        func isAffected(_ pattern: TopicPattern) -> Bool {
            if let known = verdicts[pattern.text] { return known }
            let verdict = affected(Self.interest(pattern))
            verdicts[pattern.text] = verdict
            return verdict
        }
        func frame(_ subscription: String?) -> OutboundFrame {
            if let made = frames[subscription] { return made }
            let made = OutboundFrame.text(Self.gapNotice(subscription, at: timestamp), allocator: ByteBufferAllocator())
            frames[subscription] = made
            return made
        }
        let end = min(ids.count, start + sessionsPerTask)
        var written = 0
        for id in ids[start..<end] {
            guard let session = sessionsById(id) else { continue }  // closed meanwhile
            var wrote = false
            for pattern in session.subscriptions where isAffected(pattern) {
                if session.transport.write(frame(pattern.text)) { wrote = true; written += 1 }
            }
            if let user = session.user, affected(.user(user.id)), session.transport.write(frame(nil)) {
                wrote = true
                written += 1
            }
            if wrote { session.transport.flush() }
        }
        counted(written)
        guard end < ids.count else { return }
        loop.execute {
            self.assumeIsolated {
                $0.reportGaps(to: ids, from: end, where: affected, at: timestamp, sessionsPerTask: sessionsPerTask, counted: counted)
            }
        }
    }

    /// `{"type":"gap","topic":<subscription>,"timestamp":..}`; without `topic` for the messages
    /// addressed to the user.
    static func gapNotice(_ subscription: String?, at timestamp: Date) -> [UInt8] {
        var json = JSONWriter(capacity: 64 + (subscription?.utf8.count ?? 0))
        json.raw("{\"type\":\"gap\"")
        if let subscription {
            json.raw(",\"topic\":")
            json.string(subscription)
        }
        json.raw(",\"timestamp\":")
        json.string(Timestamp.string(timestamp))
        json.raw("}")
        return json.bytes
    }
}
