// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "chorus",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "chorus", targets: ["Chorus"]),
        .library(name: "Broker", targets: ["Broker"]),
        .library(name: "Node", targets: ["Node"]),
        .library(name: "ChorusClient", targets: ["ChorusClient"]),
        .library(name: "ChorusSDK", targets: ["ChorusSDK"]),
        .library(name: "Store", targets: ["Store"]),
        .executable(name: "chorus-bench", targets: ["ChorusBench"]),
        .executable(name: "chorus-floor-nio", targets: ["FloorNIO"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // No traits: Hummingbird's two default traits (ConfigurationSupport, FullFoundation) reach
        // the compiler as -D flags in an order that changes between SwiftPM runs, so an unchanged
        // tree recompiled Hummingbird (18-26 s) on every other build. Chorus uses neither.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // glibc's malloc_trim and mallinfo2 (HeapTrimmer): Swift's Glibc module leaves out <malloc.h>.
        .systemLibrary(name: "CMalloc"),
        // zlib for permessage-deflate (RFC 7692); swift-nio-extras' CNIOExtrasZlib is not a product.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "Broker",
            dependencies: [
                "CHiredis",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Node",
            dependencies: [
                "Broker",
                "Store",
                "CZlib",
                "CMalloc",
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Store",
            dependencies: [
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ChorusClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ChorusSDK",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "Chorus",
            dependencies: [
                "Node",
                "Broker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // bench/floor/floor.c's job on SwiftNIO: the benchmark's second floor (docs/benchmarks.md, run R).
        .executableTarget(
            name: "FloorNIO",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "bench/floor-nio",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ChorusBench",
            dependencies: [
                "Node",
                "CZlib",
                "Broker",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "ChorusClient", "Node", "Broker",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BrokerTests",
            dependencies: [
                "Broker", "TestSupport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Node", "TestSupport", "ChorusClient", "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ClusterTests", dependencies: ["TestSupport", "ChorusClient"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SDKTests",
            dependencies: ["ChorusSDK", "TestSupport", "Node", .product(name: "NIOSSL", package: "swift-nio-ssl")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StoreTests",
            dependencies: [
                "Store", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// Fuzzing (docs/fuzzing.md, scripts/fuzz.sh): with CHORUS_FUZZ=1 the package gains the libFuzzer
// harness `chorus-fuzz`, and the modules under test are compiled with libFuzzer's coverage
// instrumentation and AddressSanitizer. A normal build never sees this, so it needs no fuzzer
// runtime; scripts/fuzz.sh builds with its own scratch path so the normal build stays intact.
if Context.environment["CHORUS_FUZZ"] == "1" {
    let instrumented: SwiftSetting = .unsafeFlags(["-sanitize=fuzzer,address"])
    for target in package.targets where ["Broker", "Node", "ChorusSDK"].contains(target.name) {
        target.swiftSettings = (target.swiftSettings ?? []) + [instrumented]
    }
    package.products.append(.executable(name: "chorus-fuzz", targets: ["ChorusFuzz"]))
    package.targets.append(.target(name: "ChorusFuzzMain", path: "Fuzz/ChorusFuzzMain"))
    package.targets.append(
        .executableTarget(
            name: "ChorusFuzz",
            dependencies: [
                "Broker", "Node", "ChorusSDK", "ChorusFuzzMain",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Fuzz/ChorusFuzz",
            swiftSettings: swiftSettings + [.unsafeFlags(["-sanitize=fuzzer,address", "-parse-as-library"])],
            // lld, because gold warns about every ASan symbol it cannot export.
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]
        ))
}
