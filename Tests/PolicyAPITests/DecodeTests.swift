import Foundation
import Testing
@testable import PolicyAPI

@Suite struct DecodeTests {
    static let cnp = """
    apiVersion: cilium.io/v2
    kind: CiliumNetworkPolicy
    metadata:
      name: a
      namespace: prod
    spec:
      endpointSelector: {}
      ingress:
      - fromEntities: [world]
    """

    @Test func multiDocumentWithEmptyDocumentsAndComments() {
        let set = decode("""
        # leading comment
        ---
        \(Self.cnp)
        ---
        # only a comment
        ---
        ---
        apiVersion: v1
        kind: Namespace
        metadata:
          name: prod
          labels:
            team: a
        ...
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        #expect(set.resources.count == 2)
        #expect(set.resources.map(\.ref.kind) == [.ciliumNetworkPolicy, .namespace])
        #expect(set.resources[0].location.document == 0)
        #expect(set.resources[1].location.document == 3)
        #expect(set.resources[1].ref == ResourceRef(kind: .namespace, namespace: nil, name: "prod"))
        if case .namespace(let ns) = set.resources[1].body { #expect(ns.meta.labels == ["team": "a"]) } else { Issue.record("not a namespace") }
    }

    @Test func emptyFileAndCommentOnlyFile() {
        #expect(decode("").resources.isEmpty)
        #expect(decode("").errors.isEmpty)
        let c = decode("# nothing here\n---\n# still nothing\n")
        #expect(c.errors.isEmpty && c.resources.isEmpty && c.warnings.isEmpty)
    }

    @Test func kindList() {
        let set = decode("""
        apiVersion: v1
        kind: List
        metadata: {}
        items:
        - apiVersion: v1
          kind: Pod
          metadata: {name: web-1, namespace: prod, labels: {app: web}}
          spec:
            nodeName: node-a
            containers:
            - name: c
              image: nginx
              ports:
              - {name: http, containerPort: 8080}
          status:
            podIP: 10.0.0.5
        - apiVersion: apps/v1
          kind: Deployment
          metadata: {name: web}
        - apiVersion: cilium.io/v2
          kind: CiliumNetworkPolicy
          metadata: {name: p, namespace: prod}
          spec:
            endpointSelector: {}
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        #expect(set.resources.count == 2)
        #expect(set.resources.map(\.location.listItem) == [0, 2])
        #expect(set.resources[0].location.line == 5)
        #expect(set.warnings.count == 1)
        #expect(set.warnings.first?.message == "ignored: kind Deployment is not read by Membrane")
        #expect(set.warnings.first?.location.listItem == 1)
        guard case .pod(let pod) = set.resources[0].body else { Issue.record("not a pod"); return }
        #expect(pod.nodeName == "node-a")
        #expect(pod.serviceAccountName == "default")
        #expect(pod.podIPs == [IPAddress("10.0.0.5")!])
        #expect(pod.containerPorts == [ContainerPort(name: "http", containerPort: 8080, protocol: .tcp)])
    }

    @Test func badDocumentAmongGoodOnes() {
        let bad = Self.cnp.replacingOccurrences(of: "name: a", with: "name: b")
            .replacingOccurrences(of: "[world]", with: "[wrld]")
        let good2 = Self.cnp.replacingOccurrences(of: "name: a", with: "name: c")
        let set = decode([Self.cnp, bad, good2].joined(separator: "\n---\n"), file: "mixed.yaml")
        #expect(set.resources.map(\.ref.name) == ["a", "c"])
        #expect(set.errors.count == 1)
        let e = set.errors[0]
        #expect(e.location == SourceLocation(file: "mixed.yaml", document: 1, line: 11))
        #expect(e.resource == ResourceRef(kind: .ciliumNetworkPolicy, namespace: "prod", name: "b"))
        #expect(e.path == "spec.ingress[0].fromEntities[0]")
        #expect(e.line == 19)
        #expect(e.description.contains("mixed.yaml: document 1 line 19: CiliumNetworkPolicy prod/b: spec.ingress[0].fromEntities[0]: unknown entity \"wrld\""))
    }

    @Test func yamlErrorKeepsEarlierDocuments() {
        let set = decode(Self.cnp + "\n---\nkind: [unclosed\n")
        #expect(set.resources.count == 1)
        #expect(set.errors.count == 1)
        #expect(set.errors[0].location.document == 1)
        #expect(set.errors[0].message.hasPrefix("invalid YAML"))
    }

    @Test func duplicateResources() {
        let set = decode([Self.cnp, Self.cnp].joined(separator: "\n---\n"))
        #expect(set.resources.count == 1)
        #expect(set.errors.count == 1)
        #expect(set.errors[0].location.document == 1)
        #expect(set.errors[0].message.contains("duplicate CiliumNetworkPolicy prod/a"))
        // Same name in another namespace or another kind is not a duplicate.
        let other = Self.cnp.replacingOccurrences(of: "namespace: prod", with: "namespace: dev")
        #expect(decode([Self.cnp, other].joined(separator: "\n---\n")).resources.count == 2)
    }

    @Test func namespaceDefaultsToDefault() {
        let set = decode(Self.cnp.replacingOccurrences(of: "  namespace: prod\n", with: ""))
        #expect(set.resources.first?.ref.namespace == "default")
        if case .ciliumPolicy(let p) = set.resources.first?.body { #expect(p.meta.namespace == "default") }
    }

    @Test func specsAndSpecTogether() throws {
        let set = decode("""
        apiVersion: cilium.io/v2
        kind: CiliumClusterwideNetworkPolicy
        metadata:
          name: multi
          uid: 1234
          resourceVersion: "7"
          generation: 3
          creationTimestamp: "2024-10-01T17:45:25Z"
          annotations: {note: x}
        spec:
          endpointSelector: {}
          egress: [{toEntities: [world]}]
        specs:
        - nodeSelector: {matchLabels: {role: worker}}
          ingress: [{fromEntities: [cluster]}]
        - endpointSelector: {matchLabels: {app: a}}
          description: second
          labels: [{key: owner, value: team-a, source: k8s}]
        status:
          conditions: []
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let p = try #require(ciliumPolicies(set).first)
        #expect(p.specs.map(\.path) == ["spec", "specs[0]", "specs[1]"])
        #expect(p.specs[1].nodeSelector == LabelSelector(matchLabels: ["role": "worker"]))
        #expect(p.specs[2].labels == [RuleLabel(source: "k8s", key: "owner", value: "team-a")])
        #expect(p.specs[2].description == "second")
        #expect(p.meta.uid == "1234")
        #expect(p.meta.annotations == ["note": "x"])
    }

    @Test func jsonInput() {
        let set = decode("""
        {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
         "metadata": {"name": "j", "namespace": "x"},
         "spec": {"endpointSelector": {"matchLabels": {"app": "a"}},
                  "egress": [{"toCIDRSet": [{"cidr": "10.0.0.1/8", "except": ["10.1.0.0/16"]}]}]}}
        """, file: "p.json")
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let rule = ciliumPolicies(set).first?.specs.first?.egress?.first
        #expect(rule?.cidrSet == [CIDRRule(cidr: IPPrefix("10.0.0.0/8"), except: [IPPrefix("10.1.0.0/16")!])])
    }

    @Test func clusterObjects() throws {
        let set = decode("""
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: prod, labels: {app: web}}
        spec:
          type: ClusterIP
          selector: {app: web}
          clusterIP: 10.96.0.10
          clusterIPs: [10.96.0.10, "fd00::10"]
          ports:
          - {name: http, port: 80, targetPort: http, protocol: TCP}
          - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
          - {port: 443}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: headless, namespace: prod}
        spec: {clusterIP: None, selector: {app: db}}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
        spec: {podCIDR: 10.0.1.0/24}
        status:
          addresses:
          - {type: InternalIP, address: 172.18.0.3}
          - {type: Hostname, address: node-a}
          - {type: ExternalIP, address: "fc00:c111::3"}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: kubernetes, namespace: default}
        subsets:
        - addresses: [{ip: 172.18.0.2}]
          ports: [{name: https, port: 6443, protocol: TCP}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: host-pod, namespace: kube-system, ownerReferences: [{kind: DaemonSet}]}
        spec: {hostNetwork: true, serviceAccount: cilium, nodeName: node-a, containers: [{name: c}]}
        status: {phase: Running, podIPs: [{ip: 172.18.0.3}, {ip: "fc00:c111::3"}]}
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        try #require(set.resources.count == 5)
        guard case .service(let svc) = set.resources[0].body, case .service(let headless) = set.resources[1].body,
              case .node(let node) = set.resources[2].body, case .endpoints(let ep) = set.resources[3].body,
              case .pod(let pod) = set.resources[4].body else { Issue.record("kinds"); return }
        #expect(svc.selector == ["app": "web"])
        #expect(svc.clusterIPs == [IPAddress("10.96.0.10")!, IPAddress("fd00::10")!])
        #expect(svc.ports == [ServicePort(name: "http", port: 80, targetPort: .named("http"), protocol: .tcp),
                              ServicePort(name: "dns", port: 53, targetPort: .number(5353), protocol: .udp),
                              ServicePort(port: 443)])
        #expect(headless.clusterIPs.isEmpty)
        #expect(node.addresses == [IPAddress("172.18.0.3")!, IPAddress("fc00:c111::3")!])
        #expect(set.resources[2].ref.namespace == nil)
        #expect(ep.addresses == [IPAddress("172.18.0.2")!])
        #expect(ep.ports == [EndpointsObject.Port(name: "https", port: 6443)])
        #expect(pod.hostNetwork && pod.serviceAccountName == "cilium")
        #expect(pod.podIPs.count == 2)
    }

    @Test func clusterObjectTypeErrors() {
        let set = decode("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          hostNetwork: "yes"
          containers:
          - ports: [{containerPort: "8080"}]
        status: {podIP: 10.0.0.300}
        """)
        #expect(set.resources.isEmpty)
        #expect(Set(set.errors.map(\.path)) == ["spec.hostNetwork", "spec.containers[0].ports[0].containerPort", "status.podIP"])
    }

    @Test func unknownKindIsAWarning() {
        let set = decode("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n")
        #expect(set.errors.isEmpty && set.resources.isEmpty)
        #expect(set.warnings.map(\.message) == ["ignored: kind ConfigMap is not read by Membrane"])
    }

    @Test func kubernetesNetworkPolicy() throws {
        let set = decode("""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: np, namespace: prod}
        spec:
          podSelector: {matchLabels: {app: db}}
          policyTypes: [Ingress, Egress]
          ingress:
          - from:
            - podSelector: {matchLabels: {app: web}}
              namespaceSelector: {matchLabels: {team: a}}
            - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
            ports:
            - {port: 5432}
            - {protocol: UDP, port: 1000, endPort: 2000}
            - {port: postgres}
          egress:
          - {}
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let np = try #require(networkPolicies(set).first)
        #expect(np.podSelector == LabelSelector(matchLabels: ["app": "db"]))
        #expect(np.policyTypes == [.ingress, .egress])
        #expect(np.ingress?.first?.peers == [
            NetworkPolicyPeer(podSelector: LabelSelector(matchLabels: ["app": "web"]), namespaceSelector: LabelSelector(matchLabels: ["team": "a"])),
            NetworkPolicyPeer(ipBlock: IPBlock(cidr: IPPrefix("10.0.0.0/8")!, except: [IPPrefix("10.1.0.0/16")!]))])
        #expect(np.ingress?.first?.ports == [NetworkPolicyPort(port: .number(5432)),
                                             NetworkPolicyPort(protocol: .udp, port: .number(1000), endPort: 2000),
                                             NetworkPolicyPort(port: .named("postgres"))])
        #expect(np.egress == [NetworkPolicyRule()])
    }

    @Test func cidrGroup() throws {
        let set = decode("""
        apiVersion: cilium.io/v2alpha1
        kind: CiliumCIDRGroup
        metadata: {name: corp}
        spec: {externalCIDRs: [10.0.0.0/8, "2001:db8::/32"]}
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        guard case .cidrGroup(let g)? = set.resources.first?.body else { Issue.record("no group"); return }
        #expect(g.externalCIDRs == [IPPrefix("10.0.0.0/8")!, IPPrefix("2001:db8::/32")!])
        #expect(set.resources.first?.ref == ResourceRef(kind: .ciliumCIDRGroup, namespace: nil, name: "corp"))
    }

    @Test func loadPaths() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("membrane-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.cnp.write(to: dir.appendingPathComponent("b.yaml"), atomically: true, encoding: .utf8)
        try Self.cnp.replacingOccurrences(of: "name: a", with: "name: z")
            .write(to: dir.appendingPathComponent("sub/a.yml"), atomically: true, encoding: .utf8)
        try "not yaml at all: [".write(to: dir.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        let set = ManifestDecoder.load(paths: [dir.path, dir.appendingPathComponent("missing.yaml").path])
        #expect(set.resources.map(\.ref.name) == ["a", "z"])
        #expect(set.resources.map(\.location.file) == [dir.appendingPathComponent("b.yaml").path, dir.appendingPathComponent("sub/a.yml").path])
        #expect(set.errors.count == 1)
        #expect(set.errors.first?.message.contains("cannot read") == true)
        // The same file twice: every object is a duplicate the second time.
        let twice = ManifestDecoder.load(paths: [dir.appendingPathComponent("b.yaml").path, dir.appendingPathComponent("b.yaml").path])
        #expect(twice.resources.count == 1 && twice.errors.count == 1)
    }

    @Test func hugeFile() {
        var text = ""
        text.reserveCapacity(12_000_000)
        for i in 0..<20_000 {
            text += """
            ---
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: policy-\(i)
              namespace: ns-\(i % 50)
              labels: {team: t\(i % 7)}
            spec:
              endpointSelector:
                matchLabels: {app: app-\(i)}
              ingress:
              - fromEndpoints:
                - matchLabels: {app: client-\(i)}
                  matchExpressions: [{key: tier, operator: In, values: [a, b]}]
                toPorts:
                - ports: [{port: "\(1 + i % 60000)", protocol: TCP}]
                  rules:
                    http: [{method: GET, path: "/v1/.*"}]
              egress:
              - toCIDRSet: [{cidr: 10.\(i % 256).0.0/16, except: [10.\(i % 256).1.0/24]}]
              - toFQDNs: [{matchPattern: "*.example-\(i).com"}]

            """
        }
        let set = decode(text, file: "huge.yaml")
        #expect(set.errors.isEmpty, "\(describe(Array(set.errors.prefix(5))))")
        #expect(set.resources.count == 20_000)
        #expect(set.resources.last?.location.document == 19_999)
    }
}
