/// Polls `condition` every `interval` until it holds or `timeout` passes; the result of the
/// last check. Waits with `Task.sleep`, so it never holds a thread of the cooperative pool; a
/// cancelled task checks once more and returns (its sleeps would return at once, and polling
/// on would spin until the deadline).
public func eventually(
    within timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(50),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline, !Task.isCancelled {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}
