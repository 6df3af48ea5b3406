/// Reads choices (split points, limits, mutations) from the front of a fuzzer input, so that
/// libFuzzer's mutations steer them too; what is left is the data under test.
///
/// Reading past the end yields zeros: every input, however short, is a valid choice of everything.
struct FuzzInput {
    private(set) var bytes: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) {
        self.bytes = bytes[...]
    }

    mutating func byte() -> UInt8 {
        bytes.popFirst() ?? 0
    }

    mutating func uint16() -> Int {
        Int(byte()) << 8 | Int(byte())
    }

    /// Everything not read yet.
    mutating func rest() -> [UInt8] {
        defer { bytes = [] }
        return Array(bytes)
    }
}

/// A small deterministic generator (SplitMix64), for choices derived from a seed byte or two.
struct SplitMix {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int {
        Int(next() % UInt64(max(bound, 1)))
    }

    /// `stream` cut into pieces of random sizes, mostly short (1 to 12 bytes), a quarter up to
    /// 300: how the network may hand a stream to a reader.
    mutating func pieces(of stream: [UInt8]) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var start = 0
        while start < stream.count {
            let end = min(stream.count, start + 1 + below(below(4) == 0 ? 300 : 12))
            chunks.append(Array(stream[start..<end]))
            start = end
        }
        return chunks
    }
}
