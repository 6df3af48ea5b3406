/// Which delivered topics a subscription's topic or pattern covers, by the node's rules: `*`
/// is exactly one segment, `**` one or more, anywhere in the pattern.
enum TopicFilter {
    /// True when `pattern` contains a wildcard segment (the node refuses `since`/`replay` on one).
    static func isPattern(_ pattern: String) -> Bool {
        pattern.split(separator: ".", omittingEmptySubsequences: false).contains { $0 == "*" || $0 == "**" }
    }

    static func matches(_ pattern: String, _ topic: String) -> Bool {
        if pattern == topic { return true }
        let patternSegments = pattern.split(separator: ".", omittingEmptySubsequences: false)
        let topicSegments = topic.split(separator: ".", omittingEmptySubsequences: false)
        return matches(patternSegments[...], topicSegments[...])
    }

    private static func matches(_ pattern: ArraySlice<Substring>, _ topic: ArraySlice<Substring>) -> Bool {
        guard let first = pattern.first else { return topic.isEmpty }
        guard !topic.isEmpty else { return false }
        switch first {
        case "**":
            // One or more segments: take one, then either stop here or take more.
            var rest = topic.dropFirst()
            while true {
                if matches(pattern.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        case "*":
            return matches(pattern.dropFirst(), topic.dropFirst())
        default:
            return first == topic.first && matches(pattern.dropFirst(), topic.dropFirst())
        }
    }
}
