import Foundation

/// TEMPORARY (experiment only, removed before merge): switches off memory levers named in
/// `CHORUS_MEM_LEVERS_OFF` (comma list) so that one build can be measured A/B.
enum MemoryLevers {
    static let off: Set<String> = Set(
        (ProcessInfo.processInfo.environment["CHORUS_MEM_LEVERS_OFF"] ?? "").split(separator: ",").map(String.init))
    static let freshReadBuffers = !off.contains("recv")
    static let noEmptyWatermark = !off.contains("watermark")
    static let noWeakReply = !off.contains("weak")
    static let inlineSubscription = !off.contains("subs")
    static let compactPresence = !off.contains("member")
}
