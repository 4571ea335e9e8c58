import Foundation
import MembraneTestSupport
import Testing
@testable import Datapath
import Policy
import PolicyAPI

/// Real endpoints (network namespaces behind veths), Membrane's BPF programs attached, the maps programmed
/// from the policy engine, and real TCP, UDP and ICMP traffic: the kernel must enforce what the engine decides.
@Suite(.serialized)
struct EnforcementTests {
    static let privileged = Plumbing.isRoot || ProcessInfo.processInfo.environment["CI"] != nil
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func privilegedSkipNotice() {
        if !Self.privileged { print("EnforcementTests: skipping privileged eBPF enforcement tests (not root and CI unset)") }
    }

    /// A small node: three endpoints in namespace `prod`, the engine, and the loaded datapath.
    final class Node {
        let root = "/sys/fs/bpf/membrane-test-\(getpid())"
        var engine = PolicyEngine()
        var datapath: BPFDatapath!
        var endpoints: [String: (plumbing: EndpointPlumbing, id: UInt16, identity: Identity)] = [:]

        init(_ pods: [(name: String, app: String, ip: String)]) throws {
            try Plumbing.prepareHost()
            let object = FileManager.default.temporaryDirectory.appendingPathComponent("membrane-test-\(getpid()).o")
            try BPFDatapath.compile(source: EnforcementTests.repo.appendingPathComponent("bpf/membrane.c"), output: object)
            datapath = try BPFDatapath(objectFile: object, root: root)
            for (i, pod) in pods.enumerated() {
                let id = UInt16(3700 + i)
                let plumbing = try Plumbing.createEndpoint(id: id, name: pod.name, ipv4: pod.ip)
                let labels = LabelSet([Label(source: "k8s", key: "app", value: pod.app),
                                       Label(source: "k8s", key: WellKnownLabel.podNamespace, value: "prod")])
                let identity = engine.allocateIdentity(labels)
                engine.upsertEndpoint(EndpointSubject(id: id, identity: identity))
                endpoints[pod.name] = (plumbing, id, identity)
            }
            try sync()
            for e in endpoints.values {
                try datapath.installEndpoint(ifindex: e.plumbing.hostIfindex, id: e.id, identity: e.identity.id, audit: false)
            }
        }

        /// Programs the ipcache and every endpoint's policy map from the engine.
        func sync() throws {
            var cache: [IPPrefix: NumericIdentity] = [:]
            for e in endpoints.values { cache[IPPrefix(e.plumbing.ipv4 + "/32")!] = e.identity.id }
            for (p, id) in engine.cidrIdentities { cache[p] = id }
            try datapath.syncIPCache(cache)
            for e in endpoints.values {
                let result = try datapath.syncPolicy(endpoint: e.id, state: engine.mapState(e.id)!)
                #expect(!result.overflow)
            }
        }

        func apply(_ yaml: String) throws {
            let set = ManifestDecoder.decode(yaml: yaml, file: "test.yaml")
            #expect(set.errors.isEmpty, "\(set.errors)")
            for r in set.resources { engine.apply(r.body, ref: r.ref) }
            try sync()
        }

        func tearDown() {
            for e in endpoints.values {
                try? datapath.removeEndpoint(ifindex: e.plumbing.hostIfindex, id: e.id)
                try? Plumbing.deleteEndpoint(e.plumbing)
            }
            datapath = nil
            BPFDatapath.unpinAll(root: root)
        }

        /// Starts a TCP or UDP echo server in `name`'s namespace for `seconds`.
        func serve(_ name: String, port: UInt16, udp: Bool = false, seconds: Double = 8) throws -> Process {
            let e = endpoints[name]!.plumbing
            let script = udp ? TrafficScripts.udpServer(ip: e.ipv4, port: Int(port), seconds: seconds)
                             : TrafficScripts.tcpServer(ip: e.ipv4, port: Int(port), seconds: seconds)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["ip", "netns", "exec", e.netns, "python3", "-c", script]
            try p.run()
            Thread.sleep(forTimeInterval: 0.3)
            return p
        }

        /// Whether `from` gets an answer from `to` on TCP/UDP `port` (or ICMP echo when port is nil).
        func reaches(_ from: String, _ to: String, port: UInt16? = nil, udp: Bool = false) throws -> Bool {
            let src = endpoints[from]!.plumbing, dst = endpoints[to]!.plumbing
            guard let port else {
                return try Plumbing.exec(src, ["ping", "-c", "1", "-W", "1", dst.ipv4], timeout: 5).status == 0
            }
            let script = udp ? TrafficScripts.udpProbe(ip: dst.ipv4, port: Int(port))
                             : TrafficScripts.tcpProbe(ip: dst.ipv4, port: Int(port))
            return TrafficScripts.count(try Plumbing.exec(src, ["python3", "-c", script], timeout: 5).stdout) == 1
        }
    }

