#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Nanoseconds on the monotonic clock. Publisher and subscribers live in one process, so the
/// send time embedded in a message and the receive time come from the same clock.
@inline(__always)
func monotonicNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
}

/// One server to load: host, port, and what it is.
struct Endpoint: Sendable, CustomStringConvertible {
    var host: String
    var port: Int

    /// Accepts `ws://h:p`, `http://h:p`, `h:p` (a path, if any, is ignored: the target kind
    /// decides the paths).
    init(parsing text: String) throws {
        var rest = Substring(text)
        for scheme in ["ws://", "http://"] where rest.hasPrefix(scheme) { rest = rest.dropFirst(scheme.count) }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
            (1...65535).contains(port)
        else { throw BenchError("'\(text)' is not host:port (ws://127.0.0.1:8080 or 127.0.0.1:8080)") }
        host = String(rest[..<colon])
        self.port = port
    }

    var description: String { "\(host):\(port)" }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// CPU time and memory of a process, from /proc (Linux only; zeros elsewhere).
struct ProcessSample: Codable, Sendable {
    var cpuSeconds: Double
    var rssBytes: Int
    var pssBytes: Int

    static func read(pid: Int32) -> ProcessSample? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        // Fields after the command name, which is in parentheses and may contain spaces.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is state (field 3); utime is field 14, stime 15.
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var sample = ProcessSample(cpuSeconds: (utime + stime) / ticks, rssBytes: 0, pssBytes: 0)
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) {
            sample.rssBytes = kibField(status, "VmRSS:") ?? 0
        }
        if let rollup = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) {
            sample.pssBytes = kibField(rollup, "Pss:") ?? 0
        }
        return sample
    }

    private static func kibField(_ text: String, _ name: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kib = Int(parts[1]) { return kib * 1024 }
        }
        return nil
    }
}

/// This process's CPU seconds (user + system).
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Raises the soft descriptor limit to the hard one; returns the new soft limit.
func raiseDescriptorLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
    return Int(limit.rlim_cur)
}

func log(_ text: String) {
    FileHandle.standardError.write(Data("chorus-bench: \(text)\n".utf8))
}
