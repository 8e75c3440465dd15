// swift-tools-version: 6.1
// Benchmarks of the Tripline engine with ordo-one/benchmark. Run from this folder:
//   swift package --allow-writing-to-package-directory benchmark
// Kept out of the main package so that its dependencies never slow the product's build.
import PackageDescription

let package = Package(
    name: "TriplineBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Tripline", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TriplineCore", package: "Tripline"),
                .product(name: "TriplineYAML", package: "Tripline"),
                .product(name: "TriplineTesting", package: "Tripline"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