    static let backendPolicy = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: backend, namespace: prod}
        spec:
          endpointSelector: {matchLabels: {app: backend}}
          ingress:
          - fromEndpoints: [{matchLabels: {app: frontend}}]
            toPorts: [{ports: [{port: "8080", protocol: TCP}, {port: "5353", protocol: UDP}]}]
          ingressDeny:
          - fromEndpoints: [{matchLabels: {app: intruder}}]
        """

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func kernelEnforcesTheEnginesVerdicts() throws {
        let node = try Node([("frontend", "frontend", "10.200.77.11"), ("backend", "backend", "10.200.77.12"),
                             ("intruder", "intruder", "10.200.77.13")])
        defer { node.tearDown() }
        let servers = try [node.serve("backend", port: 8080, seconds: 15), node.serve("backend", port: 9090, seconds: 15),
                           node.serve("backend", port: 5353, udp: true, seconds: 15)]
        defer { servers.forEach { $0.terminate() } }

        // No policy yet: everything flows.
        #expect(try node.reaches("intruder", "backend", port: 8080))
        #expect(try node.reaches("frontend", "backend"))

        try node.apply(Self.backendPolicy)
        let backend = node.endpoints["backend"]!.id
        let deniedBefore = node.datapath.dropCount(.policyDeny, direction: .ingress)
        let defaultDeniedBefore = node.datapath.dropCount(.policyDenied, direction: .ingress)

        #expect(try node.reaches("frontend", "backend", port: 8080), "allowed by the policy, replies by conntrack")
        #expect(try node.reaches("frontend", "backend", port: 5353, udp: true))
        #expect(try !node.reaches("frontend", "backend", port: 9090), "default deny on another port")
        #expect(try !node.reaches("frontend", "backend"), "an L4 rule does not allow ICMP")
        #expect(try !node.reaches("intruder", "backend", port: 8080), "explicit deny")
        #expect(try node.reaches("backend", "frontend"), "an ingress-only policy leaves egress open")
        #expect(node.datapath.dropCount(.policyDeny, direction: .ingress) > deniedBefore)
        #expect(node.datapath.dropCount(.policyDenied, direction: .ingress) > defaultDeniedBefore)

        // The kernel's map is the engine's map state, read back.
        let kernel = try node.datapath.readPolicy(endpoint: backend)
        #expect(Set(kernel.map(\.key)) == Set(node.engine.mapState(backend)!.entries.keys))

        // A policy change takes effect on the next connection.
        try node.apply(Self.backendPolicy.replacingOccurrences(of: "app: frontend", with: "app: nobody"))
        #expect(try !node.reaches("frontend", "backend", port: 8080))
    }

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func differentialAgainstTheEngineLookup() throws {
        let node = try Node([("a", "web", "10.200.78.21"), ("b", "db", "10.200.78.22"), ("c", "batch", "10.200.78.23")])
        defer { node.tearDown() }
        try node.apply("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: db, namespace: prod}
            spec:
              endpointSelector: {matchLabels: {app: db}}
              ingress:
              - fromEndpoints: [{matchLabels: {app: web}}]
                toPorts: [{ports: [{port: "7000", endPort: 7003, protocol: TCP}]}]
              - toPorts: [{ports: [{port: "7010", protocol: ANY}]}]
              ingressDeny:
              - fromEndpoints: [{matchLabels: {app: batch}}]
                toPorts: [{ports: [{port: "7002", protocol: TCP}]}]
            ---
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: batch, namespace: prod}
            spec:
              endpointSelector: {matchLabels: {app: batch}}
              egress:
              - toEndpoints: [{matchLabels: {app: db}}]
            """)
        let ports: [UInt16] = [7000, 7002, 7004, 7010]
        let servers = try ports.map { try node.serve("b", port: $0, seconds: 20) }
        defer { servers.forEach { $0.terminate() } }
        for src in ["a", "c"] {
            for port in ports {
                let srcID = node.endpoints[src]!.identity.id, dst = node.endpoints["b"]!
                let egress = node.engine.mapState(node.endpoints[src]!.id)!.lookup(direction: .egress, identity: dst.identity.id, proto: IPProtocol.tcp, port: port)
                let ingress = node.engine.mapState(dst.id)!.lookup(direction: .ingress, identity: srcID, proto: IPProtocol.tcp, port: port)
                let expected = egress.map { !$0.entry.isDeny } == true && ingress.map { !$0.entry.isDeny } == true
                #expect(try node.reaches(src, "b", port: port) == expected, "\(src) → b:\(port)")
            }
        }
    }

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func endpointRemovalLeavesNothingBehind() throws {
        let node = try Node([("solo", "solo", "10.200.79.31")])
        let root = node.root
        node.tearDown()
        #expect(!FileManager.default.fileExists(atPath: root))
        let left = Plumbing.leftovers()
        #expect(!left.netns.contains { $0.hasSuffix("3700") })
        #expect(!left.links.contains("mbh3700"))
    }
}

@Suite(.serialized)
struct DetachTests {
    /// Removing an endpoint detaches the programs from its interface even while the interface lives on.
    @Test(.enabled(if: EnforcementTests.privileged, "needs root (or CI)"))
    func removeEndpointDetachesPrograms() throws {
        let root = "/sys/fs/bpf/membrane-detach-\(getpid())"
        let object = FileManager.default.temporaryDirectory.appendingPathComponent("membrane-detach-\(getpid()).o")
        try BPFDatapath.compile(source: EnforcementTests.repo.appendingPathComponent("bpf/membrane.c"), output: object)
        let datapath = try BPFDatapath(objectFile: object, root: root)
        defer { BPFDatapath.unpinAll(root: root) }
        let e = try Plumbing.createEndpoint(id: 3790, name: "detach", ipv4: "10.200.79.90")
        defer { try? Plumbing.deleteEndpoint(e) }
        func filters() throws -> String { try runCommand(["tc", "filter", "show", "dev", e.hostInterface, "ingress"]).out }
        try datapath.installEndpoint(ifindex: e.hostIfindex, id: 3790, identity: 300, audit: false)
        #expect(try filters().contains("from_container"))
        try datapath.removeEndpoint(ifindex: e.hostIfindex, id: 3790)
        #expect(try !filters().contains("from_container"), "programs still attached after removeEndpoint")
    }
}
