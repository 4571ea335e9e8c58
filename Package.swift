// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Membrane",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "membrane", targets: ["membrane"]),
        .executable(name: "membrane-bench", targets: ["membrane-bench"]),
        .executable(name: "membrane-agent", targets: ["membrane-agent"]),
        .executable(name: "membrane-cni", targets: ["membrane-cni"]),
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
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    ],
    targets: [
        .target(name: "PolicyAPI", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "Policy", dependencies: ["PolicyAPI"]),
        .target(name: "Cluster", dependencies: ["PolicyAPI", "Policy"]),
        .systemLibrary(name: "CLibbpf", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),
        .target(name: "Datapath", dependencies: ["CLibbpf", "Policy", "PolicyAPI"]),
        .target(name: "AgentAPI"),
        /// Flows: the store (Hubble's ring buffer and stream semantics), filters, and rendering.
        .target(name: "Hubble", dependencies: ["HubbleAPI", "PolicyAPI", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "Agent", dependencies: [
            "AgentAPI", "Cluster", "Datapath", "Policy", "PolicyAPI", "Hubble", "HubbleAPI", "HubbleServer",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "membrane-agent", dependencies: [
            "Agent", "HubbleServer", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        /// The CNI plugin's protocol (environment, configuration, results, errors) and commands, over the agent's API.
        .target(name: "CNI", dependencies: ["AgentAPI"]),
        .executableTarget(name: "membrane-cni", dependencies: ["CNI"]),
        /// Deterministic randomness shared by the property tests and the benchmarks.
        .target(name: "MembraneTestSupport"),
        .executableTarget(name: "membrane", dependencies: [
            "PolicyAPI", "Policy", "Cluster", "AgentAPI", "Hubble", "HubbleAPI", "HubbleClient",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "membrane-bench", dependencies: [
            "PolicyAPI", "Policy", "Cluster", "Datapath", "MembraneTestSupport", "Agent", "Hubble", "HubbleAPI", "HubbleClient",
            "HubbleServer", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        ]),
        .testTarget(name: "PolicyAPITests", dependencies: ["PolicyAPI"], exclude: ["Invalid", "Valid"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "PolicyAPI", "MembraneTestSupport"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "Policy", "PolicyAPI", "MembraneTestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["membrane", "MembraneTestSupport"]),
        .testTarget(name: "AgentTests", dependencies: ["membrane", "membrane-agent", "MembraneTestSupport", "Datapath"]),
        .testTarget(name: "CNITests", dependencies: ["CNI", "membrane-cni", "membrane", "membrane-agent", "MembraneTestSupport"]),
        /// The traffic tests also run the `membrane` CLI (`policy trace`) on the manifests they enforce.
        .testTarget(name: "DatapathTests", dependencies: ["Datapath", "Policy", "PolicyAPI", "Cluster", "MembraneTestSupport", "membrane"]),
        /// Swift generated from proto/ by scripts/gen-proto.sh (Hubble wire contract); committed, never hand-edited.
        /// Exclusivity is checked statically only: the generated accessors otherwise spend a third of the flow
        /// pipeline's time in dynamic access bookkeeping (perf, membrane-bench observe).
        .target(name: "HubbleAPI", dependencies: [
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCCore", package: "grpc-swift-2"), .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        ], swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
        /// Hubble-compatible gRPC server (observer.Observer + grpc.health.v1.Health) over h2c on UDS and TCP.
        .target(name: "HubbleServer", dependencies: [
            "HubbleAPI",
            .product(name: "GRPCCore", package: "grpc-swift-2"), .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        /// Client side of the same contract, for `membrane observe`.
        .target(name: "HubbleClient", dependencies: [
            "HubbleAPI",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        ]),
        /// Stored events → flows and → response bytes, compared (no privileges needed).
        .testTarget(name: "FlowEncodingTests", dependencies: [
            "Agent", "Datapath", "Hubble", "HubbleAPI", "Policy", "PolicyAPI", "MembraneTestSupport",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        .testTarget(name: "HubbleTests", dependencies: ["Hubble", "HubbleAPI", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "HubbleServerTests", dependencies: [
            "HubbleAPI", "HubbleServer", "HubbleClient",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "ScenarioTests", dependencies: ["Cluster", "Policy", "PolicyAPI", .product(name: "Yams", package: "Yams")],
                    exclude: ["Scenarios"]),
    ]
)
