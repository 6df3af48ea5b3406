/// A client's string as an error message or reply repeats it: cut short, so that a string as
/// long as the message limit does not come back (twice) as long.
///
/// Cut by Unicode scalars, not characters: one character may hold any number of combining
/// marks, and a cut by characters would send it back whole.
public enum EchoedText {
    /// Most Unicode scalars repeated.
    public static let limit = 64

    /// `text` itself when it is short, else its first ``limit`` scalars and "…".
    public static func cut(_ text: some StringProtocol) -> String {
        let scalars = text.unicodeScalars
        guard scalars.count > limit else { return String(text) }
        return String(String.UnicodeScalarView(scalars.prefix(limit))) + "…"
    }
}
