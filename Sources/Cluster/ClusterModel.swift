import PolicyAPI
import Policy

/// A local endpoint as the cluster model knows it: a pod (or a node's host endpoint) with its identity.
public struct EndpointInfo: Hashable, Sendable {
    public var id: UInt16
    public var namespace: String?
    public var podName: String?
    public var nodeName: String
    public var identity: Identity
    public var addresses: [IPAddress]
    public var isHost: Bool
    public var namedPorts: [NamedPort]

    public var displayName: String {
        if isHost { return "host (\(nodeName))" }
        return "\(namespace ?? "")/\(podName ?? "")"
    }
}

/// The cluster described by a set of manifests: namespaces, pods, nodes, services and policies, and the
/// policy engine computed over them.
///
/// Pods on `hostNetwork` are their node's host. Pod identity labels are Cilium's: the pod's labels, its
/// namespace, the namespace's labels, its service account and the cluster name, through the
/// identity-relevant label filter.
public struct ClusterModel: Sendable {
    public var namespaces: [String: NamespaceObject] = [:]
    public var pods: [ResourceRef: PodObject] = [:]
    public var nodes: [String: NodeObject] = [:]
    public var services: [ResourceRef: ServiceObject] = [:]
    public var endpointsObjects: [ResourceRef: EndpointsObject] = [:]
    public var cidrGroups: [String: CiliumCIDRGroup] = [:]
    public var policies: [Resource] = []
    public var clusterName = "default"
    public var labelFilter = LabelFilter.cilium

    public private(set) var engine: PolicyEngine
    public private(set) var endpoints: [UInt16: EndpointInfo] = [:]
    public private(set) var endpointByPod: [ResourceRef: UInt16] = [:]
    public private(set) var hostEndpointByNode: [String: UInt16] = [:]
    /// The identity of a kube-apiserver that runs outside the cluster (`kube-apiserver` + `world`).
    public private(set) var externalAPIServerIdentity: NumericIdentity?

    public init(manifests: ManifestSet, settings: EngineSettings = EngineSettings()) {
        engine = PolicyEngine(settings: settings)
        for r in manifests.resources {
            switch r.body {
            case .namespace(let n): namespaces[n.meta.name] = n
            case .pod(let p): pods[r.ref] = p
            case .node(let n): nodes[n.meta.name] = n
            case .service(let s): services[r.ref] = s
            case .endpoints(let e): endpointsObjects[r.ref] = e
            case .cidrGroup(let g): cidrGroups[g.meta.name] = g
            case .ciliumPolicy, .networkPolicy: policies.append(r)
            }
        }
        var s = settings
        if !s.dualStack {
            // Dual-stack when the cluster's own addresses (pods and nodes) use both families.
            let addresses = pods.values.flatMap(\.podIPs) + nodes.values.flatMap(\.addresses)
            s.dualStack = addresses.contains { $0.isIPv4 } && addresses.contains { !$0.isIPv4 }
        }
        engine = PolicyEngine(settings: s, context: policyContext())
        build()
    }

    // MARK: Labels

    /// Cilium's labels for a pod, before the identity-relevant filter.
    public func podLabels(_ pod: PodObject) -> LabelSet {
        let ns = pod.meta.namespace ?? "default"
        return WorkloadLabels.of(namespace: ns, labels: pod.meta.labels, namespaceLabels: namespaces[ns]?.meta.labels ?? [:],
                                 serviceAccount: pod.serviceAccountName, clusterName: clusterName)
    }

    public func identityLabels(_ pod: PodObject) -> LabelSet { labelFilter.filter(podLabels(pod)) }

    /// The host endpoint's labels: `reserved:host` and the node's labels.
    public func hostLabels(_ node: NodeObject) -> LabelSet {
        LabelSet([ReservedIdentity.host.label] + node.meta.labels.map { Label(source: LabelSource.k8s, key: $0.key, value: $0.value) })
    }

    // MARK: Building

    func policyContext() -> PolicyContext {
        var ctx = PolicyContext()
        ctx.clusterName = clusterName
        ctx.cidrGroups = cidrGroups.mapValues(\.externalCIDRs)
        ctx.services = services.map { ref, svc in
            let eps = endpointsObjects[ResourceRef(kind: .endpoints, namespace: ref.namespace, name: ref.name)]
            return PolicyContext.ServiceInfo(namespace: ref.namespace ?? "default", name: ref.name, labels: svc.meta.labels,
                                             selector: svc.selector, backendAddresses: eps?.addresses ?? [])
        }.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        return ctx
    }

