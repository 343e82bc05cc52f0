// swift-tools-version:6.2
import PackageDescription

import struct Foundation.URL

// SwiftPM names a path dependency after its directory, which differs between clones.
let ark = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

// Coverage-guided fuzzing (libFuzzer) of everything ARK parses from outside: the event codec,
// JSONReader, Kyle's SignalValidator on the real clock, the API's intake and query
// parsing, and the paper book's arithmetic (any doubles, any sequence of fills and marks). Its own package, built with the fuzzer's instrumentation over ARK's modules:
//   scripts/fuzz.sh 60            # every target for 60 s, from the corpora in Corpus/
// A target is a pure function over bytes that must never crash; a property it checks (a
// round trip, a decision against a second reader) failing is a crash too.
let fuzzSettings: [SwiftSetting] = [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library", "-warnings-as-errors"])]
// lld: gold fails on the instrumented objects (an internal error reading their DWARF).
let fuzzLinking: [LinkerSetting] = [.unsafeFlags(["-use-ld=lld"])]

let package = Package(
    name: "ARKFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "CFuzzerDriver"),
        .executableTarget(name: "FuzzEventCodec", dependencies: ["CFuzzerDriver", .product(name: "ARKCore", package: ark)], swiftSettings: fuzzSettings, linkerSettings: fuzzLinking),
        .executableTarget(name: "FuzzJSONReader", dependencies: ["CFuzzerDriver", .product(name: "ARKCore", package: ark)], swiftSettings: fuzzSettings, linkerSettings: fuzzLinking),
        .executableTarget(name: "FuzzSignalValidator", dependencies: ["CFuzzerDriver", .product(name: "ARKCore", package: ark)], swiftSettings: fuzzSettings, linkerSettings: fuzzLinking),
        .executableTarget(
            name: "FuzzPaperBook",
            dependencies: ["CFuzzerDriver", .product(name: "ARKCore", package: ark), .product(name: "ARKRisk", package: ark), .product(name: "Graveyard", package: ark)],
            swiftSettings: fuzzSettings, linkerSettings: fuzzLinking),
        .executableTarget(
            name: "FuzzAPIIntake",
            dependencies: ["CFuzzerDriver", .product(name: "ARKCore", package: ark), .product(name: "ARKIntake", package: ark)],
            swiftSettings: fuzzSettings, linkerSettings: fuzzLinking),
    ]
)
