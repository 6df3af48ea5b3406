/// How many of a listing's rows one page reads whole, given only their sizes.
///
/// A page of the HTTP API stops at about a mebibyte of JSON, but a store that read `limit + 1`
/// whole rows first (100 messages of 40 KB of content and 16 KiB of metadata: 5.6 MB) held
/// them all to send a fifth. The repositories therefore read each row's size first, newest
/// first, and then only the rows this budget keeps. A row's JSON is never shorter than its
/// content and metadata, so the page writer never wants a row the store did not read.
enum PageBudget {
    /// The number of leading rows to read: every row whose predecessors hold fewer than
    /// `maxBytes` bytes, at most `limit`, and at least one when there is one.
    static func rows(sizes: [Int], limit: Int, maxBytes: Int) -> Int {
        var total = 0
        for (index, size) in sizes.prefix(limit).enumerated() {
            guard index == 0 || total < maxBytes else { return index }
            total += size
        }
        return min(sizes.count, limit)
    }
}
