/// Which Redis server a channel belongs on, computed by the tests from the documented rule
/// (64-bit FNV-1a over the UTF-8 of the channel key, modulo the server count), not by the code
/// under test.
public enum RedisPlacement {
    public static func server(forKey key: String, among count: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a 64 offset basis
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3  // FNV-1a 64 prime
        }
        return Int(hash % UInt64(count))
    }
}
