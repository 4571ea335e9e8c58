import Testing
@testable import Cluster
@testable import Policy
import PolicyAPI

@Suite struct IPCacheTests {
    @Test func podsAndNodes() {
        let m = model()
        let view1 = IPCache(cluster: m, node: "node1")
        #expect(view1.lookup(address("10.0.0.10")).identity == pod(m, "web", "client").identity.id)
        #expect(view1.lookup(address("10.0.0.10")).source == "endpoint")
        #expect(view1.lookup(address("10.0.0.20")).identity == pod(m, "web", "server").identity.id, "remote pods too")
        #expect(view1.lookup(address("10.1.0.1")).identity == ReservedIdentity.host.rawValue)
        #expect(view1.lookup(address("10.1.0.1")).source == "host")
        #expect(view1.lookup(address("10.1.0.3")).identity == ReservedIdentity.remoteNode.rawValue)
        // node2 runs the apiserver: identity 7 from elsewhere, host from itself.
        #expect(view1.lookup(address("10.1.0.2")).identity == ReservedIdentity.kubeAPIServer.rawValue)
        let view2 = IPCache(cluster: m, node: "node2")
        #expect(view2.lookup(address("10.1.0.2")).identity == ReservedIdentity.host.rawValue)
        #expect(view2.lookup(address("10.1.0.1")).identity == ReservedIdentity.remoteNode.rawValue)
    }

    @Test func cidrLongestPrefixAndWorld() {
        let m = model()
        let v = IPCache(cluster: m, node: "node1")
        let narrow = m.engine.cidrIdentities[prefix("203.0.113.0/24")]
        let wide = m.engine.cidrIdentities[prefix("203.0.0.0/16")]
        #expect(narrow != nil && wide != nil && narrow != wide)
        #expect(v.lookup(address("203.0.113.7")).identity == narrow)
        #expect(v.lookup(address("203.0.113.7")).prefix == prefix("203.0.113.0/24"))
        #expect(v.lookup(address("203.0.5.5")).identity == wide)
        #expect(v.lookup(address("8.8.8.8")).identity == ReservedIdentity.world.rawValue)
        #expect(v.lookup(address("8.8.8.8")).source == "world")
        #expect(v.lookup(address("2001:db8::1")).identity == ReservedIdentity.world.rawValue, "single-stack: world for both families")
    }

    @Test func learnedAddresses() {
        let v = IPCache(cluster: model(), node: "node1", learned: [address("203.0.113.9"): 16_777_999, address("10.0.0.10"): 16_777_998])
        #expect(v.lookup(address("203.0.113.9")).identity == 16_777_999, "learned beats CIDR")
        #expect(v.lookup(address("203.0.113.9")).source == "fqdn")
        #expect(v.lookup(address("10.0.0.10")).source == "endpoint", "endpoints beat learned")
    }

    @Test func externalAPIServer() {
        let yaml = clusterYAML.replacingOccurrences(of: "addresses: [{ip: 10.1.0.2}]", with: "addresses: [{ip: 192.0.2.10}]")
        let m = model(yaml)
        let id = m.externalAPIServerIdentity
        #expect(id != nil)
        if let id {
            #expect(id >= IdentityRange.minimumLocal)
            let labels = m.engine.identity(id)?.labels
            #expect(labels?.has(Label(source: "reserved", key: "kube-apiserver")) == true)
            #expect(labels?.has(Label(source: "reserved", key: "world")) == true)
            #expect(IPCache(cluster: m, node: "node1").lookup(address("192.0.2.10")).identity == id)
            #expect(IPCache(cluster: m, node: "node1").lookup(address("192.0.2.10")).source == "kube-apiserver")
        }
        #expect(IPCache(cluster: m, node: "node1").lookup(address("10.1.0.2")).identity == ReservedIdentity.remoteNode.rawValue)
    }

    @Test func dualStackWorld() {
        let yaml = clusterYAML.replacingOccurrences(of: "status: {podIP: 10.0.0.30}", with: "status: {podIPs: [{ip: 10.0.0.30}, {ip: \"fd00::30\"}]}")
        let m = model(yaml)
        #expect(m.engine.settings.dualStack)
        let v = IPCache(cluster: m, node: "node1")
        #expect(v.lookup(address("8.8.8.8")).identity == ReservedIdentity.worldIPv4.rawValue)
        #expect(v.lookup(address("2001:db8::1")).identity == ReservedIdentity.worldIPv6.rawValue)
    }
}
