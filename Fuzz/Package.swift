// swift-tools-version: 6.1
// libFuzzer targets for Tripline's decoders and engine. Build and run with scripts/fuzz.
import PackageDescription

// The sanitizers are given on the command line (-Xswiftc -sanitize=fuzzer,address), so that
// TriplineCore and Yams are instrumented for coverage too, not only these targets.
let fuzz: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
let link: [LinkerSetting] = []

let package = Package(
    name: "TriplineFuzz",
    dependencies: [.package(name: "Tripline", path: "..")],
    targets: [
        .target(name: "CFuzzDriver"),
        .executableTarget(name: "FuzzEvents", dependencies: ["CFuzzDriver", .product(name: "TriplineCore", package: "Tripline")], swiftSettings: fuzz, linkerSettings: link),
        .executableTarget(name: "FuzzZones", dependencies: ["CFuzzDriver", .product(name: "TriplineCore", package: "Tripline")], swiftSettings: fuzz, linkerSettings: link),
        .executableTarget(name: "FuzzRules", dependencies: ["CFuzzDriver", .product(name: "TriplineCore", package: "Tripline"), .product(name: "TriplineYAML", package: "Tripline")], swiftSettings: fuzz, linkerSettings: link),
        .executableTarget(name: "FuzzTime", dependencies: ["CFuzzDriver", .product(name: "TriplineCore", package: "Tripline")], swiftSettings: fuzz, linkerSettings: link),
        .executableTarget(name: "FuzzEngine", dependencies: ["CFuzzDriver", .product(name: "TriplineCore", package: "Tripline")], swiftSettings: fuzz, linkerSettings: link),
    ]
)
