import Broker
import Hummingbird
import Store

/// The `limit` and `before` query parameters of a cursor-paged list (`GET /api/messages`,
/// `GET /api/conversations`): parsed and refused the same way on every such route.
///
/// A page also stops at about ``pageBytes`` of items (always at least one), as history pages
/// do: 100 messages of 10,000 escaped control characters and 16 KiB of metadata each would
/// otherwise make one response of 7.7 MB, held whole for a client that does not read it. A page
/// cut short has a `nextCursor` that continues after its last item.
struct PageRequest {
    /// The page sizes a client may ask for.
    static let sizes = 1...100
    /// About the most bytes of items one page carries past its first item.
    static let pageBytes = 1 << 20

    let limit: Int
    /// A `nextCursor` an earlier page returned, or nil for the newest page.
    let before: String?

    init(_ request: Request, defaultLimit: Int) throws(APIError) {
        let query = request.uri.queryParameters
        before = query["before"].map(String.init)
        guard let text = query["limit"] else {
            limit = defaultLimit
            return
        }
        guard let value = Int(text), Self.sizes.contains(value) else {
            throw APIError.invalid("limit", "'limit' must be a whole number in \(Self.sizes.lowerBound)...\(Self.sizes.upperBound)")
        }
        limit = value
    }

    /// Runs `read` with this page's cursor and size; a cursor the store does not recognize is a
    /// 400 naming `before`.
    func read<Page>(_ read: (_ before: String?, _ limit: Int) async throws -> Page) async throws -> Page {
        do {
            return try await read(before, limit)
        } catch StoreError.invalidCursor {
            throw APIError.invalid("before", "'before' is not a cursor this API returned")
        }
    }

    /// Writes `items` as JSON array elements, in order, until the next would take the page past
    /// `budget` bytes (the first always goes in); returns how many were written.
    static func write<Item>(
        _ items: [Item], to writer: inout JSONWriter, budget: Int = pageBytes, _ json: (Item) -> RawJSON
    ) -> Int {
        let start = writer.bytes.count
        for (index, item) in items.enumerated() {
            let encoded = json(item)
            if index > 0 {
                guard writer.bytes.count - start + 1 + encoded.bytes.count <= budget else { return index }
                writer.raw(",")
            }
            writer.raw(encoded)
        }
        return items.count
    }

    /// The end of a page's JSON: `],"nextCursor":<cursor or null>}`.
    static func close(_ writer: inout JSONWriter, nextCursor: String?) {
        writer.raw("],\"nextCursor\":")
        if let cursor = nextCursor { writer.string(cursor) } else { writer.raw("null") }
        writer.raw("}")
    }
}
