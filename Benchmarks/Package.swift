// swift-tools-version:6.2
import PackageDescription

import struct Foundation.URL

// SwiftPM names a path dependency after its directory, which differs between clones.
let ark = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

// The hot pieces of ARK under ordo-one/benchmark, in a package of their own so that the main
// build and `swift test` never compile the benchmark tooling. Run from this directory:
//   swift package benchmark                      # run and print
//   ./check.sh                                   # run and compare with Thresholds/ (exit 1 on a regression)
let package = Package(
    name: "ARKBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        // The malloc interposer counts allocations; the runtime interposer is not on this machine.
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "HotPaths",
            dependencies: [
                .product(name: "ARKCore", package: ark),
                .product(name: "Graveyard", package: ark),
                .product(name: "ARKBus", package: ark),
                .product(name: "ARKStoreWriter", package: ark),
                .product(name: "ARKState", package: ark),
                .product(name: "ARKSLO", package: ark),
                .product(name: "ARKBench", package: ark),
                .product(name: "ARKProcess", package: ark),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/HotPaths",
            swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-warnings-as-errors"])],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