    /// Deterministic endpoint IDs (1…4095), a hash of the endpoint's name with probing, like stable small IDs.
    static func endpointID(for name: String, taken: Set<UInt16>) -> UInt16 {
        var h: UInt32 = 2166136261
        for b in name.utf8 { h = (h ^ UInt32(b)) &* 16777619 }
        var id = UInt16(h % 4095) + 1
        while taken.contains(id) { id = id == 4095 ? 1 : id + 1 }
        return id
    }

    mutating func build() {
        // Identities first, in sorted order so allocation is deterministic.
        var taken = Set<UInt16>()
        for name in nodes.keys.sorted() {
            let node = nodes[name]!
            let id = ClusterModel.endpointID(for: "host/" + name, taken: taken); taken.insert(id)
            let info = EndpointInfo(id: id, namespace: nil, podName: nil, nodeName: name,
                                    identity: Identity(id: ReservedIdentity.host.rawValue, labels: hostLabels(node)),
                                    addresses: node.addresses, isHost: true, namedPorts: [])
            endpoints[id] = info; hostEndpointByNode[name] = id
        }
        var allPorts: [NamedPort] = []
        let podRefs = pods.keys.sorted()
        let labelSets = Set(podRefs.filter { !pods[$0]!.hostNetwork }.map { identityLabels(pods[$0]!) }).sorted()
        var idByLabels: [LabelSet: Identity] = [:]
        for ls in labelSets { idByLabels[ls] = engine.allocateIdentity(ls) }
        for ref in podRefs {
            let pod = pods[ref]!
            let ports = pod.containerPorts.compactMap { cp in
                cp.name.map { NamedPort(name: $0, proto: cp.protocol == .any ? IPProtocol.tcp : cp.protocol.number, port: cp.containerPort) }
            }
            allPorts += ports
            if pod.hostNetwork { continue }
            let id = ClusterModel.endpointID(for: ref.qualifiedName, taken: taken); taken.insert(id)
            let info = EndpointInfo(id: id, namespace: ref.namespace, podName: ref.name, nodeName: pod.nodeName ?? "",
                                    identity: idByLabels[identityLabels(pod)]!, addresses: pod.podIPs, isHost: false,
                                    namedPorts: ports)
            endpoints[id] = info; endpointByPod[ref] = id
        }
        engine.setClusterNamedPorts(allPorts)
        if let ip = apiServerAddresses.sorted().first(where: { node(owning: $0) == nil && pod(owning: $0) == nil }) {
            externalAPIServerIdentity = engine.apiServerIdentity(ip)
        }
        for r in policies { engine.apply(r.body, ref: r.ref) }
        for id in endpoints.keys.sorted() {
            let e = endpoints[id]!
            engine.upsertEndpoint(EndpointSubject(id: id, identity: e.identity, isHost: e.isHost, namedPorts: e.namedPorts))
        }
    }

    // MARK: Lookups

    public func endpoint(namespace: String, pod: String) -> EndpointInfo? {
        let ref = ResourceRef(kind: .pod, namespace: namespace, name: pod)
        if let id = endpointByPod[ref] { return endpoints[id] }
        if let p = pods[ref], p.hostNetwork, let node = p.nodeName, let id = hostEndpointByNode[node] { return endpoints[id] }
        return nil
    }

    /// The IPs the `default/kubernetes` Endpoints object lists: the kube-apiserver.
    public var apiServerAddresses: Set<IPAddress> {
        Set(endpointsObjects[ResourceRef(kind: .endpoints, namespace: "default", name: "kubernetes")]?.addresses ?? [])
    }

    public func node(owning ip: IPAddress) -> String? {
        nodes.first { $0.value.addresses.contains(ip) }?.key
    }

    public func pod(owning ip: IPAddress) -> ResourceRef? {
        pods.keys.sorted().first { pods[$0]!.podIPs.contains(ip) && !pods[$0]!.hostNetwork }
    }

    public func service(withClusterIP ip: IPAddress) -> ResourceRef? {
        services.keys.sorted().first { services[$0]!.clusterIPs.contains(ip) }
    }

    public var sortedEndpoints: [EndpointInfo] { endpoints.values.sorted { $0.id < $1.id } }

    /// Allocates the FQDN identity for an address learned through DNS (used by `policy trace --dns`).
    public mutating func learnDNS(name: String, address: IPAddress) -> Identity? {
        engine.fqdnIdentity(name: name, address: address)
    }
}
