import Cluster
import Foundation
import MembraneTestSupport
import Policy
import Testing
@testable import Datapath

// Differential test on real packets: random policy sets (allow and deny, ingress and egress, label, entity and
// CIDR peers, ports, ranges and protocols, CNP, CCNP and KNP) over a handful of endpoints, the host and an outside
// namespace; for each set, many (source, destination, protocol, port) probes with real packets, each compared
// with `membrane policy trace` for the same manifests (PolicyTracer; the CLI itself for a sample).
//
// Reproduce a failure with MEMBRANE_DIFF_SEED=<seed printed in the failure> swift test --filter DifferentialTrafficTests.

struct DifferentialLabScope: SuiteTrait, TestScoping {
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard EnforcementTests.privileged else { return try await function() }
        let lab = try DifferentialTrafficTests.makeLab()
        defer { lab.tearDown() }
        try await DifferentialTrafficTests.$lab.withValue(lab) { try await function() }
    }
}

@Suite(.serialized, DifferentialLabScope())
struct DifferentialTrafficTests {
    @TaskLocal static var lab: TrafficLab?

    // Pods 10.232.2.0/24 (endpoint IDs 3100…), outside addresses 10.233.2.0/24 (one of them a remote node).
    static let pods: [LabPod] = [
        LabPod(namespace: "alpha", name: "web", labels: ["app": "web", "tier": "front"], ip: "10.232.2.11"),
        LabPod(namespace: "alpha", name: "api", labels: ["app": "api", "tier": "back"], ip: "10.232.2.12"),
        LabPod(namespace: "alpha", name: "db", labels: ["app": "db", "tier": "back"], ip: "10.232.2.13"),
        LabPod(namespace: "beta", name: "web", labels: ["app": "web", "tier": "front"], ip: "10.232.2.21"),
        LabPod(namespace: "beta", name: "job", labels: ["app": "job"], ip: "10.232.2.22"),
    ]
    static let world = ["10.233.2.1", "10.233.2.6", "10.233.2.9", "10.233.2.17", "10.233.2.40", "10.233.2.130"]
    static let remoteNode = "10.233.2.240"
    static let tcpPorts: [UInt16] = [21080, 21443, 28080, 28081, 28082, 28443]
    static let udpPorts: [UInt16] = [20053, 25353, 28080]

    static let extraCluster = """
        apiVersion: v1
        kind: Node
        metadata: {name: node2, labels: {kubernetes.io/hostname: node2}}
        status:
          addresses:
          - {type: InternalIP, address: \(remoteNode)}
        """

