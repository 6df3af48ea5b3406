import Foundation

/// The libFuzzer entry point: every input goes to the target named by `CHORUS_FUZZ_TARGET`.
///
/// Built only with `CHORUS_FUZZ=1` (see Package.swift and scripts/fuzz.sh), which links libFuzzer's
/// own `main`. A target reports an oracle disagreement or a broken invariant by trapping (see
/// ``fuzzFailure(_:_:)``), which libFuzzer treats as a crash: it saves the input and stops.
/// libFuzzer calls this on one thread at a time.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTarget.selected.run(bytes)
    return 0
}

/// The targets, by the name `CHORUS_FUZZ_TARGET` gives them (and their corpus directory's).
enum FuzzTarget: String, CaseIterable {
    case frames, json, topics, token, envelope, inflate, member, client, redis

    /// Read once, on the first input.
    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["CHORUS_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            let names = allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("set CHORUS_FUZZ_TARGET to one of: \(names)\n".utf8))
            exit(2)
        }
        return target
    }()

    func run(_ bytes: [UInt8]) {
        switch self {
        case .frames: FramesTarget.run(bytes)
        case .json: JSONTarget.run(bytes)
        case .topics: TopicsTarget.run(bytes)
        case .token: TokenTarget.run(bytes)
        case .envelope: EnvelopeTarget.run(bytes)
        case .inflate: InflateTarget.run(bytes)
        case .member: MemberTarget.run(bytes)
        case .client: ClientTarget.run(bytes)
        case .redis: RedisTarget.run(bytes)
        }
    }
}

/// Stops the run with a description of the disagreement; libFuzzer keeps the input as `crash-*`.
func fuzzFailure(_ target: FuzzTarget, _ message: @autoclosure () -> String) -> Never {
    FileHandle.standardError.write(Data("chorus-fuzz \(target.rawValue): \(message())\n".utf8))
    fatalError("chorus-fuzz \(target.rawValue): invariant broken")
}
