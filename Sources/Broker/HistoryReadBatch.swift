/// Several history queries of one topic answered by a single read (``RedisHistoryReads``).
///
/// The read starts after the lowest `after` and reads as many messages as the largest limit;
/// each query then takes its part of the page: the messages past its own `after`, up to its
/// own limit, with the same position. Only forward reads share (a `since`, or the position
/// alone): a page before an offset, or the newest messages, is read on its own. The shared
/// read keeps the smallest byte bound of the queries, so that no part is larger than its
/// own query allows.
struct HistoryReadBatch {
    /// The queries, in the order their parts are asked for.
    let queries: [HistoryQuery]
    /// The one read that covers them all.
    let read: HistoryQuery

    static func canShare(_ query: HistoryQuery) -> Bool {
        query.before == nil && !query.newest
    }

    /// - Precondition: every query ``canShare(_:)``.
    init(_ queries: [HistoryQuery]) {
        self.queries = queries
        // A query of the position alone (limit 0) needs no messages, whatever its `after`.
        let reading = queries.filter { $0.limit > 0 }
        if let limit = reading.map(\.limit).max() {
            let after = reading.contains { $0.after == nil } ? nil : reading.compactMap(\.after).min()
            read = HistoryQuery(after: after, limit: limit, maxBytes: reading.compactMap(\.maxBytes).min())
        } else {
            read = HistoryQuery(limit: 0)
        }
    }

    /// `queries[index]`'s page, cut from `page` (the answer to ``read``); nil when that query
    /// must be read on its own: `page` stopped at its limit or its byte bound before the
    /// topic's position, so messages past its end, which this query alone would have read, are
    /// not in it.
    func part(of page: HistoryPage, for index: Int) -> HistoryPage? {
        let query = queries[index]
        var part = page
        let after = query.after ?? Int.min
        part.messages = Array(page.messages.lazy.filter { ($0.offset ?? Int.min) > after }.prefix(query.limit))
        if part.messages.count < query.limit {
            // A query that starts where the read did, with its byte bound, would have read
            // this very page alone, cut where it was cut.
            if query.after == read.after, query.maxBytes == read.maxBytes { return part }
            let cutShort =
                page.truncated || page.messages.count >= read.limit && (page.messages.last?.offset ?? Int.min) < page.position.offset
            if cutShort { return nil }
        }
        part.truncated = false  // its limit reached, or everything up to the position
        return part
    }
}
