#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Logging

/// Process limits a node with many connections needs.
public enum ResourceLimits {
    /// The soft limit on open files, if there is one.
    public static func openFileLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return Int(clamping: limit.rlim_cur)
    }

    /// How many descriptors the process has open now (nil where that cannot be counted).
    public static func openDescriptorCount() -> Int? {
        #if os(Linux)
        let folder = "/proc/self/fd"
        #else
        let folder = "/dev/fd"
        #endif
        guard let directory = opendir(folder) else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        return count - 1  // the directory's own descriptor
    }

    /// Raises the soft limit on open files to the hard limit: every WebSocket is a descriptor.
    public static func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let before = limit.rlim_cur
        var target = limit.rlim_max
        #if canImport(Darwin)
        target = min(target, rlim_t(OPEN_MAX))  // Darwin refuses more, even with an unlimited hard limit
        #endif
        guard limit.rlim_cur < target else { return }
        limit.rlim_cur = target
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.info("open file limit raised", metadata: ["from": "\(before)", "to": "\(target)"])
        }
    }

    /// Has libdispatch make its timer descriptors now, one per clock (continuous, suspending,
    /// wall), before the node accepts connections.
    ///
    /// libdispatch creates them lazily, at the first timer of each clock (a `Task.sleep`, an
    /// `asyncAfter`, in this code or a library's), and on Linux stops the process (SIGILL) when
    /// that first timer finds no descriptor free. A node out of descriptors under a connection
    /// flood then crashed the first time anything slept on a clock not used before
    /// (`ConnectionFloodTests`, once in five CI runs). Made here, they are reused ever after.
    public static func createTimerDescriptors() async {
        try? await Task.sleep(for: .milliseconds(1), tolerance: nil, clock: .continuous)
        try? await Task.sleep(for: .milliseconds(1), tolerance: nil, clock: .suspending)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().asyncAfter(wallDeadline: .now() + .milliseconds(1)) { done.resume() }
        }
    }
}
