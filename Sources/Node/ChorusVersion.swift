/// The version of this build of Chorus: `chorus --version` prints it and `/stats` reports it.
public enum ChorusVersion {
    public static let text = "0.6.0"
}
