import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    @Suite("The live dashboard in a real browser")
    struct DashboardBrowserTests {
        /// Screenshots go here, kept after the run.
        static let artifacts = Executable.packageRoot.appendingPathComponent(".build/test-artifacts/dashboard")

        /// Re-evaluates `script` in the page until `accept` holds for its value; fails with the last
        /// value after `timeout`.
        private func waitInPage(
            _ browser: Browser, _ what: String, timeout: Duration = .seconds(30), _ script: String,
            until accept: (Any?) -> Bool
        ) async throws {
            let deadline = ContinuousClock.now + timeout
            var last: Any?
            while ContinuousClock.now < deadline {
                last = try await browser.evaluate(script)
                if accept(last) { return }
                try await Task.sleep(for: .milliseconds(250))
            }
            throw TestFailure("\(what): still \(String(describing: last)) after \(timeout)")
        }

        @Test("through nginx the page shows 3 nodes with their connections, rates that move with traffic, and a fallback banner while Redis is down")
        func clusterPage() async throws {
            try await withCluster(nodes: 3, environment: ["CLUSTER_HEARTBEAT_INTERVAL": "500"]) { cluster in
                let browser = try await Browser.open(logDirectory: cluster.directory)
                do {
                    // 2 connections on node 1, 1 on node 2, none on node 3.
                    let a = try await cluster.node(1).connect(as: "dash-a")
                    let b = try await cluster.node(1).connect(as: "dash-b")
                    let c = try await cluster.node(2).connect(as: "dash-c")
                    try await a.subscribe("dash.room")
                    try await c.subscribe("dash.room")
                    try await browser.navigate(to: "\(cluster.nginx.baseURL)/dashboard")

                    let rows = """
                        return [...document.querySelectorAll('#nodes tr[data-connections]')]
                          .map(r => r.dataset.node + '=' + r.dataset.connections).sort().join(',');
                        """
                    try await waitInPage(browser, "three nodes with their connections", rows) {
                        ($0 as? String) == "node-1=2,node-2=1,node-3=0"
                    }

                    // Messages flow: the delivered chart's latest point moves off zero and the topic
                    // shows among the busiest.
                    let publisher = try await cluster.node(3).connect(as: "dash-p")
                    try await publisher.awaitRoute(to: [a, c], topic: "dash.room")
                    let flowing = Task {
                        for seq in 0..<400 {
                            try await publisher.publish(topic: "dash.room", data: ["seq": seq])
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                    defer { flowing.cancel() }
                    try await waitInPage(
                        browser, "the delivered chart's latest point above zero",
                        "return document.getElementById('chart-delivered').dataset.latest;"
                    ) { Double(($0 as? String) ?? "") ?? 0 > 0 }
                    try await waitInPage(
                        browser, "dash.room among the busiest topics",
                        "return [...document.querySelectorAll('#topics tr')].map(r => r.dataset.topic);"
                    ) { ($0 as? [String])?.contains("dash.room") == true }
                    try await browser.screenshot(to: Self.artifacts.appendingPathComponent("1-cluster.png"))
                    #expect(try await browser.evaluate("return document.getElementById('banner').dataset.banner;") as? String == "")

                    // Redis stops: every node falls back, and the banner says so.
                    await cluster.redis[0].kill()
                    try await waitInPage(
                        browser, "the fallback banner",
                        "return document.getElementById('banner').dataset.banner;"
                    ) { ($0 as? String)?.contains("in Redis fallback") == true }
                    try await browser.screenshot(to: Self.artifacts.appendingPathComponent("2-redis-down.png"))

                    // Redis is back: the banner goes away once the nodes report again.
                    try await cluster.redis[0].start()
                    try await cluster.waitUntilAdapters(are: "connected")
                    try await waitInPage(
                        browser, "the banner gone", timeout: .seconds(60),
                        "return document.getElementById('banner').dataset.banner;"
                    ) { ($0 as? String) == "" }
                    try await waitInPage(browser, "three nodes listed again", rows) {
                        ($0 as? String)?.split(separator: ",").count == 3
                    }
                    try await browser.screenshot(to: Self.artifacts.appendingPathComponent("3-redis-back.png"))
                    for client in [a, b, c, publisher] { await client.close() }
                    await browser.close()
                } catch {
                    try? await browser.screenshot(to: Self.artifacts.appendingPathComponent("failure.png"))
                    await browser.close()
                    throw error
                }
            }
        }
    }
}
