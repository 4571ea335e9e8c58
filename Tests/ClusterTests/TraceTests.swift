import Foundation
import Testing
@testable import Cluster
@testable import Policy
import PolicyAPI

@Suite struct TraceTests {
    func trace(_ m: ClusterModel, _ req: TraceRequest) throws -> TraceResult {
        var t = PolicyTracer(cluster: m)
        return try t.trace(req)
    }

    @Test func allowedPodToPod() throws {
        let r = try trace(model(), TraceRequest(from: "web/client", to: "web/server", port: 8080))
        #expect(r.verdict == "FORWARDED")
        #expect(r.ingress.enforced && r.ingress.verdict == "FORWARDED")
        #expect(r.ingress.policies.map(\.name) == ["server-ingress"])
        #expect(r.egress.enforced && r.egress.verdict == "FORWARDED")
        #expect(r.source.kind == "pod" && r.destination.name == "web/server")
    }

    @Test func deniedByDefaultDeny() throws {
        let r = try trace(model(), TraceRequest(from: "web/other", to: "web/server", port: 8080))
        #expect(r.verdict == "DROPPED")
        #expect(r.dropReason == "POLICY_DENIED")
        #expect(r.ingress.verdict == "DROPPED")
        #expect(r.ingress.policies.map(\.name) == ["server-ingress"])
        #expect(!r.egress.enforced)
    }

    @Test(arguments: [(UInt16(80), "10.96.0.20"), (81, "10.96.0.20"), (80, "web/server-svc")])
    func serviceTranslation(port: UInt16, to: String) throws {
        let r = try trace(model(), TraceRequest(from: "web/client", to: to, port: port))
        #expect(r.destination.translatedFrom == "web/server-svc")
        #expect(r.destination.name == "web/server")
        #expect(r.destination.ip == "10.0.0.20")
        #expect(r.port == 8080, "the target port, after translation")
        #expect(r.verdict == "FORWARDED")
    }

    @Test func serviceTranslationHonoursPolicyOnTargetPort() throws {
        let r = try trace(model(), TraceRequest(from: "web/other", to: "10.96.0.20", port: 80))
        #expect(r.port == 8080)
        #expect(r.verdict == "DROPPED")
    }

    @Test func cidrEgress() throws {
        let m = model()
        let r = try trace(m, TraceRequest(from: "web/client", to: "203.0.113.7", port: 22))
        #expect(r.verdict == "FORWARDED")
        #expect(r.destination.kind == "cidr")
        #expect(r.destination.identity == m.engine.cidrIdentities[prefix("203.0.113.0/24")])
        let w = try trace(m, TraceRequest(from: "web/client", to: "8.8.8.8", port: 22))
        #expect(w.verdict == "DROPPED")
        #expect(w.destination.identity == ReservedIdentity.world.rawValue)
    }

    // MARK: DNS learning

    @Test func dnsLearnedWhenProxyAllowsTheName() throws {
        let m = model()
        let r = try trace(m, TraceRequest(from: "web/client", to: "104.16.0.1", port: 443, dns: [("api.cilium.io", address("104.16.0.1"))]))
        #expect(r.verdict == "FORWARDED")
        #expect(r.dnsLearned.count == 1 && r.dnsLearned[0].contains("identity"))
        #expect(r.destination.identity >= IdentityRange.minimumLocal)
        #expect(r.destination.labels.contains("fqdn:api.cilium.io"))
        // Without the lookup the address is just world.
        let plain = try trace(m, TraceRequest(from: "web/client", to: "104.16.0.1", port: 443))
        #expect(plain.verdict == "DROPPED")
    }

