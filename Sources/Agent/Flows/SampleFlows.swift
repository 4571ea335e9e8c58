import Datapath
import Foundation
import Hubble
import HubbleAPI
import Policy
import PolicyAPI

/// Stored flows as a node with labelled endpoints produces them, without an agent or a kernel: what
/// `membrane-bench observe` fills a store with to measure GetFlows and the cost of one flow.
///
/// 50 clients in `default` connect to a backend in `prod`; every other connection is allowed by
/// `prod/allow-client`, the rest are default-denied (a policy-verdict and a drop flow each).
public enum SampleFlows {
    public static func batches(flows: Int, batchSize: Int = 256) -> [any FlowBatch] {
        var c = FlowContext()
        c.nodeName = "bench"
        func endpoint(_ id: UInt16, _ ns: String, _ pod: String, _ app: String, _ identity: NumericIdentity) {
            var ep = Flow_Endpoint()
            ep.id = UInt32(id); ep.identity = identity; ep.namespace = ns; ep.podName = pod
            ep.labels = ["k8s:app=\(app)", "k8s:io.cilium.k8s.policy.cluster=default", "k8s:io.kubernetes.pod.namespace=\(ns)"]
            c.endpoints[id] = .init(endpoint: ep, interfaceName: "lxc\(id)")
            c.endpointsByIP[address(id)] = id
        }
        endpoint(1, "prod", "backend-0", "backend", 400)
        for i in 0..<50 { endpoint(UInt16(10 + i), "default", "client-\(i)", "client", 300) }
        let policy = ResourceRef(kind: .ciliumNetworkPolicy, namespace: "prod", name: "allow-client")
        let origin = c.origins.intern(PolicyOrigin(ref: policy, rulePath: "spec.ingress[0]", uid: "6f1c", revision: 3))
        c.defaultDenyBy[1] = [.ingress: [policy], .egress: []]
        let snapshot = FlowContextSnapshot(c)
        let cookies: [[OriginID]] = [[], [origin]]

        var ids = FlowIDs()
        var batches: [any FlowBatch] = [], events: [DatapathEvent] = [], made = 0
        var connection = 0
        while made < flows {
            let allowed = connection % 2 == 0
            let client = UInt16(10 + connection % 50)
            let e = DatapathEvent(monotonicNs: UInt64(connection) * 10_000, kind: .policyVerdict, verdict: allowed ? .forwarded : .dropped,
                                  dropReason: allowed ? 0 : 133, endpointID: 1, localIdentity: 400, peerIdentity: 300,
                                  direction: .ingress, proto: 6, tcpFlags: 0x02, l4PrefixLength: allowed ? 24 : nil, matchedPeer: allowed,
                                  sourcePort: UInt16(30000 + connection % 30000), destinationPort: 8080,
                                  source: address(client), destination: address(1), cookie: allowed ? 1 : 0, ifindex: 2)
            events.append(e)
            made += allowed ? 1 : 2
            connection += 1
            if events.count == batchSize || made >= flows {
                batches.append(EventFlows(events, snapshot: snapshot, cookies: cookies,
                                          wallClockOffsetNs: Int64(Date().timeIntervalSince1970 * 1e9), ids: &ids))
                events.removeAll(keepingCapacity: true)
            }
        }
        return batches
    }

    private static func address(_ id: UInt16) -> IPAddress { IPAddress(ipv4: 0x0a_c8_00_00 | UInt32(id)) }
}
