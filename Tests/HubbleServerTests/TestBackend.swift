import HubbleAPI
import HubbleServer
import SwiftProtobuf
import Synchronization

/// A backend with a fixed list of flows, recording when follow streams end so tests can
/// check that client cancellation and shutdown reach the backend.
final class TestBackend: ObserverBackend {
    /// Requests with this `number` fail with InvalidArgument from the backend.
    static let rejectedNumber: UInt64 = 7777

    let flows: [Observer_GetFlowsResponse]
    private let terminations = Mutex(0)
    private let requests = Mutex<[Observer_GetFlowsRequest]>([])

    init(flowCount: Int = 5) {
        flows = (0..<flowCount).map(Fixtures.response(index:))
    }

    /// How many GetFlows streams have ended (finished, failed or been cancelled).
    var terminatedStreams: Int { terminations.withLock { $0 } }
    var receivedRequests: [Observer_GetFlowsRequest] { requests.withLock { $0 } }

    func getFlows(_ request: Observer_GetFlowsRequest) -> AsyncThrowingStream<[[UInt8]], any Error> {
        requests.withLock { $0.append(request) }
        let (stream, continuation) = AsyncThrowingStream<[[UInt8]], any Error>.makeStream()
        continuation.onTermination = { _ in self.terminations.withLock { $0 += 1 } }
        if request.number == Self.rejectedNumber {
            continuation.finish(throwing: ObserverError.invalidArgument("number \(request.number) is not allowed"))
            return stream
        }
        for flow in flows { continuation.yield([try! flow.serializedBytes()]) }
        // Follow streams stay open until the consumer goes away, like a live ring buffer.
        if !request.follow { continuation.finish() }
        return stream
    }

    func serverStatus() async -> Observer_ServerStatusResponse {
        var status = Observer_ServerStatusResponse()
        status.numFlows = UInt64(flows.count)
        status.maxFlows = 4095
        status.seenFlows = 1234
        status.uptimeNs = 3_600_000_000_000
        status.version = "membrane-test"
        status.flowsRate = 0.5
        return status
    }

    func namespaces() async -> [Observer_Namespace] {
        ["default", "prod"].map { name in
            var namespace = Observer_Namespace()
            namespace.namespace = name
            return namespace
        }
    }

    func nodes() async -> [Observer_Node] {
        var node = Observer_Node()
        node.name = "test-node"
        node.state = .nodeConnected
        node.numFlows = UInt64(flows.count)
        node.maxFlows = 4095
        return [node]
    }
}

enum Fixtures {
    /// A small but realistic allowed TCP flow, numbered so order can be checked.
    static func response(index: Int) -> Observer_GetFlowsResponse {
        var flow = Flow_Flow()
        flow.time = Google_Protobuf_Timestamp(seconds: 1_736_935_200 + Int64(index), nanos: 0)
        flow.uuid = "flow-\(index)"
        flow.verdict = .forwarded
        flow.ip.source = "10.0.1.10"
        flow.ip.destination = "10.0.2.20"
        flow.ip.ipVersion = .ipv4
        flow.l4.tcp.sourcePort = UInt32(40000 + index)
        flow.l4.tcp.destinationPort = 8080
        flow.l4.tcp.flags.syn = true
        flow.nodeName = "test-node"
        flow.summary = "TCP Flags: SYN"

        var response = Observer_GetFlowsResponse()
        response.flow = flow
        response.nodeName = flow.nodeName
        response.time = flow.time
        return response
    }
}