    static func makeLab() throws -> TrafficLab {
        try TrafficLab(tag: "diff", pods: pods, namespaceLabels: ["alpha": ["team": "a"], "beta": ["team": "b"]],
                       outsideAddresses: world + [remoteNode], outsideSubnet: "10.233.2.0/24", firstID: 3100,
                       tcpPorts: tcpPorts, udpPorts: udpPorts, hostTCPPorts: tcpPorts, hostUDPPorts: udpPorts)
    }

    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["MEMBRANE_DIFF_SEED"].flatMap { UInt64($0) } ?? 0x7AFF_1C5E_ED00_0003
    }
    static let policySets = 16
    static let probesPerSet = 48

    @Test func privilegedSkipNotice() {
        if !EnforcementTests.privileged { print("DifferentialTrafficTests: skipping privileged real-traffic tests (not root and CI unset)") }
    }

    @Test(.enabled(if: EnforcementTests.privileged, "needs root (or CI)"))
    func realPacketsAgreeWithTheTrace() throws {
        let lab = try #require(Self.lab)
        let seed = Self.seed
        var rng = SplitMix64(seed: seed)
        let start = Date()
        var cases = 0, connected = 0, cliChecks = 0
        var mismatches: [String] = []
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("membrane-difftest-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        for set in 0..<Self.policySets {
            var generator = PolicyGenerator(rng: SplitMix64(seed: rng.next()))
            let policies = generator.policySet()
            let errors = try lab.apply(policies: policies, extraCluster: Self.extraCluster)
            #expect(errors.isEmpty, "seed \(seed) set \(set): the generated manifests are invalid: \(errors)\n\(policies)")
            if !errors.isEmpty { continue }

            let subjects = Self.pods.filter { pod in
                lab.cluster.endpoint(namespace: pod.namespace, pod: pod.name).map { !lab.cluster.engine.selectingPolicies($0.id).isEmpty } ?? false
            }
            let probes = Self.probes(&rng, count: Self.probesPerSet, favoring: generator.ports, subjects: subjects)
            var expected: [Probe: Bool] = [:]
            var traces: [Probe: TraceResult] = [:]
            for p in probes {
                let r = try lab.trace(p)
                traces[p] = r
                expected[p] = TrafficLab.passesKernel(r)
            }
            let outcomes = lab.observe(probes, expected: expected)
            for p in probes {
                let o = outcomes[p] ?? "missing"
                cases += 1
                if o == "open" { connected += 1 }
                let agrees = expected[p]! ? o == "open" : isDrop(o)
                if !agrees {
                    mismatches.append("""
                        seed \(seed) (MEMBRANE_DIFF_SEED=\(seed)), policy set \(set), probe \(p):
                          real packets: \(o); \(TrafficLab.summary(traces[p]!))
                          source \(lab.address(p.from)) → destination \(lab.address(p.to))
                        --- manifests ---
                        \(lab.manifests)
                        """)
                }
            }

            // The CLI itself, on the same manifests written to files, for a sample of the probes.
            let file = dir.appendingPathComponent("set-\(set).yaml")
            try lab.manifests.write(to: file, atomically: true, encoding: .utf8)
            for p in probes.prefix(3) {
                let verdict = try Self.cliVerdict(p, lab: lab, manifests: file.path)
                cliChecks += 1
                #expect(verdict == traces[p]!.verdict, "seed \(seed) set \(set) \(p): membrane policy trace says \(verdict), PolicyTracer \(traces[p]!.verdict)\n\(lab.manifests)")
            }
        }
        let seconds = Date().timeIntervalSince(start)
        print("DifferentialTrafficTests: seed \(seed): \(cases) real-packet cases in \(Self.policySets) policy sets (\(connected) connected), \(cliChecks) CLI traces, \(mismatches.count) mismatches, \(String(format: "%.1f", seconds)) s")
        #expect(cases >= 300, "only \(cases) cases")
        // Both verdicts must occur, or the comparison says little.
        #expect(connected > cases / 10 && connected < cases * 9 / 10, "\(connected) of \(cases) connected")
        for m in mismatches.prefix(5) { Issue.record(Comment(rawValue: m)) }
        #expect(mismatches.isEmpty, "seed \(seed): \(mismatches.count) of \(cases) probes disagree with the trace")
    }

    /// Random probes, each with at least one end a pod (the other a pod, the host, world or the remote node),
    /// most of them on ports the policies name (so that rules meet, and ties between them are exercised).
    static func probes(_ rng: inout SplitMix64, count: Int, favoring named: Set<UInt16>, subjects: [LabPod]) -> [Probe] {
        func port(_ pool: [UInt16]) -> UInt16 {
            let favored = pool.filter(named.contains)
            return !favored.isEmpty && rng.chance(0.6) ? rng.pick(favored) : rng.pick(pool)
        }
        var out: [Probe] = []
        var seen = Set<Probe>()
        while out.count < count {
            let pod = LabPeer.pod((!subjects.isEmpty && rng.chance(0.7) ? rng.pick(subjects) : rng.pick(pods)).ref)
            let other: LabPeer
            switch rng.int(10) {
            case 0..<5: other = .pod(rng.pick(pods).ref)
            case 5..<8: other = .outside(rng.pick(world))
            case 8: other = .host
            default: other = .outside(remoteNode)
            }
            if other == pod { continue }
            let (from, to) = rng.chance(0.5) ? (pod, other) : (other, pod)
            let roll = rng.int(20)
            let p: Probe
            if roll < 12 { p = Probe(from, to, .tcp, port(tcpPorts)) }
            else if roll < 17 { p = Probe(from, to, .udp, port(udpPorts)) }
            else { p = Probe(from, to, .icmp) }
            if seen.insert(p).inserted { out.append(p) }
        }
        return out
    }

    static func binary(_ name: String) -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
        return FileManager.default.isExecutableFile(atPath: beside.path) ? beside.path
            : EnforcementTests.repo.appendingPathComponent(".build/debug/\(name)").path
    }

    /// `membrane policy trace -f FILE --from … --to … -o json`: its verdict.
    static func cliVerdict(_ p: Probe, lab: TrafficLab, manifests: String) throws -> String {
        let name: (LabPeer) -> String = { peer in if case .pod(let ref) = peer { ref } else { lab.address(peer) } }
        var args = ["policy", "trace", "-f", manifests, "--from", name(p.from), "--to", name(p.to), "--protocol", p.proto.rawValue, "-o", "json"]
        if p.proto != .icmp { args += ["--port", String(p.port)] }
        let r = try PlumbingRunner.run(binary("membrane"), args, timeout: 60)
        guard let json = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], let v = json["verdict"] as? String else {
            return "no verdict (status \(r.status)): \(r.stderr)"
        }
        return v
    }
}

/// Random policy sets over the differential lab's labels, namespaces, outside addresses and ports.
struct PolicyGenerator {
    var rng: SplitMix64
    var count = 0
    /// The served ports the generated rules name (inside ranges too).
    var ports = Set<UInt16>()

