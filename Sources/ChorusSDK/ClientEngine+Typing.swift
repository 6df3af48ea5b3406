import Foundation

/// Typing indicators: throttled starts and the automatic stop.
extension ClientEngine {
    /// Sends `start` unless one went out within the throttle, and (re)arms the automatic `stop`.
    func typing(_ topic: String) {
        guard authenticated, let connection else { return }
        let now = ContinuousClock.now
        var entry = typing[topic]
        if entry == nil || entry!.lastStart.duration(to: now) >= configuration.typingThrottle {
            send(["type": "typing", "topic": .string(topic), "state": "start"], on: connection)
            entry = Typing(lastStart: now, stopTimer: entry?.stopTimer)
        }
        entry!.stopTimer?.cancel()
        let timeout = configuration.typingTimeout
        entry!.stopTimer = Task {
            do { try await Task.sleep(for: timeout) } catch { return }
            self.stopTyping(topic)
        }
        typing[topic] = entry
    }

    func stopTyping(_ topic: String) {
        guard let entry = typing.removeValue(forKey: topic) else { return }
        entry.stopTimer?.cancel()
        guard authenticated, let connection else { return }
        send(["type": "typing", "topic": .string(topic), "state": "stop"], on: connection)
    }
}
