// swift-tools-version: 6.1
import PackageDescription

// AVX2 + FMA + F16C kernels (the integer dot products llama.cpp uses). Disable the trait
// (`--disable-default-traits`) to build the portable SIMD path for other CPUs.
let simdFlags: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c"], .when(traits: ["AVX2"])),
    .unsafeFlags(["-enforce-exclusivity=unchecked"]),
]

let package = Package(
    name: "braid",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Braid", targets: ["Braid"]),
        .executable(name: "braid", targets: ["BraidCLI"]),
        // libFuzzer targets (scripts/fuzz.sh builds them with -sanitize=fuzzer,address -DFUZZING);
        // an ordinary build replays inputs through them. The server's is apart: it links the HTTP stack.
        .executable(name: "braid-fuzz", targets: ["BraidFuzz"]),
        .executable(name: "braid-fuzz-server", targets: ["BraidServerFuzz"]),
    ],
    traits: [
        .trait(name: "AVX2", description: "x86-64 AVX2/FMA/F16C kernels"),
        .default(enabledTraits: ["AVX2"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkg-config"])]
        ),
        .systemLibrary(name: "CPrefetch", path: "Sources/CPrefetch"),
        .target(
            name: "Braid",
            dependencies: ["COpenBLAS", "CPrefetch", .product(name: "Yams", package: "Yams")],
            swiftSettings: simdFlags
        ),
        // HTTP lives here, so the Braid library stays free of it.
        .target(
            name: "BraidServer",
            dependencies: [
                "Braid",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("Web/index.html")],
            swiftSettings: simdFlags
        ),
        .executableTarget(
            name: "BraidCLI",
            dependencies: ["Braid", "BraidServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: simdFlags
        ),
        .target(name: "BraidFuzzKit", dependencies: ["Braid"], swiftSettings: simdFlags),
        .executableTarget(name: "BraidFuzz", dependencies: ["Braid", "BraidFuzzKit"], swiftSettings: simdFlags),
        .executableTarget(name: "BraidServerFuzz", dependencies: ["Braid", "BraidFuzzKit", "BraidServer"], swiftSettings: simdFlags),
        .testTarget(
            name: "BraidTests",
            dependencies: ["Braid", "BraidServer"],
            exclude: ["Fixtures"],
            swiftSettings: simdFlags
        ),
        .testTarget(
            name: "BraidIntegrationTests",
            dependencies: ["Braid"],
            exclude: ["Fixtures"],
            swiftSettings: simdFlags
        ),
    ]
)