    static let apps = ["web", "api", "db", "job"]
    static let tiers = ["front", "back"]
    static let namespaces = ["alpha", "beta"]
    static let entities = ["world", "cluster", "host", "remote-node", "all"]
    /// CIDRs over the outside addresses (10.233.2.1, .6, .9, .17, .40, .130) and one over the pods, with excepts.
    static let cidrs: [(cidr: String, except: [String])] = [
        ("10.233.2.0/24", []), ("10.233.2.0/28", ["10.233.2.8/29"]), ("10.233.2.0/26", ["10.233.2.16/28"]),
        ("10.233.2.128/25", []), ("10.233.2.1/32", []), ("10.232.0.0/15", ["10.233.2.0/30"]),
        ("10.233.2.0/27", ["10.233.2.4/30", "10.233.2.16/29"]),
    ]

    mutating func policySet() -> String {
        (0..<(1 + rng.int(4))).map { _ in policy() }.joined(separator: "\n---\n")
    }

    mutating func policy() -> String {
        count += 1
        let roll = rng.int(10)
        if roll < 2 { return networkPolicy() }
        if roll == 9 { return carveOut() }
        let clusterwide = roll < 4
        let ns = rng.pick(Self.namespaces)
        var lines = ["apiVersion: cilium.io/v2"]
        lines.append(clusterwide ? "kind: CiliumClusterwideNetworkPolicy" : "kind: CiliumNetworkPolicy")
        lines.append(clusterwide ? "metadata: {name: random-\(count)}" : "metadata: {name: random-\(count), namespace: \(ns)}")
        lines.append("spec:")
        lines.append("  endpointSelector: \(subjectSelector(clusterwide: clusterwide))")
        if rng.chance(0.35) {
            lines.append("  enableDefaultDeny: {\(rng.pick(["ingress: false", "egress: false", "ingress: false, egress: false"]))}")
        }
        var sections = ["ingress", "egress", "ingressDeny", "egressDeny"].filter { _ in rng.chance(0.45) }
        if sections.isEmpty { sections = [rng.pick(["ingress", "egress"])] }
        for section in sections {
            lines.append("  \(section):")
            for _ in 0..<(1 + rng.int(2)) { lines += rule(ingress: section.hasPrefix("ingress")) }
        }
        return lines.joined(separator: "\n")
    }

    /// An allow for everyone with an exception carved out by a deny exactly as specific (seed 000: deny rules
    /// "for carving out exceptions within broader allow policies"): the same port, or everything with no
    /// default deny. The datapath's two lookups tie there, and the deny must win.
    mutating func carveOut() -> String {
        let ingress = rng.chance(0.5)
        let (allow, deny, dir) = ingress ? ("ingress", "ingressDeny", "from") : ("egress", "egressDeny", "to")
        let ns = rng.pick(Self.namespaces)
        var lines = ["apiVersion: cilium.io/v2", "kind: CiliumNetworkPolicy", "metadata: {name: carve-out-\(count), namespace: \(ns)}", "spec:",
                     "  endpointSelector: \(labels())"]
        let peer = rng.chance(0.7) ? "\(dir)Endpoints: [\(peerSelector())]" : "\(dir)Entities: [\(rng.pick(["world", "host", "remote-node", "cluster"]))]"
        if rng.chance(0.5) {
            let spec = port()
            lines += ["  \(allow):", "  - toPorts: [{ports: [\(spec)]}]", "  \(deny):", "  - \(peer)", "    toPorts: [{ports: [\(spec)]}]"]
        } else {
            lines += ["  enableDefaultDeny: {\(allow): false}", "  \(deny):", "  - \(peer)"]
        }
        return lines.joined(separator: "\n")
    }

    mutating func labels() -> String {
        switch rng.int(5) {
        case 0: "{}"
        case 1, 2: "{matchLabels: {app: \(rng.pick(Self.apps))}}"
        case 3: "{matchLabels: {tier: \(rng.pick(Self.tiers))}}"
        default: "{matchExpressions: [{key: app, operator: In, values: [\(rng.pick(Self.apps)), \(rng.pick(Self.apps))]}]}"
        }
    }

    mutating func subjectSelector(clusterwide: Bool) -> String {
        if clusterwide, rng.chance(0.3) {
            return "{matchLabels: {io.kubernetes.pod.namespace: \(rng.pick(Self.namespaces))}}"
        }
        return labels()
    }

    mutating func peerSelector() -> String {
        if rng.chance(0.25) {
            let ns = "io.kubernetes.pod.namespace: \(rng.pick(Self.namespaces))"
            return rng.chance(0.5) ? "{matchLabels: {\(ns)}}" : "{matchLabels: {\(ns), tier: \(rng.pick(Self.tiers))}}"
        }
        return labels()
    }

