import ChorusClient
import Foundation
import Testing
import TestSupport

@Suite("Prometheus metrics and HTTP errors")
struct MetricsTests {
    @Test("/metrics exports what /stats counts, under Prometheus names, and moves with traffic")
    func statsAsMetrics() async throws {
        try await withNode { node in
            let subscriber = try await node.connect(as: "reader")
            _ = try await subscriber.request(["type": "subscribe", "topic": "chat.lobby"])
            let publisher = try await node.connect(as: "writer")
            // Three more connections of the reader's user: on every event loop, still one user.
            var more: [WebSocketClient] = []
            for _ in 0..<3 { more.append(try await node.connect(as: "reader")) }
            try await publisher.send(json: ["type": "message", "topic": "chat.lobby", "data": ["n": 1]])
            _ = try await subscriber.next(type: "message")
            let text = try await HTTP.get("\(node.baseURL)/metrics").text
            let series = Self.samples(text)
            #expect(series["chorus_websocket_connections_authenticated"] == 5, "\(text)")
            #expect(series["chorus_users_connected"] == 2, "distinct users, not per event loop")
            #expect(series["chorus_subscriptions"] == 1)
            #expect(series["chorus_subscribed_topics"] == 1)
            #expect(series["chorus_messages_published_total"] == 1)
            #expect(series["chorus_messages_delivered_total"] == 1)
            #expect(series["chorus_ready"] == 1)
            #expect((series["process_resident_memory_bytes"] ?? 0) > 1_000_000)
            for name in [
                "chorus_websocket_closed_total{code=\"4008\"}", "chorus_websocket_closed_total{code=\"4000\"}",
                "chorus_websocket_closed_total{code=\"4001\"}", "chorus_websocket_auth_expired_total",
                "chorus_websocket_refused_total{reason=\"ip_limit\"}", "chorus_websocket_refused_total{reason=\"node_full\"}",
                "chorus_messages_dropped_total{reason=\"delivery_backlog\"}",
                "chorus_messages_dropped_total{reason=\"adapter_queue\"}",
                "chorus_delivery_paced_drains_total", "chorus_websocket_reads_paused_total",
                "chorus_websocket_connections_compressing", "chorus_messages_compressed_total", "chorus_messages_inflated_total",
            ] {
                #expect(series[name] == 0, "\(name) missing: \(text)")
            }
            #expect(text.contains("# TYPE chorus_messages_dropped_total counter"))
            // Every series the node exports from its own counts says what it means.
            for name in [
                "chorus_messages_dropped_total", "chorus_ready", "chorus_delivery_latency_seconds", "process_start_time_seconds",
                "chorus_websocket_connections", "chorus_messages_published_total", "chorus_messages_delivered_total",
                "chorus_delivery_paced_drains_total", "chorus_websocket_reads_paused_total",
                "chorus_websocket_auth_expired_total", "chorus_memory_trims_total", "chorus_memory_trimmed_bytes_total",
                "chorus_websocket_connections_compressing", "chorus_messages_compressed_total", "chorus_messages_inflated_total",
            ] {
                #expect(text.contains("# HELP \(name) "), "no HELP line for \(name): \(text)")
            }
            for client in more { await client.close() }
            await subscriber.close()
            await publisher.close()
        }
    }

    @Test("/metrics exports presence members and the history this node holds")
    func presenceAndHistoryAsMetrics() async throws {
        try await withNode(["HISTORY_SIZE": "10"]) { node in
            let member = try await node.connect(as: "alice")
            try await member.subscribe("chat.lobby", member: true, events: false)
            let publisher = try await node.connect(as: "bob")
            #expect(try await publisher.request(["type": "message", "topic": "chat.lobby", "data": 1, "id": 1])["type"] as? String == "published")
            #expect(try await publisher.request(["type": "message", "topic": "chat.lobby", "data": 2, "id": 2])["type"] as? String == "published")
            let series = Self.samples(try await HTTP.get("\(node.baseURL)/metrics").text)
            #expect(series["chorus_presence_memberships"] == 1)
            #expect(series["chorus_presence_topics"] == 1)
            #expect(series["chorus_presence_events_published_total"] ?? 0 >= 1)
            #expect(series["chorus_history_topics"] == 1)
            #expect(series["chorus_history_messages"] == 2)
            #expect(series["chorus_history_bytes"] ?? 0 > 0)
            #expect(series["chorus_history_duplicates_total"] == 0)
            #expect(series["chorus_presence_reaped_leaves_total"] == 0)
            await member.close()
            await publisher.close()
        }
    }

    @Test("chorus_http_request_errors_total counts every answer of 400 or more, returned (401) or thrown (404), and no successful one")
    func httpRequestErrors() async throws {
        // A process of its own: only `chorus` bootstraps the process-wide metrics that
        // Hummingbird's request metrics go through.
        try await withNodeProcess(["STATS_TOKEN": "errors-test-token"]) { node in
            #expect(try await HTTP.get("\(node.baseURL)/health").status == 200)
            #expect(try await HTTP.get("\(node.baseURL)/stats").status == 401)
            #expect(try await HTTP.get("\(node.baseURL)/no/such/route").status == 404)
            let text = try await HTTP.get("\(node.baseURL)/metrics", headers: ["Authorization": "Bearer errors-test-token"]).text
            let errors = Self.samples(text).filter { $0.key.hasPrefix("chorus_http_request_errors_total{") }
            #expect(errors.filter { $0.key.contains(#"status="401""#) && $0.value == 1 }.count == 1, "\(errors)")
            #expect(errors.filter { $0.key.contains(#"status="404""#) && $0.value == 1 }.count == 1, "\(errors)")
            #expect(errors.keys.allSatisfy { $0.contains(#"status="4"#) || $0.contains(#"status="5"#) }, "\(errors)")
            #expect(text.contains(#"status="401""#) && text.contains("chorus_http_requests_total{"), "requests still counted")
        }
    }

    @Test("an unknown route answers 404 in the error shape")
    func notFound() async throws {
        try await withNode { node in
            let response = try await HTTP.get("\(node.baseURL)/no/such/route")
            #expect(response.status == 404)
            let body = try response.json()
            #expect(body["type"] as? String == "error")
            #expect(body["code"] as? Int == 404)
            #expect(body["message"] as? String == "no route for GET /no/such/route")
        }
    }

    /// `name{labels}` -> value, for every sample line of a Prometheus text exposition.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            samples[String(line[..<space])] = value
        }
        return samples
    }
}
