// swift-tools-version:6.2
import PackageDescription

// One setting list for all of our own targets: Swift 6 mode (strict concurrency) and
// warnings as errors, so a warning never reaches main.
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .unsafeFlags(["-warnings-as-errors"]),
]

// The ark and ark-agent binaries are linked with the toolchain's lld, and, where the C
// library can load them (glibc 2.36, Debian 12), with packed relative relocations (DT_RELR):
// ark's 32,000 relative relocations shrink from 770 KB of tables to 9 KB, read by every
// process at start-up and counted in every agent's RSS (0.6-0.8 MB less per process,
// measured with ark bench). A binary runs on the host that built it (start_production.sh
// builds in place; a canary release is a copy of such a build), so the build host's C
// library decides.
#if os(Linux)
import Glibc

let packedRelocations: Bool = {
    var buffer = [CChar](repeating: 0, count: 64)
    guard confstr(Int32(_CS_GNU_LIBC_VERSION), &buffer, buffer.count) > 0 else { return false }
    // "glibc 2.36"
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let version = text.split(separator: " ").last?.split(separator: ".").compactMap { Int($0) } ?? []
    return version.count >= 2 && (version[0], version[1]) >= (2, 36)
}()
#else
let packedRelocations = false
#endif
let arkLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld"] + (packedRelocations ? ["-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"] : []),
                 .when(platforms: [.linux])),
]