    @Test func dnsNotLearnedWhenProxyRefusesTheName() throws {
        // The DNS rule allows *.cilium.io only: a lookup of api.example.com is refused, so nothing is learned
        // (even if some policy had a toFQDNs for it).
        let extra = """
        ---
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: client-example, namespace: web}
        spec:
          endpointSelector: {matchLabels: {app: client}}
          egress:
          - toFQDNs: [{matchName: api.example.com}]
            toPorts: [{ports: [{port: "443", protocol: TCP}]}]
        """
        let m = model(clusterYAML + "\n---\n" + policyYAML + "\n" + extra)
        let r = try trace(m, TraceRequest(from: "web/client", to: "104.16.0.2", port: 443, dns: [("api.example.com", address("104.16.0.2"))]))
        #expect(r.verdict == "DROPPED")
        #expect(r.dnsLearned.count == 1 && r.dnsLearned[0].contains("not learned"))
    }

    @Test func dnsNotLearnedWithoutMatchingToFQDNs() throws {
        let r = try trace(model(), TraceRequest(from: "web/client", to: "104.16.0.3", port: 443, dns: [("www.cilium.io", address("104.16.0.3"))]))
        #expect(r.verdict == "DROPPED")
        #expect(r.dnsLearned.first?.contains("not learned") == true)
    }

    @Test func dnsNotLearnedWhenSourceDoesNotUseTheProxy() throws {
        let r = try trace(model(), TraceRequest(from: "web/other", to: "104.16.0.4", port: 443, dns: [("api.cilium.io", address("104.16.0.4"))]))
        #expect(r.dnsLearned.first?.contains("not learned") == true)
        #expect(r.destination.identity == ReservedIdentity.world.rawValue)
    }

    @Test func dnsQueryL7Verdict() throws {
        let m = model()
        let ok = try trace(m, TraceRequest(from: "web/client", to: "kube-system/coredns", port: 53, proto: "UDP", l7: .dns(query: "docs.cilium.io")))
        #expect(ok.verdict == "FORWARDED")
        #expect(ok.l7?.parser == "dns" && ok.l7?.verdict == "FORWARDED")
        let bad = try trace(m, TraceRequest(from: "web/client", to: "kube-system/coredns", port: 53, proto: "UDP", l7: .dns(query: "example.com")))
        #expect(bad.verdict == "DROPPED")
        #expect(bad.l7?.verdict == "DROPPED")
    }

    // MARK: Audit

    @Test func auditVerdict() throws {
        let m = model(settings: EngineSettings(auditMode: true))
        let r = try trace(m, TraceRequest(from: "web/other", to: "web/server", port: 8080))
        #expect(r.verdict == "AUDIT")
        #expect(r.dropReason == nil)
        #expect(r.ingress.verdict == "AUDIT")
        let ok = try trace(m, TraceRequest(from: "web/client", to: "web/server", port: 8080))
        #expect(ok.verdict == "FORWARDED")
    }

    // MARK: Errors

    @Test func errors() {
        #expect(throws: TraceError.self) { try trace(model(), TraceRequest(from: "web/nope", to: "web/server", port: 80)) }
        #expect(throws: TraceError.self) { try trace(model(), TraceRequest(from: "web/client", to: "web/server", port: nil)) }
        #expect(throws: TraceError.self) { try trace(model(), TraceRequest(from: "web/client", to: "web/server", port: 80, proto: "GRE")) }
    }

    // MARK: JSON

    @Test func jsonFieldNames() throws {
        let r = try trace(model(), TraceRequest(from: "web/client", to: "8.8.8.8", port: 22))
        let data = try JSONEncoder().encode(r)
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(obj["verdict"] as? String == "DROPPED")
        #expect(obj["dropReason"] as? String == "POLICY_DENIED")
        let egress = try #require(obj["egress"] as? [String: Any])
        #expect(egress["verdict"] as? String == "DROPPED")
        let policies = try #require(egress["policies"] as? [[String: Any]])
        #expect(policies.count == 1)
        #expect(policies.first?["kind"] as? String == "CiliumNetworkPolicy")
        #expect(policies.first?["namespace"] as? String == "web")
        #expect(policies.first?["name"] as? String == "client-egress")
        #expect(obj["source"] is [String: Any] && obj["destination"] is [String: Any] && obj["ingress"] is [String: Any])
    }
}
