import Foundation

/// Finds the programs the cluster tests start: `redis-server`, `redis-cli`, `nginx` and the
/// `chorus` binary this package builds.
public enum Executable {
    /// The absolute path of `name`, searched on `PATH` and then in the usual system folders
    /// (nginx lives in `/usr/sbin`, which a non-root `PATH` often lacks).
    public static func find(_ name: String, hint: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init)
            + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/opt/homebrew/bin"]
        for folder in folders where !folder.isEmpty {
            let candidate = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestFailure("'\(name)' not found on PATH or in /usr/sbin, /usr/bin: \(hint)")
    }

    /// The package's root folder (this file is `Tests/TestSupport/Executable.swift`).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The node binary: `CHORUS_BIN` when set, else `.build/debug/chorus` in the package root.
    public static func chorus() throws -> String {
        if let override = ProcessInfo.processInfo.environment["CHORUS_BIN"], !override.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: override) else {
                throw TestFailure("CHORUS_BIN=\(override) is not an executable file")
            }
            return override
        }
        let built = packageRoot.appendingPathComponent(".build/debug/chorus").path
        guard FileManager.default.isExecutableFile(atPath: built) else {
            throw TestFailure("\(built) is missing: run `swift build` first, or set CHORUS_BIN to a chorus binary")
        }
        return built
    }
}
