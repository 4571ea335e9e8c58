import Foundation
import Testing
@testable import PolicyAPI

/// Every YAML example of the two seed documents (copied into `Valid/`) decodes, into the values written.
@Suite struct SeedExampleTests {
    func load(_ file: String) -> ManifestSet {
        ManifestDecoder.load(paths: [testsDirectory.appendingPathComponent("Valid").appendingPathComponent(file).path])
    }

    func onlyPolicy(_ file: String) throws -> CiliumPolicy {
        let set = load(file)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let ps = ciliumPolicies(set)
        try #require(ps.count == 1)
        return ps[0]
    }

    @Test func allowFrontendToBackend() throws {
        let p = try onlyPolicy("seed000-01.yaml")
        #expect(p.ref == ResourceRef(kind: .ciliumNetworkPolicy, namespace: "production", name: "allow-frontend-to-backend"))
        let spec = try #require(p.specs.first)
        #expect(spec.path == "spec")
        #expect(spec.endpointSelector == LabelSelector(matchLabels: ["app": "backend"]))
        #expect(spec.ingress == [PolicyRule(endpoints: [LabelSelector(matchLabels: ["app": "frontend"])],
                                            toPorts: [PortRule(ports: [PortProtocol(port: .number(8080), protocol: .tcp)])])])
        #expect(spec.egress == nil && spec.ingressDeny == nil && spec.egressDeny == nil)
    }

    @Test func httpL7() throws {
        let p = try onlyPolicy("seed000-02.yaml")
        let rule = try #require(p.specs.first?.ingress?.first)
        #expect(rule.endpoints == [LabelSelector(matchLabels: ["role": "api-consumer"])])
        #expect(rule.toPorts == [PortRule(ports: [PortProtocol(port: .number(80), protocol: .tcp)],
                                          rules: .http([HTTPRule(method: "GET", path: "/api/.*"),
                                                        HTTPRule(method: "POST", path: "/api/submit", headers: ["X-App-Token: .*"])]))])
    }

    @Test func dnsEgress() throws {
        let p = try onlyPolicy("seed000-03.yaml")
        let egress = try #require(p.specs.first?.egress)
        #expect(egress.count == 2)
        #expect(egress[0].endpoints == [LabelSelector(matchLabels: ["k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"])])
        #expect(egress[0].toPorts == [PortRule(ports: [PortProtocol(port: .number(53), protocol: .any)],
                                               rules: .dns([FQDNSelector(matchPattern: "*.amazonaws.com"), FQDNSelector(matchName: "api.example.com")]))])
        #expect(egress[1].fqdns == [FQDNSelector(matchPattern: "*.amazonaws.com"), FQDNSelector(matchName: "api.example.com")])
        #expect(egress[1].toPorts == [PortRule(ports: [PortProtocol(port: .number(443), protocol: .tcp)])])
    }

    @Test func denyRules() throws {
        let p = try onlyPolicy("seed000-04.yaml")
        let spec = try #require(p.specs.first)
        #expect(spec.endpointSelector == LabelSelector(matchLabels: ["app": "database", "env": "production"]))
        #expect(spec.ingress == [PolicyRule(entities: [.cluster], toPorts: [PortRule(ports: [PortProtocol(port: .number(5432), protocol: .tcp)])])])
        #expect(spec.ingressDeny == [PolicyRule(endpoints: [LabelSelector(matchLabels: ["k8s:io.kubernetes.pod.namespace": "development"])])])
    }

    @Test func kafka() throws {
        let p = try onlyPolicy("seed000-05.yaml")
        let ingress = try #require(p.specs.first?.ingress)
        #expect(ingress.count == 2)
        #expect(ingress[0].toPorts?.first?.rules == .kafka([KafkaRule(apiKey: "produce", topic: "payments")]))
        #expect(ingress[1].toPorts?.first?.rules == .kafka([KafkaRule(apiKey: "fetch", topic: "payments"),
                                                            KafkaRule(apiKey: "fetch", topic: "notifications")]))
    }

    @Test func clusterwideTwoDocuments() throws {
        let set = load("seed000-06.yaml")
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let ps = ciliumPolicies(set)
        try #require(ps.count == 2)
        #expect(ps[0].ref == ResourceRef(kind: .ciliumClusterwideNetworkPolicy, namespace: nil, name: "baseline-deny-world-egress"))
        #expect(ps[0].specs[0].endpointSelector == LabelSelector())
        #expect(ps[0].specs[0].egressDeny == [PolicyRule(entities: [.world])])
        #expect(ps[1].specs[0].egress == [PolicyRule(entities: [.kubeAPIServer], toPorts: [PortRule(ports: [PortProtocol(port: .number(443), protocol: .tcp)])])])
        #expect(set.resources.map(\.location.document) == [0, 1])
    }

    @Test func schemaReferenceAcceptsEveryListedField() throws {
        let p = try onlyPolicy("seed000-07-schema-reference.yaml")
        let spec = try #require(p.specs.first)
        #expect(spec.ingress?.first?.endpoints == [])
        #expect(spec.ingress?.first?.toPorts == [PortRule(ports: [], rules: nil)])
        #expect(spec.egress?.first?.fqdns == [])
        #expect(spec.egressDeny == [PolicyRule(entities: [])])
    }

    @Test func interceptAllDNS() throws {
        let p = try onlyPolicy("seed004-01-intercept-all-dns.yaml")
        let spec = try #require(p.specs.first)
        #expect(p.ref.namespace == nil)
        #expect(spec.endpointSelector == LabelSelector(matchExpressions: [
            LabelSelectorRequirement(key: "io.kubernetes.pod.namespace", operator: .notIn, values: ["kube-system"])]))
        #expect(spec.enableDefaultDeny == DefaultDenyConfig(ingress: false, egress: false))
        #expect(spec.egress?.first?.toPorts == [PortRule(ports: [PortProtocol(port: .number(53), protocol: .tcp),
                                                                 PortProtocol(port: .number(53), protocol: .udp)],
                                                         rules: .dns([FQDNSelector(matchPattern: "*")]))])
    }

    @Test func seedExcerptsCompleted() throws {
        let a = try onlyPolicy("seed004-02-allow-dns-lookups-cilium-io.yaml")
        #expect(a.ref.namespace == "default", "namespace defaults to default, as with kubectl")
        #expect(a.specs[0].egress?.count == 3)
        #expect(a.specs[0].egress?[0].hasNoPeerSelector == true)
        let b = try onlyPolicy("seed004-03-allow-cilium-io.yaml")
        #expect(b.specs[0].egress?[1].fqdns == [FQDNSelector(matchPattern: "*.cilium.io")])
    }

    /// The intercept-all-dns example as printed in the seed (callout markers removed, indentation
    /// kept): its `toPorts` is indented deeper than `toEndpoints`, which YAML rejects; the error
    /// must point at the line.
    @Test func seedExampleAsPrintedIsAYAMLError() {
        let text = """
        apiVersion: cilium.io/v2
        kind: CiliumClusterwideNetworkPolicy
        metadata:
          name: intercept-all-dns
        spec:
          endpointSelector: {}
          egress:
            - toEndpoints:
                - matchLabels:
                    k8s-app: kube-dns
                toPorts:
                  - ports:
                      - port: "53"
        """
        let set = decode(text)
        #expect(set.resources.isEmpty)
        #expect(set.errors.count == 1)
        #expect(set.errors.first?.message.hasPrefix("invalid YAML") == true)
        #expect(set.errors.first?.line == 11)
    }
}