    mutating func rule(ingress: Bool) -> [String] {
        let dir = ingress ? "from" : "to"
        var body: [String] = []
        switch rng.int(10) {
        case 0..<3: body.append("\(dir)Endpoints: [\(peerSelector())]")
        case 3..<5:
            var picked = Set<String>()
            for _ in 0..<(1 + rng.int(2)) { picked.insert(rng.pick(Self.entities)) }
            body.append("\(dir)Entities: [\(picked.sorted().joined(separator: ", "))]")
        case 5..<7:
            let c = rng.pick(Self.cidrs)
            if c.except.isEmpty && rng.chance(0.5) {
                body.append("\(dir)CIDR: [\(c.cidr)]")
            } else {
                body.append("\(dir)CIDRSet: [{cidr: \(c.cidr), except: [\(c.except.joined(separator: ", "))]}]")
            }
        default: break   // L4-only rule (or an empty rule)
        }
        if rng.chance(0.12) {
            body.append("icmps: [{fields: [{type: 8, family: IPv4}]}]")
        } else if body.isEmpty || rng.chance(0.55) {
            var ports: [String] = []
            for _ in 0..<(1 + rng.int(2)) { ports.append(port()) }
            body.append("toPorts: [{ports: [\(ports.joined(separator: ", "))]}]")
        }
        guard let first = body.first else { return ["  - {}"] }
        return ["  - " + first] + body.dropFirst().map { "    " + $0 }
    }

    mutating func port() -> String {
        let proto = rng.pick(["TCP", "TCP", "UDP", "ANY"])
        switch rng.int(4) {
        case 0:
            let end = rng.pick([28081, 28082, 28443])
            note(28080...UInt16(end))
            return "{port: \"28080\", endPort: \(end), protocol: \(proto)}"
        case 1:
            note(21000...21443)
            return "{port: \"21000\", endPort: 21443, protocol: \(proto)}"
        default:
            let all = proto == "UDP" ? DifferentialTrafficTests.udpPorts : DifferentialTrafficTests.tcpPorts
            let p = rng.pick(all)
            note(p...p)
            return "{port: \"\(p)\", protocol: \(proto)}"
        }
    }

    mutating func note(_ range: ClosedRange<UInt16>) {
        for p in DifferentialTrafficTests.tcpPorts + DifferentialTrafficTests.udpPorts where range.contains(p) { ports.insert(p) }
    }

    /// A Kubernetes NetworkPolicy: pod, namespace and ipBlock peers, TCP/UDP ports and ranges.
    mutating func networkPolicy() -> String {
        let ns = rng.pick(Self.namespaces)
        var lines = ["apiVersion: networking.k8s.io/v1", "kind: NetworkPolicy", "metadata: {name: random-\(count), namespace: \(ns)}", "spec:"]
        lines.append("  podSelector: \(rng.chance(0.3) ? "{}" : "{matchLabels: {app: \(rng.pick(Self.apps))}}")")
        let types = [("Ingress", "ingress", "from"), ("Egress", "egress", "to")].filter { _ in rng.chance(0.6) }
        if !types.isEmpty { lines.append("  policyTypes: [\(types.map(\.0).joined(separator: ", "))]") }
        for (_, key, dir) in types where rng.chance(0.85) {
            lines.append("  \(key):")
            for _ in 0..<(1 + rng.int(2)) {
                var rule: [String] = []
                if rng.chance(0.8) {
                    let peer: String
                    switch rng.int(4) {
                    case 0: peer = "{podSelector: {matchLabels: {tier: \(rng.pick(Self.tiers))}}}"
                    case 1: peer = "{namespaceSelector: {matchLabels: {team: \(rng.pick(["a", "b"]))}}}"
                    case 2: peer = "{namespaceSelector: {}, podSelector: {matchLabels: {app: \(rng.pick(Self.apps))}}}"
                    default:
                        let c = rng.pick(Self.cidrs)
                        peer = "{ipBlock: {cidr: \(c.cidr)\(c.except.isEmpty ? "" : ", except: [\(c.except.joined(separator: ", "))]")}}"
                    }
                    rule.append("\(dir): [\(peer)]")
                }
                if rng.chance(0.6) {
                    let proto = rng.pick(["TCP", "UDP"])
                    let ports = proto == "UDP" ? DifferentialTrafficTests.udpPorts : DifferentialTrafficTests.tcpPorts
                    if rng.chance(0.3) {
                        note(28080...28082)
                        rule.append("ports: [{protocol: \(proto), port: 28080, endPort: 28082}]")
                    } else {
                        let p = rng.pick(ports)
                        note(p...p)
                        rule.append("ports: [{protocol: \(proto), port: \(p)}]")
                    }
                }
                if rule.isEmpty { lines.append("  - {}") } else {
                    lines.append("  - " + rule[0]); lines += rule.dropFirst().map { "    " + $0 }
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}
