import Foundation
import TestSupport

/// Which protocol additions (docs: the protocol section of README.md) the node under test has,
/// read from the node's sources in this checkout (outside its dashboard page): the SDK supports them all, and a test of one
/// runs (or a test checks it) as soon as the node gains it. The marker is the reply or message
/// type the node then writes.
enum NodeFeatures {
    private static let source: String = {
        let folder = root.appendingPathComponent("Sources/Node")
        guard let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return "" }
        var text = ""
        // The dashboard's page has its own words ("published" per second): not the protocol.
        for case let file as URL in files where file.pathExtension == "swift" && !file.path.contains("/Dashboard/") {
            text += (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        }
        return text
    }()

    /// The checkout of the node under test: this package, or the one whose
    /// `.build/<configuration>/chorus` `CHORUS_BIN` names (to run these tests against another
    /// branch's node).
    private static let root: URL = {
        if let binary = ProcessInfo.processInfo.environment["CHORUS_BIN"], let range = binary.range(of: "/.build/") {
            return URL(fileURLWithPath: String(binary[..<range.lowerBound]))
        }
        return Executable.packageRoot
    }()

    /// `published` replies to a publish with an `id` (issue 11).
    static let publishAcknowledgements = source.contains("\"published\"")
    /// History: `offset`/`epoch` on messages, `since` and `recovered` (issue 11).
    static let history = source.contains("\"recovered\"") || source.contains(#"\"recovered\""#)
    /// `presence.get` / `presence.state` and presence events (issue 12).
    static let presence = source.contains("\"presence.state\"")
    /// `read` / `read_recorded` (issue 12).
    static let readReceipts = source.contains("\"read_recorded\"")
    /// `typing` messages (issue 12).
    static let typing = source.contains("\"typing\"")
}
