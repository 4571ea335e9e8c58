import Foundation
import Hubble
import HubbleAPI
import HubbleServer
import SwiftProtobuf

/// Hubble's Observer API over a flow store: flows with the store's stream semantics and filters; status,
/// namespaces and this node.
public struct HubbleObserver: ObserverBackend {
    let flows: FlowStore
    let clusterName: String
    /// Namespaces known besides those in the buffer (the node's endpoints).
    let knownNamespaces: @Sendable () -> [String]
    public static let version = "1.19.0+membrane"

    public init(flows: FlowStore, clusterName: String = "default", knownNamespaces: @escaping @Sendable () -> [String] = { [] }) {
        self.flows = flows; self.clusterName = clusterName; self.knownNamespaces = knownNamespaces
    }

    /// The agent's observer: its flow store and its endpoints' namespaces.
    public init(agent: Agent) {
        self.init(flows: agent.flows, clusterName: agent.config.clusterName,
                  knownNamespaces: { [weak agent] in agent?.listEndpoints().map(\.namespace) ?? [] })
    }

    public func getFlows(_ request: Observer_GetFlowsRequest) -> AsyncThrowingStream<[[UInt8]], any Error> {
        do {
            return try flows.encodedResponseBatches(for: request)
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: ObserverError.invalidArgument("\(error)")) }
        }
    }

    public func serverStatus() async -> Observer_ServerStatusResponse {
        let s = flows.status
        var r = Observer_ServerStatusResponse()
        r.numFlows = s.numFlows
        r.maxFlows = s.maxFlows
        r.seenFlows = s.seenFlows
        r.uptimeNs = s.uptimeNs
        r.version = HubbleObserver.version
        r.flowsRate = s.uptimeNs > 0 ? Double(s.seenFlows) / (Double(s.uptimeNs) / 1e9) : 0
        return r
    }

    public func namespaces() async -> [Observer_Namespace] {
        Set(knownNamespaces()).union(flows.namespacesSeen).sorted().map { n in
            var ns = Observer_Namespace()
            ns.namespace = n
            ns.cluster = clusterName
            return ns
        }
    }

    /// This node (the agent-local server knows no other).
    public func nodes() async -> [Observer_Node] {
        let s = flows.status
        var n = Observer_Node()
        n.name = flows.nodeName
        n.version = HubbleObserver.version
        n.state = .nodeConnected
        n.uptimeNs = s.uptimeNs
        n.numFlows = s.numFlows
        n.maxFlows = s.maxFlows
        n.seenFlows = s.seenFlows
        return [n]
    }
}
