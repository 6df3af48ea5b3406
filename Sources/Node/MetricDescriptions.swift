import Prometheus

/// What each series the node exports itself means: its `# HELP` line at `/metrics`.
enum MetricDescriptions {
    /// The full name as the metric name (no namespace or unit parts to join) and its `# HELP` text.
    static func descriptor(_ name: String) -> MetricNameDescriptor {
        guard let help = help[name] else { preconditionFailure("no help text for the metric \(name)") }
        return MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// What each series means, for the `# HELP` line of `/metrics`.
    static let help: [String: String] = [
        "chorus_websocket_connections": "Open WebSocket connections.",
        "chorus_websocket_connections_total": "WebSocket connections opened since the node started.",
        "chorus_messages_published_total": "Messages published through this node (WebSocket and HTTP), counted as they arrive: those Redis then refused too (chorus_messages_refused_total).",
        "chorus_messages_delivered_total": "Messages written to subscribers of this node.",
        "chorus_delivery_latency_seconds": "From a message's arrival at the node until an event loop flushed it to its subscribers; the oldest message of each drain.",
        "chorus_websocket_connections_authenticated": "WebSocket connections that have authenticated.",
        "chorus_users_connected": "Distinct users with at least one WebSocket connection.",
        "chorus_websocket_connections_max": "WEBSOCKET_MAX_CONNECTIONS as the node applies it.",
        "chorus_websocket_refused_total": "WebSocket upgrades refused, by reason.",
        "chorus_websocket_reads_paused_total": "Times a connection was not read for a while because its messages passed WEBSOCKET_MAX_BYTES_PER_SECOND.",
        "chorus_websocket_connections_compressing": "Open WebSocket connections that agreed to permessage-deflate (WEBSOCKET_COMPRESSION=on).",
        "chorus_messages_compressed_total": "Delivered messages compressed for permessage-deflate: once per message, whatever the fan-out.",
        "chorus_messages_inflated_total": "Client messages that arrived compressed (permessage-deflate) and were handled.",
        "chorus_websocket_closed_total": "WebSocket connections the node closed, by close code (4008 slow consumer, 4000 ping timeout, 1008 flooding, 4001 token expired and not renewed within JWT_RENEWAL_GRACE).",
        "chorus_websocket_auth_expired_total": "Times a connection's token expired (auth_expired): delivery paused until a fresh auth, closed with 4001 after JWT_RENEWAL_GRACE without one.",
        "chorus_subscriptions": "Subscriptions held by this node's connections.",
        "chorus_subscribed_topics": "Distinct concrete topics subscribed on this node.",
        "chorus_subscribed_patterns": "Distinct wildcard patterns subscribed on this node.",
        "chorus_messages_dropped_total": "Messages dropped, by reason (delivery_backlog: an event loop's inbox was full; adapter_queue: the publish queue was full).",
        "chorus_messages_refused_total": "Messages Redis refused with an error reply (out of memory, READONLY, NOPERM); those with history were refused to their publishers.",
        "chorus_delivery_paced_drains_total": "Delivery drains an event loop scheduled WEBSOCKET_WRITE_DELAY later because it was busy writing deliveries (a quarter of its time, until under an eighth).",
        "chorus_messages_published_in_fallback_total": "Messages delivered locally while the pub/sub backend was unreachable.",
        "chorus_adapter_malformed_payloads_total": "Messages from the pub/sub backend that could not be decoded.",
        "chorus_ready": "1 when GET /ready answers 200: the node is not starting or draining (and, with READY_REQUIRES_REDIS, reaches Redis).",
        "chorus_adapter_connected": "1 when the pub/sub adapter is connected (or local), 0 in fallback.",
        "chorus_redis_state": "1 for the current state of each Redis backend.",
        "chorus_redis_backend_transitions_total": "State changes of each Redis backend.",
        "chorus_redis_transitions_total": "State changes over all Redis backends, by the state entered (connected, fallback).",
        "process_resident_memory_bytes": "Resident memory of the node process.",
        "chorus_memory_trims_total": "Times the node gave memory it had freed back to the kernel (malloc_trim, MEMORY_TRIM_INTERVAL).",
        "chorus_memory_trimmed_bytes_total": "Resident bytes the node gave back to the kernel by those trims.",
        "process_start_time_seconds": "Start time of the node process since the Unix epoch.",
        "chorus_presence_memberships": "Presence memberships (user, topic) held by this node's connections.",
        "chorus_presence_topics": "Topics with presence members on this node.",
        "chorus_presence_events_received_total": "Presence events this node received.",
        "chorus_typing_indicators_received_total": "Typing indicators this node received.",
        "chorus_presence_events_published_total": "Presence events this node published.",
        "chorus_presence_reaped_instances_total": "Presence entries of stopped nodes removed by this node.",
        "chorus_presence_reaped_leaves_total": "Leaves this node published for members of stopped nodes it reaped.",
        "chorus_presence_store_failures_total": "Presence store operations that failed.",
        "chorus_history_topics": "Topics with history held by this node (with Redis, its fallback rings).",
        "chorus_history_messages": "History messages held by this node.",
        "chorus_history_bytes": "Bytes of history messages held by this node.",
        "chorus_history_stored_total": "Messages this node stored in history (Redis history backend only: the series is absent with memory history).",
        "chorus_history_duplicates_total": "Publishes refused as duplicates of an earlier messageId.",
        "chorus_gap_notices_total": "Gap notices written to clients after a Redis server returned from fallback: messages of a subscription may be missing.",
        "chorus_store_pruned_total": "Rows deleted by MESSAGE_RETENTION: messages, and ids of deleted messages (deleted_messages).",
    ]
}
