import MembraneTestSupport
import Foundation
import Testing
@testable import Cluster
@testable import Policy
import PolicyAPI

@Suite struct ClusterModelTests {
    @Test func podIdentityLabels() {
        let m = model()
        let client = pod(m, "web", "client")
        let labels = Set(client.identity.labels.labels.map(\.description))
        for l in ["k8s:app=client", "k8s:io.kubernetes.pod.namespace=web", "k8s:io.cilium.k8s.namespace.labels.team=frontend",
                  "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=web",
                  "k8s:io.cilium.k8s.policy.serviceaccount=client-sa", "k8s:io.cilium.k8s.policy.cluster=default"] {
            #expect(labels.contains(l), "missing \(l) in \(labels.sorted())")
        }
        #expect(!labels.contains { $0.contains("pod-template-hash") }, "pod-template-hash is not identity-relevant")
        // Before the filter it is there.
        let raw = m.podLabels(m.pods[ResourceRef(kind: .pod, namespace: "web", name: "client")]!)
        #expect(raw.has(Label(source: "k8s", key: "pod-template-hash", value: "abc123")))
        // Default service account.
        #expect(pod(m, "web", "other").identity.labels.has(Label(source: "k8s", key: WellKnownLabel.serviceAccount, value: "default")))
    }

    @Test func podsDifferingOnlyInFilteredLabelsShareAnIdentity() {
        let m = model()
        #expect(pod(m, "web", "client").identity.id == pod(m, "web", "client-2").identity.id)
        #expect(pod(m, "web", "client").identity.id != pod(m, "web", "other").identity.id)
        #expect(pod(m, "web", "client").id != pod(m, "web", "client-2").id)
        let id = pod(m, "web", "client").identity.id
        #expect(id >= IdentityRange.minimumCluster && id <= IdentityRange.maximumCluster)
    }

    @Test func clusterNameLabel() {
        var m = ClusterModel(manifests: decodeOK(clusterYAML))
        m.clusterName = "c9"
        let labels = m.podLabels(m.pods[ResourceRef(kind: .pod, namespace: "web", name: "client")]!)
        #expect(labels.has(Label(source: "k8s", key: WellKnownLabel.cluster, value: "c9")))
    }

    @Test func hostNetworkPodIsTheHost() {
        let m = model()
        let agent = pod(m, "web", "agent")
        #expect(agent.isHost)
        #expect(agent.nodeName == "node2")
        #expect(agent.identity.id == ReservedIdentity.host.rawValue)
        #expect(agent.id == m.hostEndpointByNode["node2"])
        #expect(m.endpointByPod[ResourceRef(kind: .pod, namespace: "web", name: "agent")] == nil)
        #expect(m.pod(owning: address("10.1.0.2")) == nil, "a hostNetwork pod does not own its IP")
        #expect(agent.identity.labels.has(Label(source: "reserved", key: "host")))
        #expect(agent.identity.labels.has(Label(source: "k8s", key: "kubernetes.io/hostname", value: "node2")))
    }

    @Test func endpointsAreComplete() {
        let m = model()
        #expect(m.hostEndpointByNode.count == 3)
        #expect(m.endpointByPod.count == 5)
        #expect(m.endpoints.count == 8)
        #expect(m.endpoints.keys.allSatisfy { $0 >= 1 && $0 <= 4095 })
        for e in m.endpoints.values { #expect(m.engine.mapState(e.id) != nil, "\(e.displayName)") }
        #expect(pod(m, "web", "server").namedPorts == [NamedPort(name: "http", proto: IPProtocol.tcp, port: 8080)])
    }

    @Test func deterministicEndpointIDsAndIdentities() {
        let docs = (clusterYAML + "\n---\n" + policyYAML).components(separatedBy: "\n---\n")
        let a = model()
        var rng = SplitMix64(seed: 3)
        for _ in 0..<3 {
            let b = model(docs.shuffled(using: &rng).joined(separator: "\n---\n"))
            for (ref, id) in a.endpointByPod {
                #expect(b.endpointByPod[ref] == id, "\(ref)")
                #expect(b.endpoints[id]?.identity == a.endpoints[id]?.identity)
            }
            #expect(b.hostEndpointByNode == a.hostEndpointByNode)
            #expect(b.engine.cidrIdentities == a.engine.cidrIdentities)
        }
        #expect(ClusterModel.endpointID(for: "web/client", taken: []) == ClusterModel.endpointID(for: "web/client", taken: []))
        let first = ClusterModel.endpointID(for: "x", taken: [])
        #expect(ClusterModel.endpointID(for: "x", taken: [first]) != first)
    }

    @Test func lookups() {
        let m = model()
        #expect(m.node(owning: address("10.1.0.3")) == "node3")
        #expect(m.pod(owning: address("10.0.0.20")) == ResourceRef(kind: .pod, namespace: "web", name: "server"))
        #expect(m.service(withClusterIP: address("10.96.0.20")) == ResourceRef(kind: .service, namespace: "web", name: "server-svc"))
        #expect(m.apiServerAddresses == [address("10.1.0.2")])
        #expect(m.externalAPIServerIdentity == nil, "the apiserver runs on a node")
    }
}


func address(_ s: String) -> IPAddress { IPAddress(s)! }
func prefix(_ s: String) -> IPPrefix { IPPrefix(s)! }
