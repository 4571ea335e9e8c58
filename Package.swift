// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Membrane",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "membrane", targets: ["membrane"]),
        .executable(name: "membrane-bench", targets: ["membrane-bench"]),
        .executable(name: "membrane-agent", targets: ["membrane-agent"]),
        .library(name: "PolicyAPI", targets: ["PolicyAPI"]),
        .library(name: "Policy", targets: ["Policy"]),
        .library(name: "Cluster", targets: ["Cluster"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(name: "PolicyAPI", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "Policy", dependencies: ["PolicyAPI"]),
        .target(name: "Cluster", dependencies: ["PolicyAPI", "Policy"]),
        .systemLibrary(name: "CLibbpf", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),
        .target(name: "Datapath", dependencies: ["CLibbpf", "Policy", "PolicyAPI"]),
        .target(name: "AgentAPI"),
        .target(name: "Agent", dependencies: [
            "AgentAPI", "Cluster", "Datapath", "Policy", "PolicyAPI",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "membrane-agent", dependencies: [
            "Agent", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        /// Deterministic randomness shared by the property tests and the benchmarks.
        .target(name: "MembraneTestSupport"),
        .executableTarget(name: "membrane", dependencies: [
            "PolicyAPI", "Policy", "Cluster", "AgentAPI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "membrane-bench", dependencies: ["PolicyAPI", "Policy", "Cluster", "Datapath", "MembraneTestSupport"]),
        .testTarget(name: "PolicyAPITests", dependencies: ["PolicyAPI"], exclude: ["Invalid", "Valid"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "PolicyAPI", "MembraneTestSupport"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "Policy", "PolicyAPI", "MembraneTestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["membrane"]),
        .testTarget(name: "AgentTests", dependencies: ["membrane", "membrane-agent", "MembraneTestSupport"]),
        /// The traffic tests also run the `membrane` CLI (`policy trace`) on the manifests they enforce.
        .testTarget(name: "DatapathTests", dependencies: ["Datapath", "Policy", "PolicyAPI", "Cluster", "MembraneTestSupport", "membrane"]),
        .testTarget(name: "ScenarioTests", dependencies: ["Cluster", "Policy", "PolicyAPI", .product(name: "Yams", package: "Yams")],
                    exclude: ["Scenarios"]),
    ]
)
