// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // The engine is single-threaded by design; dynamic exclusivity checks on its class
    // state cost more than the work on the hot path in release builds.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
    // Metadata of generic types over our own (the storage of a [DocNode] array literal) is
    // then fetched through the ordinary accessor, cached after its first use, not the
    // prespecialised one, which asked the runtime's hash table on every array allocation:
    // a third of parsing a zones file (Benchmarks/README.md, twelfth session).
    .unsafeFlags(["-Xfrontend", "-disable-generic-metadata-prespecialization"], .when(configuration: .release)),
]

let package = Package(
    name: "Tripline",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "TriplineCore", targets: ["TriplineCore"]),
        .library(name: "TriplineYAML", targets: ["TriplineYAML"]),
        .library(name: "TriplineTesting", targets: ["TriplineTesting"]),
        .executable(name: "tripline", targets: ["tripline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/mattpolzin/OpenAPIKit", from: "6.4.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.0"),
    ],
    targets: [
        .target(name: "CTriplineSupport"),
        // The NATS C client from Debian (libnats-dev), for the cluster mode on JetStream.
        .systemLibrary(name: "CNats", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        // The Mosquitto MQTT client from Debian (libmosquitto-dev), for MQTT receivers.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .target(
            name: "TriplineMQTT",
            dependencies: ["CMosquitto"],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineNATS",
            dependencies: ["CNats"],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineCluster",
            dependencies: ["TriplineCore", "TriplineYAML", "TriplineNATS"],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineCore",
            dependencies: ["CTriplineSupport", .product(name: "Mustache", package: "swift-mustache")],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineYAML",
            dependencies: ["TriplineCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // Notification policy: routing tree, grouping, inhibition, mute intervals (Alertmanager's
        // model), as a deterministic state machine on an injected clock.
        .target(
            name: "TriplineNotify",
            dependencies: ["TriplineCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TriplineNotifyTests",
            dependencies: ["TriplineNotify", "TriplineCore", "TriplineYAML"],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineTesting",
            dependencies: ["TriplineCore"],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineStore",
            dependencies: ["TriplineCore"],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineSQLite",
            dependencies: ["TriplineCore", "TriplineStore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .target(
            name: "TriplinePostgres",
            dependencies: [
                "TriplineCore",
                "TriplineStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineServer",
            dependencies: [
                "TriplineCore",
                "TriplineStore",
                "TriplineYAML",
                "TriplineNotify",
                "TriplineNATS",
                "TriplineMQTT",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            resources: [.copy("Resources/openapi.json"), .copy("Resources/dashboard")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tripline",
            dependencies: [
                "TriplineCore",
                "TriplineYAML",
                "TriplineTesting",
                "TriplineStore",
                "TriplineSQLite",
                "TriplinePostgres",
                "TriplineServer",
                "TriplineCluster",
                "TriplineNotify",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TriplineCoreTests",
            dependencies: ["TriplineCore", "TriplineYAML", "TriplineTesting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TriplineServerTests",
            dependencies: ["TriplineServer", "TriplineStore", "TriplineCore", "TriplineYAML", "TriplineStoreFixtures",
                           .product(name: "OpenAPIKit", package: "OpenAPIKit")],
            swiftSettings: strict
        ),
        // A fresh store of each kind (memory, SQLite, PostgreSQL) for the store and server suites.
        .target(
            name: "TriplineStoreFixtures",
            dependencies: ["TriplineStore", "TriplineSQLite", "TriplinePostgres"],
            path: "Tests/TriplineStoreFixtures",
            swiftSettings: strict
        ),
        .testTarget(
            name: "TriplineNATSTests",
            dependencies: ["TriplineNATS"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TriplineStoreTests",
            dependencies: ["TriplineStore", "TriplineSQLite", "TriplinePostgres", "TriplineCore", "TriplineTesting", "TriplineStoreFixtures"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
