/// JSON texts that must travel through Chorus byte for byte.
public enum JSONFixtures {
    /// A `data` value with what a re-encoding would change: integers past 2^53 (snowflake ids),
    /// 2^53 ± 1, `-0`, `1E+2`, `1e400` (past a Double's range), a fraction with trailing zeros,
    /// every escape RFC 8259 has, a surrogate pair, raw non-ASCII, members out of name order and
    /// white space inside.
    public static let faithfulData =
        #"{"ts":1796133956872868123,"big":12345678901234567890,"neg":-9007199254740993,"e":1e400,"#
        + #""p53":9007199254740993,"m53":9007199254740991,"z":-0,"E":1E+2,"f":-1.2500e-3,"#
        + #""esc":"\" \\ \/ \b \f \n \r \t \u00e9 \u4E2D \u0000","pair":"\ud83d\ude00","raw":"héllo 中 😀","#
        + #""nested":{"b":[1,{"y":null,"x":true}],"a":false}, "spaced" : [ 1 , 2 ] }"#

    /// Arrays nested `depth` deep around `1`.
    public static func nested(_ depth: Int) -> String {
        String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
    }
}
