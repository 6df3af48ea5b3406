import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

extension ClusterTests {
    /// Redis host names that do not resolve, or whose DNS server never answers: the lookup is
    /// bounded by PUBSUB_REDIS_TIMEOUT, like every other step of a Redis connection.
    @Suite("Redis host names and DNS")
    struct RedisDNSTests {
        private func log() throws -> URL {
            try TestLogs.folder("dns").appendingPathComponent("chorus.log")
        }

        /// Starts `chorus` through `/bin/sh -c script` (which must exec it as `"$0"`) and waits
        /// until it is ready; returns the process and its port.
        private func startNode(
            script: String?, redisURL: String, in folder: URL
        ) async throws -> (ChildProcess, Int) {
            let environment = [
                "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "LOG_LEVEL": "info",
                "DATABASE_URL": "none", "PUBSUB_ADAPTER": "redis", "PUBSUB_REDIS_URL": redisURL,
                "PUBSUB_REDIS_TIMEOUT": "500", "DRAIN_TIMEOUT": "3000",
            ]
            let chorus = try Executable.chorus()
            let process =
                if let script {
                    try await ChildProcess.spawn(
                        "/usr/bin/unshare", ["-m", "/bin/sh", "-c", script, chorus], environment: environment,
                        log: folder.appendingPathComponent("chorus.log"))
                } else {
                    try await ChildProcess.spawn(
                        chorus, [], environment: environment, log: folder.appendingPathComponent("chorus.log"))
                }
            return (process, try await NodeProcess.readyPort(of: process))
        }

        @Test("a Redis host name that does not resolve is logged as such, the node serves locally and stops at once")
        func unresolvable() async throws {
            let folder = try TestLogs.folder("dns")
            let (process, port) = try await startNode(
                script: nil, redisURL: "redis://no-such-host.invalid:6379", in: folder)
            defer { process.signal(SIGKILL) }
            let logged = await eventually(within: .seconds(20)) { process.output().contains("resolve no-such-host.invalid") }
            #expect(logged, "\(process.output().suffix(3000))")
            #expect(try await HTTP.get("http://127.0.0.1:\(port)/health").status == 200)
            // A stop held by the lookup would run past the drain and its cancellation, where
            // ServiceLifecycle ends the process with a fatal error: a crash and a status other
            // than 0, with no wall-clock threshold for a loaded machine to cross.
            #expect(await process.stop(grace: .seconds(30)) == 0, "\(process.output().suffix(3000))")
            #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
        }

        @Test(
            "a DNS server that never answers holds no Redis connection past PUBSUB_REDIS_TIMEOUT: the lookup is abandoned and logged, and the node stops within its drain",
            .timeLimit(.minutes(2)), .enabled(if: getuid() == 0, "mounts a resolv.conf and binds port 53: needs root"))
        func silentDNS() async throws {
            // A DNS server on 127.0.0.2:53 that reads and never answers, and a resolv.conf that
            // names only it (mounted over /etc/resolv.conf for the node alone), with a 30 s timeout.
            let dns = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            try #require(dns >= 0)
            defer { close(dns) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(53).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.2")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(dns, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(bound == 0, "bind 127.0.0.2:53 (needs root): errno \(errno)")
            let folder = try TestLogs.folder("dns")
            let resolv = folder.appendingPathComponent("resolv.conf")
            try "nameserver 127.0.0.2\noptions timeout:30 attempts:1\n".write(to: resolv, atomically: true, encoding: .utf8)
            let (process, port) = try await startNode(
                script: "/bin/mount --bind '\(resolv.path)' /etc/resolv.conf && exec \"$0\"",
                redisURL: "redis://redis.chorus-test.example:6379", in: folder)
            defer { process.signal(SIGKILL) }
            let logged = await eventually(within: .seconds(20)) { process.output().contains("no answer from DNS within") }
            #expect(logged, "\(process.output().suffix(3000))")
            #expect(try await HTTP.get("http://127.0.0.1:\(port)/health").status == 200)
            // A stop that waited for the DNS's 30 s would be killed at the 25-s grace, and one
            // past the drain and its cancellation ends in ServiceLifecycle's fatal error: either
            // way a status other than 0 (and a crash in the log), with no wall-clock threshold.
            #expect(await process.stop(grace: .seconds(25)) == 0, "\(process.output().suffix(3000))")
            #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
        }
    }
}
