import Foundation

/// Findings in code this harness does not own, reported and awaiting a fix there.
///
/// Each is tolerated while open, so that the fuzzer keeps exploring past it and CI stays green;
/// its reproducer is `Fuzz/regressions/<target>/open-<name>`, which scripts/fuzz.sh replays with
/// `CHORUS_FUZZ_STRICT=1` (no tolerance) to report whether it is still open. Once fixed, delete
/// the case and rename the reproducer without `open-`, so that it guards the fix.
enum KnownFinding {
    // None open. Fixed so far (their reproducers in Fuzz/regressions/ guard the fixes):
    // the fragment-count violation was not sticky (WebSocketFrameReader), and envelope
    // timestamps came back a millisecond early (Timestamp).

    /// Whether the harness lets it pass: yes, unless `CHORUS_FUZZ_STRICT=1`.
    var tolerated: Bool { !Self.strict }

    private static let strict = ProcessInfo.processInfo.environment["CHORUS_FUZZ_STRICT"] == "1"
}
