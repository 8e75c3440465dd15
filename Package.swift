// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // The engine is single-threaded by design; dynamic exclusivity checks on its class
    // state cost more than the work on the hot path in release builds.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
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
    ],
    targets: [
        .target(name: "CTriplineSupport"),
        .target(
            name: "TriplineCore",
            dependencies: ["CTriplineSupport"],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineYAML",
            dependencies: ["TriplineCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .target(
            name: "TriplineTesting",
            dependencies: ["TriplineCore"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tripline",
            dependencies: [
                "TriplineCore",
                "TriplineYAML",
                "TriplineTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TriplineCoreTests",
            dependencies: ["TriplineCore", "TriplineYAML", "TriplineTesting"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
