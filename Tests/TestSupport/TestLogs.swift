import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Where the servers a test starts write their logs: `.build/test-logs/<run>/<test>-<n>/`.
///
/// Logs are never deleted by the test that wrote them. Swift Testing offers no public way for a
/// fixture to learn that an `#expect` failed (a failed expectation records an issue and does
/// not throw), so a fixture cannot keep logs "only on failure" reliably; it keeps them always,
/// and prints the folder, with the tails of its logs, when it sees a failure itself (the body
/// threw, a node exited badly or logged a crash). After a failed `#expect` the logs of that test
/// are in the folder named after it. Each test process makes one `<run>` folder (its start time
/// and pid) and removes all but the newest few runs, so the folder does not grow without bound.
public enum TestLogs {
    /// `.build/test-logs` in the package root.
    public static let root = Executable.packageRoot.appendingPathComponent(".build/test-logs")
    /// Runs kept besides this one.
    private static let keptRuns = 4
    private static let counter = Atomic<Int>(0)

    /// This test process's folder, made (and older runs pruned) on first use.
    public static let run: URL = {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        let name = "\(formatter.string(from: Date()))-\(getpid())"
        let folder = root.appendingPathComponent(name)
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let runs = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter { $0 != name }.sorted()
        for old in runs.dropLast(keptRuns) {
            try? FileManager.default.removeItem(at: root.appendingPathComponent(old))
        }
        return folder
    }()

    /// A fresh folder for one fixture of the current test, named after the test (`label` when
    /// no test is running).
    public static func folder(_ label: String) throws -> URL {
        let test = Test.current?.name ?? label
        let safe = String(test.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }.prefix(80))
        let number = counter.add(1, ordering: .relaxed).newValue
        let folder = run.appendingPathComponent("\(safe)-\(label)-\(number)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// The last `lines` lines of every log file under `folder` (recursively), each headed by its path.
    public static func tails(of folder: URL, lines: Int = 30) -> String {
        let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }
            .filter { $0.pathExtension == "log" }
            .sorted { $0.path < $1.path } ?? []
        return files.map { file in
            let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
            return "==> \(file.path) <==\n\(tail)"
        }.joined(separator: "\n")
    }

    /// What a process that crashed or failed an assertion leaves in its log (Swift runtime
    /// messages and the backtracer's report).
    public static let crashMarkers = [
        "Assertion failed", "Fatal error", "Precondition failed", "Program crashed", "Crash", "*** Signal ",
        "Signal 4", "Signal 6", "Signal 11", "Backtracing", "Thread 0 crashed",
    ]

    /// The lines of `log` that show a crash or a failed assertion.
    public static func crashLines(in log: String) -> [String] {
        log.split(separator: "\n").filter { line in crashMarkers.contains { line.contains($0) } }.map(String.init)
    }
}
