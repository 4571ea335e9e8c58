#if canImport(Glibc)
import Glibc
#endif
import HubbleAPI
import HubbleClient
import HubbleServer
import Synchronization
import Testing

/// End-to-end over real sockets: HubbleClient → h2c → HubbleServer → TestBackend.
@Suite("Hubble server RPCs")
struct ServerRPCTests {
    @Test("GetFlows streams every flow in order and ends", arguments: [Listener.unix, .tcp])
    func getFlowsInOrder(listener: Listener) async throws {
        let backend = TestBackend(flowCount: 5)
        let harness = try await ServerHarness.start(backend: backend)
        let client = try HubbleClient(server: listener.target(harness))

        var request = Observer_GetFlowsRequest()
        request.number = 20
        let received = Mutex<[Observer_GetFlowsResponse]>([])
        try await client.getFlows(request) { response in received.withLock { $0.append(response) } }

        #expect(received.withLock { $0 } == backend.flows)
        #expect(received.withLock { $0.map(\.flow.uuid) } == (0..<5).map { "flow-\($0)" })
        #expect(backend.receivedRequests.map(\.number) == [20])
        try await harness.stop()
    }

    @Test("A follow stream cancelled by the client terminates the backend stream")
    func followCancelled() async throws {
        let backend = TestBackend(flowCount: 3)
        let harness = try await ServerHarness.start(backend: backend)
        let client = try HubbleClient(server: harness.tcpTarget)

        var request = Observer_GetFlowsRequest()
        request.follow = true
        let count = Mutex(0)
        let follow = Task {
            try await client.getFlows(request) { _ in count.withLock { $0 += 1 } }
        }
        try await eventually("all backlog flows received") { count.withLock { $0 } == 3 }
        #expect(backend.terminatedStreams == 0, "follow stream must stay open")

        follow.cancel()
        _ = await follow.result
        try await eventually("backend stream terminated") { backend.terminatedStreams == 1 }
        try await harness.stop()
    }

    @Test("Graceful shutdown ends an open follow stream with OK")
    func shutdownEndsFollow() async throws {
        let backend = TestBackend(flowCount: 2)
        let harness = try await ServerHarness.start(backend: backend)
        let client = try HubbleClient(server: harness.unixTarget)

        var request = Observer_GetFlowsRequest()
        request.follow = true
        let count = Mutex(0)
        let follow = Task { try await client.getFlows(request) { _ in count.withLock { $0 += 1 } } }
        try await eventually("backlog received") { count.withLock { $0 } == 2 }

        try await harness.stop()
        try await follow.value  // returns normally: status OK
        #expect(backend.terminatedStreams == 1)
    }

    @Test("Backend InvalidArgument surfaces as gRPC InvalidArgument")
    func backendInvalidArgument() async throws {
        let harness = try await ServerHarness.start(backend: TestBackend())
        let client = try HubbleClient(server: harness.unixTarget)
        var request = Observer_GetFlowsRequest()
        request.number = TestBackend.rejectedNumber

        let error = await #expect(throws: HubbleClientError.self) {
            try await client.getFlows(request) { _ in }
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == "number 7777 is not allowed")
        try await harness.stop()
    }

    @Test("first together with follow is rejected before reaching the backend")
    func firstWithFollow() async throws {
        let backend = TestBackend()
        let harness = try await ServerHarness.start(backend: backend)
        let client = try HubbleClient(server: harness.tcpTarget)
        var request = Observer_GetFlowsRequest()
        request.first = true
        request.follow = true
        request.number = 2

        let error = await #expect(throws: HubbleClientError.self) {
            try await client.getFlows(request) { _ in }
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == "first cannot be specified with follow")
        #expect(backend.receivedRequests.isEmpty)
        try await harness.stop()
    }

    @Test("ServerStatus, GetNamespaces and GetNodes return the backend's answers", arguments: [Listener.unix, .tcp])
    func unaryRPCs(listener: Listener) async throws {
        let backend = TestBackend(flowCount: 4)
        let harness = try await ServerHarness.start(backend: backend)
        let client = try HubbleClient(server: listener.target(harness))

        let status = try await client.serverStatus()
        #expect(status == (await backend.serverStatus()))
        #expect(status.numFlows == 4)
        #expect(!status.hasNumConnectedNodes)

        let namespaces = try await client.namespaces()
        #expect(namespaces.map(\.namespace) == ["default", "prod"])

        let nodes = try await client.nodes()
        #expect(nodes.map(\.name) == ["test-node"])
        #expect(nodes.first?.state == .nodeConnected)
        try await harness.stop()
    }

    @Test("Health/Check answers SERVING for the server and hubble.server.Observer", arguments: [Listener.unix, .tcp])
    func healthServing(listener: Listener) async throws {
        let harness = try await ServerHarness.start(backend: TestBackend())
        let client = try HubbleClient(server: listener.target(harness))
        #expect(try await client.healthCheck() == .serving)
        #expect(try await client.healthCheck(service: "") == .serving)

        let error = await #expect(throws: HubbleClientError.self) {
            _ = try await client.healthCheck(service: "no.such.Service")
        }
        #expect(error?.code == .notFound)
        try await harness.stop()
    }

    @Test("A refused connection is Unavailable")
    func refused() async throws {
        let path = try ServerHarness.makeTemporaryDirectory() + "/nobody.sock"
        let client = try HubbleClient(server: "unix://\(path)", requestTimeout: .seconds(5))
        let error = await #expect(throws: HubbleClientError.self) { _ = try await client.serverStatus() }
        #expect(error?.code == .unavailable)
    }

    @Test("A stale socket file is replaced; a regular file is refused")
    func staleSocket() async throws {
        let first = try await ServerHarness.start(backend: TestBackend())
        try await first.stop()  // leaves the socket file behind, like a crashed agent

        let second = HubbleServer(backend: TestBackend(), unixSocketPath: first.socketPath, tcpAddress: nil)
        let run = Task { try await second.run() }
        _ = try await second.unixSocketListening()
        #expect(try await HubbleClient(server: "unix:\(first.socketPath)").healthCheck() == .serving)
        second.beginGracefulShutdown()
        try await run.value

        let regular = try ServerHarness.makeTemporaryDirectory() + "/not-a-socket"
        #expect(creat(regular, 0o644) >= 0)
        let third = HubbleServer(backend: TestBackend(), unixSocketPath: regular, tcpAddress: nil)
        await #expect(throws: HubbleServerError.self) { try await third.run() }
    }

    @Test("Cancelling run() stops the server")
    func cancelRun() async throws {
        let harness = try await ServerHarness.start(backend: TestBackend())
        harness.runTask.cancel()
        _ = await harness.runTask.result
        let client = try HubbleClient(server: harness.tcpTarget, requestTimeout: .seconds(5))
        await #expect(throws: HubbleClientError.self) { _ = try await client.healthCheck() }
    }
}

enum Listener: CustomTestStringConvertible, Sendable {
    case unix, tcp

    func target(_ harness: ServerHarness) -> String {
        switch self {
        case .unix: harness.unixTarget
        case .tcp: harness.tcpTarget
        }
    }

    var testDescription: String { self == .unix ? "unix socket" : "TCP" }
}