let package = Package(
    name: "ARK",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ark", targets: ["ark"]),
        .executable(name: "ark-agent", targets: ["ark-agent"]),
        // The modules the Benchmarks package (its own package, so the main build stays light)
        // measures.
        .library(name: "ARKCore", targets: ["ARKCore"]),
        .library(name: "Graveyard", targets: ["Graveyard"]),
        .library(name: "ARKRisk", targets: ["ARKRisk"]),
        .library(name: "ARKBus", targets: ["ARKBus"]),
        .library(name: "ARKStoreWriter", targets: ["ARKStoreWriter"]),
        .library(name: "ARKState", targets: ["ARKState"]),
        .library(name: "ARKSLO", targets: ["ARKSLO"]),
        .library(name: "ARKBench", targets: ["ARKBench"]),
        // Its private redis-server (`PrivateRedis`).
        .library(name: "ARKProcess", targets: ["ARKProcess"]),
        // What the Fuzz package instruments.
        .library(name: "ARKIntake", targets: ["ARKIntake"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "ARKCore",
            dependencies: ["CCrypto"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Graveyard",
            dependencies: ["ARKCore"],
            swiftSettings: strictSettings
        ),
        // The risk engine's state, pure: the paper book (bounded arithmetic, marks at trusted
        // prices), trading states and throttles. Kenny and HRM keep it in Redis; the synthetic
        // loop, the bench, the CLI and the monitoring read it.
        .target(
            name: "ARKRisk",
            dependencies: ["ARKCore", "Graveyard", "ARKBus"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ARKBus",
            dependencies: [
                "ARKCore", "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        // The state store's schema and its writer of outcomes (Aletheia's), on SQLite's C API:
        // no GRDB and so no Foundation, which ark-agent must not load (README, Memory).
        .target(
            name: "ARKStoreWriter",
            dependencies: [
                "ARKCore",
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        // The state store's queries and its other writers, on GRDB.
        .target(
            name: "ARKState",
            dependencies: [
                "ARKCore", "ARKStoreWriter",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ARKAgents",
            dependencies: [
                "ARKCore", "Graveyard", "ARKRisk", "ARKBus", "ARKStoreWriter",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The SLO engine: the SLOs from the state store's rollups. Pure computation, apart from
        // the store's reads; without the HTTP stack, so the Benchmarks package can time it.
        .target(
            name: "ARKSLO",
            dependencies: ["ARKCore", "ARKState", "ARKStoreWriter"],
            swiftSettings: strictSettings
        ),
        // What every ARK process sets up: its log format, its metrics registry and the
        // publisher of that registry to Redis. No HTTP stack, so ark-agent can link it.
        .target(
            name: "ARKProcess",
            dependencies: [
                "ARKCore", "ARKBus",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // Metrics exposition, health, the metrics HTTP server and the operator console. Like
        // ARKAPI it carries an HTTP stack (Hummingbird/NIO); the stages never link it.
        .target(
            name: "ARKMonitoring",
            dependencies: [
                "ARKCore", "ARKAuth", "Graveyard", "ARKRisk", "ARKBus", "ARKState", "ARKStoreWriter", "ARKSLO", "ARKProcess", "ARKWatchdog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The console's page, compiled in: no CDN, no build step, nothing fetched at run time.
            resources: [.embedInCode("Console/index.html"), .embedInCode("Console/console.js"), .embedInCode("Console/console.css")],
            swiftSettings: strictSettings
        ),
        // The API server (:8000). Like ARKMonitoring it carries an HTTP stack; the stages
        // never link it. openapi.json is compiled in, so the binary serves the document it
        // was tested against.
        // What the API reads from clients (signal bodies, path and query), pure and without
        // the HTTP stack, so the Fuzz package instruments and fuzzes it alone.
        .target(
            name: "ARKIntake",
            dependencies: ["ARKCore"],
            swiftSettings: strictSettings
        ),
        // Bearer tokens, the API's and the console's actions', with vapor/jwt-kit (and so
        // swift-crypto): only `ark` links it, never ark-agent.
        .target(
            name: "ARKAuth",
            dependencies: ["ARKCore", .product(name: "JWTKit", package: "jwt-kit")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ARKAPI",
            dependencies: [
                "ARKCore", "ARKAuth", "ARKBus", "ARKState", "ARKStoreWriter", "ARKIntake", "ARKRisk",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("openapi.json")],
            swiftSettings: strictSettings
        ),
        // A plain HTTP/1.1 client on SwiftNIO (already built for the servers): the synthetic
        // loop's --api-url and the API tests, without an HTTP client library or TLS.
        .target(
            name: "ARKHTTPClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // `ark witness`: on another host, cosigns the audit log's heads it proved consistent.
        .target(
            name: "ARKWitness",
            dependencies: [
                "ARKCore", "ARKHTTPClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ARKWatchdog",
            dependencies: [
                "ARKCore", "ARKBus", "ARKState", "ARKStoreWriter",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ARKOperations",
            dependencies: ["ARKCore", "ARKAuth", "ARKBus", "ARKState", "ARKStoreWriter", "Graveyard", "ARKRisk", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ARKCanary",
            dependencies: [
                "ARKCore", "ARKBus", "ARKState", "ARKStoreWriter", "ARKOperations", "ARKProcess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ARKBench",
            dependencies: ["ARKCore", "ARKBus", "ARKState", "ARKProcess", "Graveyard", "ARKRisk"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ARKSynthetic",
            dependencies: [
                "ARKCore", "ARKBus", "ARKState", "Graveyard", "ARKRisk", "ARKHTTPClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ark",
            dependencies: [
                "ARKCore", "ARKAuth", "Graveyard", "ARKRisk", "ARKBus", "ARKState", "ARKStoreWriter", "ARKAgents", "ARKSynthetic", "ARKMonitoring", "ARKProcess", "ARKWatchdog", "ARKOperations", "ARKAPI", "ARKCanary", "ARKBench", "ARKSLO", "ARKWitness",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings,
            linkerSettings: arkLinkerSettings
        ),
        // One stage per process, linking only what an agent needs (no HTTP stack, no operator
        // commands): the pages of a smaller binary are most of an agent's RSS.
        .executableTarget(
            name: "ark-agent",
            dependencies: [
                "ARKCore", "ARKAgents", "ARKProcess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings,
            linkerSettings: arkLinkerSettings
        ),
        .target(
            name: "ARKTestSupport",
            dependencies: ["ARKCore", "ARKBus", "ARKStoreWriter", "ARKProcess"],
            path: "Tests/ARKTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(name: "ARKCoreTests", dependencies: ["ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "GraveyardTests", dependencies: ["Graveyard", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKRiskTests", dependencies: ["ARKRisk", "Graveyard", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKBusTests", dependencies: ["ARKBus", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKAgentsTests", dependencies: ["ARKAgents", "ARKRisk", "Graveyard", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKStoreWriterTests", dependencies: ["ARKStoreWriter", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKStateTests", dependencies: ["ARKState", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKWatchdogTests", dependencies: ["ARKWatchdog", "ARKBus", "ARKState", "ARKStoreWriter", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKOperationsTests", dependencies: ["ARKOperations", "ARKProcess", "ARKState", "ARKStoreWriter", "ARKCore", "ARKBus", .product(name: "Logging", package: "swift-log"), "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKSLOTests", dependencies: ["ARKSLO", "ARKState", "ARKStoreWriter", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKAuthTests", dependencies: ["ARKAuth", "ARKCore", "ARKTestSupport", .product(name: "JWTKit", package: "jwt-kit")], swiftSettings: strictSettings),
        .testTarget(name: "ARKIntakeTests", dependencies: ["ARKIntake", "ARKCore"], swiftSettings: strictSettings),
        .testTarget(name: "ARKMonitoringTests", dependencies: ["ARKMonitoring", "ARKSLO", "ARKState", "ARKStoreWriter", "ARKCore", "Graveyard", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKWitnessTests", dependencies: ["ARKWitness", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKSyntheticTests", dependencies: ["ARKSynthetic", "ARKState", "ARKStoreWriter", "Graveyard", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKProcessTests", dependencies: ["ARKProcess", "ARKCore", "ARKTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ARKCanaryTests", dependencies: ["ARKCanary", "ARKProcess", "ARKState", "ARKStoreWriter", "ARKCore"], swiftSettings: strictSettings),
        .testTarget(
            name: "ARKAPITests",
            dependencies: [
                "ARKAPI", "ARKAuth", "ARKBus", "ARKCore", "ARKTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["ARKCore", "ARKBus", "ARKState", "ARKStoreWriter", "ARKAgents", "ARKSynthetic", "Graveyard", "ARKAPI", "ARKAuth", "ARKHTTPClient", "ARKWitness", "ARKProcess", "ARKTestSupport",
                           .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
    ]
)
