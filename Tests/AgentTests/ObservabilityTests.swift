import Datapath
import Foundation
import MembraneTestSupport
import Testing

/// Flows, `membrane observe` and metrics from the real agent, on real traffic between endpoints.
@Suite(.serialized)
struct ObservabilityTests {
    typealias Harness = AgentTests.Harness

    static let policies = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: allow-client, namespace: prod}
        spec:
          endpointSelector: {matchLabels: {app: backend}}
          ingress:
          - fromEndpoints: [{matchLabels: {app: client, k8s:io.kubernetes.pod.namespace: default}}]
            toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
        ---
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: deny-other, namespace: prod}
        spec:
          endpointSelector: {matchLabels: {app: backend}}
          ingressDeny:
          - fromEndpoints: [{matchLabels: {app: other, k8s:io.kubernetes.pod.namespace: default}}]
        """

    /// `membrane observe … -o json`, one parsed flow per line (lost-event lines skipped).
    static func flows(_ h: Harness, _ args: [String]) throws -> [[String: Any]] {
        let r = try h.cli(["observe", "--server", "unix://" + h.hubbleSocket] + args + ["-o", "json"])
        #expect(r.status == 0, "observe \(args): \(r.err)")
        return r.out.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["flow"] as? [String: Any]
        }
    }

    static func metrics(_ h: Harness) throws -> String {
        try runCommand(["curl", "-sf", "http://127.0.0.1:\(h.metricsPort ?? 0)/metrics"]).out
    }

    /// The value of one sample line (`name{labels} value`), labels given in Prometheus' sorted order.
    static func sample(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    static func policyNames(_ flow: [String: Any], _ key: String) -> [String] {
        (flow[key] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }

    @Test(.enabled(if: AgentTests.privileged, "needs root (or CI)"))
    func flowsNameThePoliciesThatDecided() throws {
        let h = try Harness(cidr: "10.241.0.0/24")
        defer { h.tearDown() }
        let backend = try h.create("prod", "backend", labels: "app=backend")
        _ = try h.create("default", "client", labels: "app=client")
        _ = try h.create("default", "other", labels: "app=other")
        let ip = backend["ipv4"] as! String
        let before = try Self.metrics(h)
        #expect(before.contains("# TYPE cilium_policy_implementation_delay histogram"))

        #expect(try h.cli(["policy", "apply", "-f", "-"], stdin: Self.policies).status == 0)
        let s1 = try h.serve("prod/backend", ip: ip, port: 8080, seconds: 20), s2 = try h.serve("prod/backend", ip: ip, port: 9090, seconds: 20)
        defer { s1.terminate(); s2.terminate() }
        #expect(try h.connects(from: "default/client", to: ip, port: 8080) == 1)
        #expect(try h.connects(from: "default/client", to: ip, port: 9090) == 0)
        #expect(try h.connects(from: "default/other", to: ip, port: 8080) == 0)
        Thread.sleep(forTimeInterval: 0.3)

        let all = try Self.flows(h, ["--last", "1000"])
        func find(_ pred: ([String: Any]) -> Bool) -> [String: Any]? { all.first(where: pred) }
        func port(_ f: [String: Any]) -> Int? { ((f["l4"] as? [String: Any])?["TCP"] as? [String: Any])?["destination_port"] as? Int }
        func pod(_ f: [String: Any], _ side: String) -> String {
            let e = f[side] as? [String: Any] ?? [:]
            return "\(e["namespace"] as? String ?? "")/\(e["pod_name"] as? String ?? "")"
        }
        func eventType(_ f: [String: Any]) -> Int { (f["event_type"] as? [String: Any])?["type"] as? Int ?? -1 }

        // Allowed: an ingress policy verdict at the backend, by allow-client, L3-L4, not a reply.
        let allowed = find { eventType($0) == 5 && $0["traffic_direction"] as? String == "INGRESS" && port($0) == 8080
            && $0["verdict"] as? String == "FORWARDED" && pod($0, "source") == "default/client" }
        #expect(allowed != nil, "no allowed ingress verdict in \(all.count) flows")
        if let f = allowed {
            #expect(Self.policyNames(f, "ingress_allowed_by") == ["allow-client"])
            #expect((f["ingress_allowed_by"] as? [[String: Any]])?.first?["kind"] as? String == "CiliumNetworkPolicy")
            #expect(f["policy_match_type"] as? Int == 2)
            #expect(f["is_reply"] as? Bool == false)
            #expect(pod(f, "destination") == "prod/backend")
            #expect(((f["destination"] as? [String: Any])?["labels"] as? [String] ?? []).contains("k8s:app=backend"))
            #expect(f["Summary"] as? String == "TCP Flags: SYN")
        }

        // Default deny: both the policy verdict and the drop name the policy that put backend into default deny.
        let defaultDenied = all.filter { port($0) == 9090 && $0["verdict"] as? String == "DROPPED" }
        #expect(Set(defaultDenied.map(eventType)) == [1, 5])
        for f in defaultDenied {
            #expect(f["drop_reason_desc"] as? String == "POLICY_DENIED")
            #expect(f["drop_reason"] as? Int == 133)
            #expect(Set(Self.policyNames(f, "ingress_denied_by")) == ["allow-client", "deny-other"])
            #expect(f["is_reply"] == nil)
        }

        // Explicit deny: POLICY_DENY, by deny-other.
        let denied = find { eventType($0) == 5 && pod($0, "source") == "default/other" && $0["traffic_direction"] as? String == "INGRESS" }
        #expect(denied?["drop_reason_desc"] as? String == "POLICY_DENY")
        #expect(denied.map { Self.policyNames($0, "ingress_denied_by") } == ["deny-other"])

        // Server-side filters and the compact format with policy names.
        let drops = try Self.flows(h, ["--last", "1000", "--verdict", "DROPPED", "--to-port", "9090"])
        #expect(!drops.isEmpty && drops.allSatisfy { port($0) == 9090 && $0["verdict"] as? String == "DROPPED" })
        #expect(try Self.flows(h, ["--last", "1000", "--from-pod", "default/other", "--type", "drop"]).count >= 1)
        #expect(try Self.flows(h, ["--last", "1000", "--from-identity", "world"]).isEmpty)
        let compact = try h.cli(["observe", "--server", "unix://" + h.hubbleSocket, "--last", "1000", "--type", "policy-verdict",
                                 "--to-port", "8080", "--from-pod", "default/client", "--print-policy-names"])
        #expect(compact.out.contains("-> prod/backend:8080 (ID:"), "\(compact.out)")
        #expect(compact.out.contains("policy-verdict:L3-L4 INGRESS ALLOWED BY allow-client (CiliumNetworkPolicy) (TCP Flags: SYN)"), "\(compact.out)")
        let first = try Self.flows(h, ["--first", "2"])
        #expect(first.count == 2)
        try Self.outsideClientReadsTheSameFlows(h, all)

        // Metrics followed the traffic and the policy changes.
        let after = try Self.metrics(h)
        #expect((Self.sample(after, #"cilium_drop_count_total{direction="INGRESS",reason="Policy denied"}"#) ?? 0) >= 1)
        #expect((Self.sample(after, #"cilium_drop_count_total{direction="INGRESS",reason="Policy denied by denylist"}"#) ?? 0) >= 1)
        #expect((Self.sample(after, #"cilium_forward_count_total{direction="INGRESS"}"#) ?? 0)
                > (Self.sample(before, #"cilium_forward_count_total{direction="INGRESS"}"#) ?? 0))
        #expect(Self.sample(after, #"cilium_policy_change_total{outcome="success"}"#) == 1)
        #expect((Self.sample(after, #"cilium_policy_implementation_delay_count{source="api"}"#) ?? 0) == 1)
        #expect((Self.sample(after, #"hubble_drop_total{protocol="TCP",reason="POLICY_DENIED"}"#) ?? 0) >= 1)
        #expect((Self.sample(after, #"cilium_policy_verdict_total{action="allow",direction="ingress",match="l3-l4"}"#) ?? 0) >= 1)
        #expect(Self.sample(after, #"cilium_policy_endpoint_enforcement_status{enforcement="ingress"}"#) == 1)
        #expect(Self.sample(after, #"cilium_endpoint_state{endpoint_state="ready"}"#) == 3)
        #expect((Self.sample(after, #"cilium_identity{type="cluster_local"}"#) ?? 0) >= 3)
        #expect(after.contains(#"cilium_bpf_map_pressure{map_name="ipcache"}"#))
        #expect(after.contains(#"hubble_flows_processed_total{protocol="TCP",subtype="",type="PolicyVerdict",verdict="FORWARDED"}"#))

        let bad = try h.cli(["policy", "apply", "-f", "-"], stdin: Self.policies.replacingOccurrences(of: "ingressDeny", with: "ingressDenny"))
        #expect(bad.status != 0)
        #expect(Self.sample(try Self.metrics(h), #"cilium_policy_change_total{outcome="failure"}"#) == 1)
    }

    /// The Python interpreter with grpcio and grpcio-tools (scripts/test.sh makes it), or nil.
    static var interopPython: String? {
        let path = ProcessInfo.processInfo.environment["MEMBRANE_INTEROP_PYTHON"]
            ?? BuiltProducts.repo.appendingPathComponent(".build/interop-venv/bin/python3").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Python's grpcio (gRPC's C core) and protobuf, with classes generated from proto/, read the agent's GetFlows
    /// answer: every flow `membrane observe` showed comes back equal, field for field, in protojson form.
    static func outsideClientReadsTheSameFlows(_ h: Harness, _ shown: [[String: Any]]) throws {
        guard let python = interopPython else {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                Issue.record("no interop Python (.build/interop-venv): scripts/test.sh installs grpcio and grpcio-tools")
            } else {
                print("skipped: the outside gRPC client check (run scripts/test.sh to make .build/interop-venv)")
            }
            return
        }
        let script = BuiltProducts.repo.appendingPathComponent("Tests/Interop/hubble_grpc_client.py").path
        let r = try runCommand([python, script, h.hubbleSocket, "1000"])
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.first?["health"] as? String == "SERVING")
        #expect((lines.first?["num_flows"] as? Int ?? 0) >= shown.count)
        var byUUID: [String: NSDictionary] = [:]
        for line in lines.dropFirst() {
            if let f = line["flow"] as? [String: Any], let id = f["uuid"] as? String { byUUID[id] = f as NSDictionary }
        }
        #expect(!shown.isEmpty)
        for f in shown {
            guard let id = f["uuid"] as? String, let other = byUUID[id] else { Issue.record("flow \(f["uuid"] ?? "?") not read by the outside client"); continue }
            #expect(other == f as NSDictionary, "outside client: \(other)\nmembrane observe: \(f)")
        }
    }

    @Test(.enabled(if: AgentTests.privileged, "needs root (or CI)"))
    func auditModeForwardsAndReportsAudit() throws {
        let h = try Harness(cidr: "10.241.1.0/24", extraArgs: ["--audit-mode"])
        defer { h.tearDown() }
        let backend = try h.create("prod", "backend", labels: "app=backend")
        _ = try h.create("default", "client", labels: "app=client")
        let ip = backend["ipv4"] as! String
        #expect(try h.cli(["policy", "apply", "-f", "-"], stdin: Self.policies).status == 0)
        let s = try h.serve("prod/backend", ip: ip, port: 9090, seconds: 10)
        defer { s.terminate() }
        #expect(try h.connects(from: "default/client", to: ip, port: 9090) == 1, "audit mode forwards")
        Thread.sleep(forTimeInterval: 0.3)
        let audited = try Self.flows(h, ["--last", "100", "--verdict", "AUDIT"])
        #expect(audited.contains { ($0["traffic_direction"] as? String) == "INGRESS" && Self.policyNames($0, "ingress_denied_by").contains("allow-client") })
        let compact = try h.cli(["observe", "--server", "unix://" + h.hubbleSocket, "--verdict", "AUDIT", "--to-pod", "prod/backend"])
        #expect(compact.out.contains("INGRESS AUDITED"), "\(compact.out)")
    }

    /// A burst of 1,000,000 events: every one either reaches the flow store or is counted as lost.
    @Test(.enabled(if: AgentTests.privileged, "needs root (or CI)"))
    func burstOfAMillionEventsIsAccountedFor() throws {
        let h = try Harness(cidr: "10.241.2.0/24")
        defer { h.tearDown() }
        // A second loader of the same object adopts the agent's pinned maps: its programs write into the
        // agent's ring buffer and counters, run by the kernel's test-run facility (no interface: drop 172).
        let object = URL(fileURLWithPath: h.dir).appendingPathComponent("burst.o")
        try BPFDatapath.compile(source: BuiltProducts.repo.appendingPathComponent("bpf/membrane.c"), output: object)
        let datapath = try BPFDatapath(objectFile: object, root: h.bpfRoot)
        let packet = BPFDatapath.tcpSynPacket(source: [10, 241, 2, 9], destination: [10, 241, 2, 10], sourcePort: 1234, destinationPort: 80)
        let total = 1_000_000
        for _ in 0..<10 {
            let r = try datapath.testRun(egress: true, packet: packet, repeat: Int32(total / 10))
            #expect(r.verdict == 2, "TC_ACT_SHOT for an unknown interface")
        }
        var flows = 0.0, lost = 0.0
        for _ in 0..<100 {
            Thread.sleep(forTimeInterval: 0.2)
            let m = try Self.metrics(h)
            flows = Self.sample(m, #"hubble_flows_processed_total{protocol="TCP",subtype="",type="Drop",verdict="DROPPED"}"#) ?? 0
            lost = Self.sample(m, #"hubble_lost_events_total{source="PERF_EVENT_RING_BUFFER"}"#) ?? 0
            if flows + lost >= Double(total) { break }
        }
        print("burst: \(Int(flows)) flows stored, \(Int(lost)) counted lost of \(total)")
        #expect(flows + lost == Double(total))
        // The ring buffer (4 MiB, 80 bytes per event with its header) holds 52,428 events: at least that many arrive.
        #expect(flows >= 52_428)
        let status = try Self.flows(h, ["--last", "5"])
        #expect(status.count == 5)
    }
}
