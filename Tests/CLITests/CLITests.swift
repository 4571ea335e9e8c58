import Foundation
import MembraneTestSupport
import Testing

/// Runs the real `membrane` executable from the checkout, as users and CI scripts do.
enum CLI {
    static func run(_ args: [String], stdin: String? = nil) throws -> ProcessResult {
        try runProcess(BuiltProducts.path("membrane"), args, directory: BuiltProducts.repo, stdin: stdin)
    }

    static func json(_ text: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
    }
}

@Suite("membrane CLI")
struct CLITests {
    let demo = ["-f", "examples/seed-demo/cluster.yaml", "examples/seed-demo/policies"]

    @Test func validateAcceptsTheSeedExamples() throws {
        let r = try CLI.run(["policy", "validate", "-f", "examples/seed-demo"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.contains("0 error(s)"))
    }

    @Test func validateReportsEveryErrorWithItsPlaceAndFails() throws {
        let r = try CLI.run(["policy", "validate", "-f", "examples/invalid"])
        #expect(r.status == 1)
        #expect(r.out.contains("CiliumNetworkPolicy production/typo-and-bad-range: spec.ingress[0].fromEndpoint: unknown field \"fromEndpoint\"; did you mean \"fromEndpoints\"?"))
        #expect(r.out.contains("spec.ingress[0].toPorts[0].ports[0].endPort"))
        #expect(r.out.contains("spec.egressDeny[0].toCIDRSet[0].cidr"))
        #expect(r.out.contains("1 valid policy"))
    }

    @Test func validateReadsStdinAndEmitsJSON() throws {
        let yaml = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: p, namespace: ns}
        spec:
          endpointSelector: {}
          ingress:
          - fromEntities: [wrld]
        """
        let r = try CLI.run(["policy", "validate", "-f", "-", "-o", "json"], stdin: yaml)
        #expect(r.status == 1)
        let j = try CLI.json(r.out)
        #expect(j["valid"] as? Bool == false)
        let errors = j["errors"] as? [[String: Any]] ?? []
        #expect(errors.first?["path"] as? String == "spec.ingress[0].fromEntities[0]")
        #expect((errors.first?["message"] as? String ?? "").contains("world"))
    }

    @Test func traceJSONCarriesVerdictsAndAttribution() throws {
        let allowed = try CLI.json(CLI.run(["policy", "trace"] + demo + ["--from", "production/frontend", "--to", "production/backend", "--port", "8080", "-o", "json"]).out)
        #expect(allowed["verdict"] as? String == "FORWARDED")
        #expect(allowed["dropReason"] == nil)
        let ingress = allowed["ingress"] as? [String: Any] ?? [:]
        let policies = ingress["policies"] as? [[String: Any]] ?? []
        #expect(policies.first?["kind"] as? String == "CiliumNetworkPolicy")
        #expect(policies.first?["namespace"] as? String == "production")
        #expect(policies.first?["name"] as? String == "allow-frontend-to-backend")

        let denied = try CLI.json(CLI.run(["policy", "trace"] + demo + ["--from", "development/dev-shell", "--to", "production/database", "--port", "5432", "-o", "json"]).out)
        #expect(denied["verdict"] as? String == "DROPPED")
        #expect(denied["dropReason"] as? String == "POLICY_DENY")
        #expect((denied["ingress"] as? [String: Any])?["verdict"] as? String == "DROPPED")
    }

    @Test func traceL7AndAuditMode() throws {
        let delete = try CLI.json(CLI.run(["policy", "trace"] + demo + ["--from", "production/api-consumer", "--to", "production/api-server",
                                                                        "--port", "80", "--http-method", "DELETE", "--http-path", "/api/x", "-o", "json"]).out)
        #expect(delete["verdict"] as? String == "DROPPED")
        #expect((delete["l7"] as? [String: Any])?["verdict"] as? String == "DROPPED")
        let audited = try CLI.json(CLI.run(["policy", "trace"] + demo + ["--from", "production/api-consumer", "--to", "production/backend",
                                                                         "--port", "8080", "--audit-mode", "-o", "json"]).out)
        #expect(audited["verdict"] as? String == "AUDIT")
    }

    @Test func traceRejectsUnknownEndpoints() throws {
        let r = try CLI.run(["policy", "trace"] + demo + ["--from", "production/nope", "--to", "production/backend", "--port", "1"])
        #expect(r.status != 0)
        #expect(r.err.contains("production/nope"))
    }

    @Test func mapShowsTheDenyEntryAndEncodings() throws {
        let r = try CLI.run(["policy", "map"] + demo + ["--endpoint", "production/database", "-o", "json"])
        #expect(r.status == 0)
        let entries = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] ?? []
        #expect(entries.contains { $0["policy"] as? String == "Deny" && ($0["labels"] as? [String] ?? []).contains("k8s:io.kubernetes.pod.namespace=development") })
        #expect(entries.allSatisfy { ($0["encodedKey"] as? String)?.count == 24 && ($0["encodedValue"] as? String)?.count == 24 })
    }

    @Test func identityAndEndpointLists() throws {
        let ids = try JSONSerialization.jsonObject(with: Data(CLI.run(["identity", "list"] + demo + ["-o", "json"]).out.utf8)) as? [[String: Any]] ?? []
        #expect(ids.contains { $0["id"] as? Int == 7 && ($0["labels"] as? [String] ?? []) == ["reserved:kube-apiserver", "reserved:remote-node"] })
        #expect(ids.contains { ($0["id"] as? Int ?? 0) >= 256 && ($0["labels"] as? [String] ?? []).contains("k8s:app=database") })
        let eps = try JSONSerialization.jsonObject(with: Data(CLI.run(["endpoint", "list"] + demo + ["-o", "json"]).out.utf8)) as? [[String: Any]] ?? []
        let db = eps.first { $0["name"] as? String == "production/database" }
        #expect(db?["ingressEnforcement"] as? String == "Enabled")
        #expect(db?["egressEnforcement"] as? String == "Disabled")
        let table = try CLI.run(["endpoint", "list"] + demo).out
        #expect(table.contains("POLICY (ingress) ENFORCEMENT"))
    }
}
