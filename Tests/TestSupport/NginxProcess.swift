import ChorusClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `nginx` in front of the nodes, on a reserved loopback port: the loopback variant of
/// `deploy/nginx.conf` that `deploy/run-cluster.sh` generates (same proxy settings, one static
/// upstream of the nodes, no upstream keepalive since a node upgrades a connection to
/// WebSocket only on its first request), with every path inside ``directory``.
public final class NginxProcess: Sendable {
    public let port: Int
    public let directory: URL
    public let process: ChildProcess

    private init(port: Int, directory: URL, process: ChildProcess) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    /// PEM files for a TLS listener: nginx then terminates TLS and passes plain HTTP on.
    public struct TLSFiles: Sendable {
        public var certificate: String
        public var key: String

        public init(certificate: String, key: String) {
            self.certificate = certificate
            self.key = key
        }
    }

    /// Writes `nginx.conf` for `upstreamPorts` and starts nginx in the foreground, on another
    /// port if the reserved one turns out to be taken; with `tls`, it listens with TLS only.
    /// Does not wait for the nodes: see ``waitUntilServing(within:)``. The caller stops it
    /// (``ChildProcess``).
    public static func start(upstreamPorts: [Int], directory: URL, tls: TLSFiles? = nil) async throws -> NginxProcess {
        let nginx = try Executable.find("nginx", hint: "install nginx (Debian: apt-get install -y nginx-light)")
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        let configuration = directory.appendingPathComponent("nginx.conf")
        let errorLog = directory.appendingPathComponent("error.log")
        for attempt in 1...5 {
            let port = try LoopbackPort.reserve()
            try Self.configuration(port: port, upstreamPorts: upstreamPorts, directory: directory.path, tls: tls)
                .write(to: configuration, atomically: true, encoding: .utf8)
            try? FileManager.default.removeItem(at: errorLog)
            let process = try await ChildProcess.spawn(
                nginx, ["-p", directory.path, "-e", errorLog.path, "-c", configuration.path, "-g", "daemon off;"],
                log: directory.appendingPathComponent("stdout.log"))
            // Listening, or gone because another process took the port between the probe and the bind.
            let deadline = ContinuousClock.now + .seconds(20)
            var listening = false
            while process.isRunning, ContinuousClock.now < deadline {
                if LoopbackPort.accepts(port) {
                    listening = true
                    break
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            let started = NginxProcess(port: port, directory: directory, process: process)
            if listening { return started }
            if !process.isRunning {
                if started.errorLog().contains("Address already in use"), attempt < 5 { continue }
                throw TestFailure("nginx exited during start: \(started.errorLog())")
            }
            // Neither listening nor gone at the deadline: fail here, naming it, rather than
            // hand back an nginx that is not there.
            process.signal(SIGKILL)
            throw TestFailure("nginx did not listen on port \(port) within 20 s: \(started.errorLog())")
        }
        throw TestFailure("nginx found no free port")
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Waits until nginx answers `/health` (from some node) with 200.
    public func waitUntilServing(within timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw TestFailure("nginx exited during start: \(errorLog())")
            }
            if let response = try? await HTTP.get("\(baseURL)/health"), response.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("nginx on port \(port) did not serve /health within \(timeout): \(errorLog())")
    }

    public func errorLog() -> String {
        (try? String(contentsOf: directory.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
    }

    static func configuration(port: Int, upstreamPorts: [Int], directory: String, tls: TLSFiles? = nil) -> String {
        // Started as root without a `user` line, nginx runs its workers as `nobody`, who cannot
        // enter the private temp folder; name ourselves instead (not root: nginx ignores it).
        var user = ""
        if getuid() == 0, let account = getpwuid(0), let group = getgrgid(getgid()) {
            user = "user \(String(cString: account.pointee.pw_name)) \(String(cString: group.pointee.gr_name));\n"
        }
        let servers = upstreamPorts.map { "        server 127.0.0.1:\($0) max_fails=0;" }
            .joined(separator: "\n")
        let proxyHeaders = """
                    proxy_set_header Host $host;
                    proxy_set_header X-Real-IP $remote_addr;
                    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    proxy_set_header X-Forwarded-Proto $scheme;
                    proxy_connect_timeout 2s;
                    proxy_next_upstream error timeout http_502 http_503;
                    proxy_next_upstream_tries 3;
                    proxy_next_upstream_timeout 10s;
        """
        return """
            \(user)# One process, no workers: the test's parent-death signal then ends all of nginx.
            master_process off;
            worker_processes 1;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log notice;

            # Two connections per client (downstream and upstream): room for a few thousand clients.
            worker_rlimit_nofile 16384;
            events {
                worker_connections 8192;
            }

            http {
                access_log \(directory)/access.log;
                client_body_temp_path \(directory)/tmp/client_body;
                proxy_temp_path \(directory)/tmp/proxy;
                fastcgi_temp_path \(directory)/tmp/fastcgi;
                uwsgi_temp_path \(directory)/tmp/uwsgi;
                scgi_temp_path \(directory)/tmp/scgi;

                map $http_upgrade $connection_upgrade {
                    default upgrade;
                    ''      close;
                }

                upstream chorus_nodes {
                    least_conn;
            \(servers)
                    # No keepalive: a node upgrades to WebSocket only on a connection's first request.
                }

                client_max_body_size 2m;

                server {
                    listen 127.0.0.1:\(port)\(tls == nil ? "" : " ssl");
            \(tls.map { "        ssl_certificate \($0.certificate);\n        ssl_certificate_key \($0.key);" } ?? "")

                    location /ws {
                        proxy_pass http://chorus_nodes;
                        proxy_http_version 1.1;
                        proxy_set_header Upgrade $http_upgrade;
                        proxy_set_header Connection $connection_upgrade;
            \(proxyHeaders)
                        proxy_read_timeout 75s;
                        proxy_send_timeout 75s;
                        proxy_buffering off;
                    }

                    location / {
                        proxy_pass http://chorus_nodes;
                        proxy_http_version 1.1;
            \(proxyHeaders)
                        proxy_read_timeout 30s;
                        proxy_send_timeout 30s;
                    }
                }
            }

            """
    }
}
