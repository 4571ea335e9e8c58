/// The Kubernetes and Cilium resources Membrane reads, as plain values.
///
/// These mirror the CRD schemas field for field (names as in the YAML), after decoding and validation:
/// a value of these types is always well-formed. Semantics (what a selector selects, what a rule allows)
/// live in the `Policy` module; this module only says what the user wrote and where.

/// Where a resource came from, so that every error and every trace can point back to it.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    /// Zero-based index of the YAML document in the file (`---` separated).
    public var document: Int
    /// One-based line of the document's start, when known.
    public var line: Int?
    /// For items of a `kind: List`, the index within `items`.
    public var listItem: Int?

    public init(file: String, document: Int, line: Int? = nil, listItem: Int? = nil) {
        self.file = file; self.document = document; self.line = line; self.listItem = listItem
    }

    public var description: String {
        var s = "\(file): document \(document)"
        if let listItem { s += " item \(listItem)" }
        if let line { s += " (line \(line))" }
        return s
    }
}

public enum ResourceKind: String, Sendable, Hashable, CaseIterable, Codable {
    case ciliumNetworkPolicy = "CiliumNetworkPolicy"
    case ciliumClusterwideNetworkPolicy = "CiliumClusterwideNetworkPolicy"
    case networkPolicy = "NetworkPolicy"
    case ciliumCIDRGroup = "CiliumCIDRGroup"
    case namespace = "Namespace"
    case pod = "Pod"
    case node = "Node"
    case service = "Service"
    case endpoints = "Endpoints"

    /// The apiVersion each kind must carry.
    public var apiVersion: String {
        switch self {
        case .ciliumNetworkPolicy, .ciliumClusterwideNetworkPolicy: return "cilium.io/v2"
        case .networkPolicy: return "networking.k8s.io/v1"
        case .ciliumCIDRGroup: return "cilium.io/v2alpha1"
        case .namespace, .pod, .node, .service, .endpoints: return "v1"
        }
    }

    public var isNamespaced: Bool {
        switch self {
        case .ciliumClusterwideNetworkPolicy, .ciliumCIDRGroup, .namespace, .node: return false
        default: return true
        }
    }
}

/// `Kind namespace/name` (or `Kind name` for cluster-scoped kinds), the way errors and traces name a resource.
public struct ResourceRef: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var kind: ResourceKind
    public var namespace: String?
    public var name: String

    public init(kind: ResourceKind, namespace: String?, name: String) {
        self.kind = kind; self.namespace = namespace; self.name = name
    }

    public var qualifiedName: String { namespace.map { "\($0)/\(name)" } ?? name }
    public var description: String { "\(kind.rawValue) \(qualifiedName)" }

    public static func < (a: ResourceRef, b: ResourceRef) -> Bool {
        (a.kind.rawValue, a.namespace ?? "", a.name) < (b.kind.rawValue, b.namespace ?? "", b.name)
    }
}

public struct ObjectMeta: Hashable, Sendable {
    public var name: String
    public var namespace: String?
    public var labels: [String: String]
    public var annotations: [String: String]
    public var uid: String?

    public init(name: String, namespace: String? = nil, labels: [String: String] = [:],
                annotations: [String: String] = [:], uid: String? = nil) {
        self.name = name; self.namespace = namespace; self.labels = labels
        self.annotations = annotations; self.uid = uid
    }
}

// MARK: - Selectors

/// A Kubernetes label selector as written. Keys may carry a Cilium source prefix (`k8s:app`, `reserved:host`).
public struct LabelSelector: Hashable, Sendable {
    public var matchLabels: [String: String]
    public var matchExpressions: [LabelSelectorRequirement]

    public init(matchLabels: [String: String] = [:], matchExpressions: [LabelSelectorRequirement] = []) {
        self.matchLabels = matchLabels; self.matchExpressions = matchExpressions
    }

    /// `{}`: selects everything in its scope.
    public var isEmpty: Bool { matchLabels.isEmpty && matchExpressions.isEmpty }
}

public struct LabelSelectorRequirement: Hashable, Sendable {
    public enum Operator: String, Hashable, Sendable, CaseIterable {
        case `in` = "In", notIn = "NotIn", exists = "Exists", doesNotExist = "DoesNotExist"
    }
    public var key: String
    public var `operator`: Operator
    public var values: [String]

    public init(key: String, operator: Operator, values: [String] = []) {
        self.key = key; self.operator = `operator`; self.values = values
    }
}

/// The named entities of `fromEntities` / `toEntities`.
public enum Entity: String, Hashable, Sendable, CaseIterable, Comparable {
    case all, world, worldIPv4 = "world-ipv4", worldIPv6 = "world-ipv6", cluster, host
    case remoteNode = "remote-node", kubeAPIServer = "kube-apiserver", `init`, health, unmanaged, ingress

    public static func < (a: Entity, b: Entity) -> Bool { a.rawValue < b.rawValue }
}

/// One element of `fromCIDRSet` / `toCIDRSet` (also used for plain `fromCIDR` entries, without except).
public struct CIDRRule: Hashable, Sendable {
    /// Exactly one of `cidr` and `cidrGroupRef` is set.
    public var cidr: IPPrefix?
    public var cidrGroupRef: String?
    public var except: [IPPrefix]

    public init(cidr: IPPrefix? = nil, cidrGroupRef: String? = nil, except: [IPPrefix] = []) {
        self.cidr = cidr; self.cidrGroupRef = cidrGroupRef; self.except = except
    }
}

/// `toFQDNs` entries and DNS L7 rules: exactly one of the two is set.
public struct FQDNSelector: Hashable, Sendable, CustomStringConvertible {
    public var matchName: String?
    public var matchPattern: String?

    public init(matchName: String? = nil, matchPattern: String? = nil) {
        self.matchName = matchName; self.matchPattern = matchPattern
    }

    public var description: String {
        if let matchName { return "matchName: \(matchName)" }
        return "matchPattern: \(matchPattern ?? "")"
    }
}

/// `toServices` entries: exactly one of the two is set.
public struct ServiceSelector: Hashable, Sendable {
    public struct ServiceRef: Hashable, Sendable {
        public var serviceName: String
        public var namespace: String?
        public init(serviceName: String, namespace: String? = nil) { self.serviceName = serviceName; self.namespace = namespace }
    }
    public struct ServiceLabelSelector: Hashable, Sendable {
        public var selector: LabelSelector
        public var namespace: String?
        public init(selector: LabelSelector, namespace: String? = nil) { self.selector = selector; self.namespace = namespace }
    }
    public var k8sService: ServiceRef?
    public var k8sServiceSelector: ServiceLabelSelector?

    public init(k8sService: ServiceRef? = nil, k8sServiceSelector: ServiceLabelSelector? = nil) {
        self.k8sService = k8sService; self.k8sServiceSelector = k8sServiceSelector
    }
}

// MARK: - Ports and L7

public enum L4Protocol: String, Hashable, Sendable, CaseIterable, Comparable {
    case tcp = "TCP", udp = "UDP", sctp = "SCTP", any = "ANY"

    /// IANA protocol number; 0 for ANY.
    public var number: UInt8 {
        switch self { case .tcp: 6; case .udp: 17; case .sctp: 132; case .any: 0 }
    }

    public static func < (a: L4Protocol, b: L4Protocol) -> Bool { a.number < b.number }
}

/// A port as written: a number, an IANA service name resolved against container ports, or any (`0` / absent).
public enum PortSpec: Hashable, Sendable, CustomStringConvertible {
    case any
    case number(UInt16)
    case named(String)

    public var description: String {
        switch self { case .any: "0"; case .number(let n): String(n); case .named(let s): s }
    }
}

public struct PortProtocol: Hashable, Sendable {
    public var port: PortSpec
    /// Inclusive end of a range `port...endPort`; only with a numeric port.
    public var endPort: UInt16?
    public var `protocol`: L4Protocol

    public init(port: PortSpec, endPort: UInt16? = nil, protocol: L4Protocol = .any) {
        self.port = port; self.endPort = endPort; self.protocol = `protocol`
    }
}

public struct HTTPHeaderMatch: Hashable, Sendable {
    public enum Mismatch: String, Hashable, Sendable, CaseIterable { case log = "LOG", add = "ADD", delete = "DELETE", replace = "REPLACE" }
    public var name: String
    public var value: String?
    public var mismatch: Mismatch?
    public init(name: String, value: String? = nil, mismatch: Mismatch? = nil) {
        self.name = name; self.value = value; self.mismatch = mismatch
    }
}

/// One `rules.http` entry. `path`, `method` and `host` are POSIX extended regular expressions matched
/// against the whole value (Envoy's anchored semantics); `headers` are `Name` or `Name: value` strings.
public struct HTTPRule: Hashable, Sendable {
    public var method: String?
    public var path: String?
    public var host: String?
    public var headers: [String]
    public var headerMatches: [HTTPHeaderMatch]

    public init(method: String? = nil, path: String? = nil, host: String? = nil,
                headers: [String] = [], headerMatches: [HTTPHeaderMatch] = []) {
        self.method = method; self.path = path; self.host = host
        self.headers = headers; self.headerMatches = headerMatches
    }
}

/// One `rules.kafka` entry. `role` (produce/consume) and `apiKey` are mutually exclusive.
public struct KafkaRule: Hashable, Sendable {
    public var role: String?
    public var apiKey: String?
    public var apiVersion: String?
    public var clientID: String?
    public var topic: String?

    public init(role: String? = nil, apiKey: String? = nil, apiVersion: String? = nil,
                clientID: String? = nil, topic: String? = nil) {
        self.role = role; self.apiKey = apiKey; self.apiVersion = apiVersion
        self.clientID = clientID; self.topic = topic
    }
}

/// `toPorts[].rules`: at most one protocol is set.
public enum L7Rules: Hashable, Sendable {
    case http([HTTPRule])
    case kafka([KafkaRule])
    case dns([FQDNSelector])

    public var parserName: String {
        switch self { case .http: "http"; case .kafka: "kafka"; case .dns: "dns" }
    }
}

public struct PortRule: Hashable, Sendable {
    public var ports: [PortProtocol]
    public var rules: L7Rules?

    public init(ports: [PortProtocol], rules: L7Rules? = nil) { self.ports = ports; self.rules = rules }
}

public enum IPFamily: String, Hashable, Sendable { case ipv4 = "IPv4", ipv6 = "IPv6" }

public struct ICMPField: Hashable, Sendable {
    public var family: IPFamily
    public var type: UInt8
    public init(family: IPFamily = .ipv4, type: UInt8) { self.family = family; self.type = type }
}

public enum AuthenticationMode: String, Hashable, Sendable, CaseIterable {
    case disabled, required, testAlwaysFail = "test-always-fail"
}

// MARK: - Rules

/// One element of `ingress`, `ingressDeny`, `egress` or `egressDeny`.
///
/// Ingress and egress rules share one shape: `peers` holds `fromX` for ingress and `toX` for egress.
/// A field left out is `nil`; an explicitly empty list is `[]` (Cilium gives both the same meaning,
/// but keeping them apart lets errors and traces quote the policy faithfully).
public struct PolicyRule: Hashable, Sendable {
    public var endpoints: [LabelSelector]?
    public var requires: [LabelSelector]?
    public var nodes: [LabelSelector]?
    public var cidr: [IPPrefix]?
    public var cidrSet: [CIDRRule]?
    public var entities: [Entity]?
    /// Egress allow rules only.
    public var fqdns: [FQDNSelector]?
    /// Egress rules only.
    public var services: [ServiceSelector]?
    public var toPorts: [PortRule]?
    public var icmps: [[ICMPField]]?
    public var authentication: AuthenticationMode?

    public init(endpoints: [LabelSelector]? = nil, requires: [LabelSelector]? = nil, nodes: [LabelSelector]? = nil,
                cidr: [IPPrefix]? = nil, cidrSet: [CIDRRule]? = nil, entities: [Entity]? = nil,
                fqdns: [FQDNSelector]? = nil, services: [ServiceSelector]? = nil,
                toPorts: [PortRule]? = nil, icmps: [[ICMPField]]? = nil, authentication: AuthenticationMode? = nil) {
        self.endpoints = endpoints; self.requires = requires; self.nodes = nodes
        self.cidr = cidr; self.cidrSet = cidrSet; self.entities = entities
        self.fqdns = fqdns; self.services = services; self.toPorts = toPorts
        self.icmps = icmps; self.authentication = authentication
    }

    /// True when the rule names no peer at all (only ports, or nothing).
    public var hasNoPeerSelector: Bool {
        (endpoints ?? []).isEmpty && (nodes ?? []).isEmpty && (cidr ?? []).isEmpty && (cidrSet ?? []).isEmpty
            && (entities ?? []).isEmpty && (fqdns ?? []).isEmpty && (services ?? []).isEmpty
    }
}

public struct DefaultDenyConfig: Hashable, Sendable {
    public var ingress: Bool?
    public var egress: Bool?
    public init(ingress: Bool? = nil, egress: Bool? = nil) { self.ingress = ingress; self.egress = egress }
}

/// A label attached to a rule (`spec.labels`), `source:key=value`.
public struct RuleLabel: Hashable, Sendable {
    public var source: String
    public var key: String
    public var value: String
    public init(source: String = "unspec", key: String, value: String = "") {
        self.source = source; self.key = key; self.value = value
    }
}

/// One `spec` (or one element of `specs`) of a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
public struct PolicySpec: Hashable, Sendable {
    /// Exactly one of `endpointSelector` and `nodeSelector` is set.
    public var endpointSelector: LabelSelector?
    public var nodeSelector: LabelSelector?
    public var ingress: [PolicyRule]?
    public var ingressDeny: [PolicyRule]?
    public var egress: [PolicyRule]?
    public var egressDeny: [PolicyRule]?
    public var enableDefaultDeny: DefaultDenyConfig
    public var description: String?
    public var labels: [RuleLabel]
    /// `spec` or `specs[i]`, for attribution in traces.
    public var path: String

    public init(endpointSelector: LabelSelector? = nil, nodeSelector: LabelSelector? = nil,
                ingress: [PolicyRule]? = nil, ingressDeny: [PolicyRule]? = nil,
                egress: [PolicyRule]? = nil, egressDeny: [PolicyRule]? = nil,
                enableDefaultDeny: DefaultDenyConfig = .init(), description: String? = nil,
                labels: [RuleLabel] = [], path: String = "spec") {
        self.endpointSelector = endpointSelector; self.nodeSelector = nodeSelector
        self.ingress = ingress; self.ingressDeny = ingressDeny; self.egress = egress; self.egressDeny = egressDeny
        self.enableDefaultDeny = enableDefaultDeny; self.description = description
        self.labels = labels; self.path = path
    }
}

/// A CiliumNetworkPolicy (namespaced) or CiliumClusterwideNetworkPolicy (`ref.namespace == nil`).
public struct CiliumPolicy: Hashable, Sendable {
    public var ref: ResourceRef
    public var meta: ObjectMeta
    /// `spec` (if present) followed by `specs`.
    public var specs: [PolicySpec]

    public init(ref: ResourceRef, meta: ObjectMeta, specs: [PolicySpec]) {
        self.ref = ref; self.meta = meta; self.specs = specs
    }
}

// MARK: - Kubernetes NetworkPolicy

public struct IPBlock: Hashable, Sendable {
    public var cidr: IPPrefix
    public var except: [IPPrefix]
    public init(cidr: IPPrefix, except: [IPPrefix] = []) { self.cidr = cidr; self.except = except }
}

public struct NetworkPolicyPeer: Hashable, Sendable {
    public var podSelector: LabelSelector?
    public var namespaceSelector: LabelSelector?
    public var ipBlock: IPBlock?
    public init(podSelector: LabelSelector? = nil, namespaceSelector: LabelSelector? = nil, ipBlock: IPBlock? = nil) {
        self.podSelector = podSelector; self.namespaceSelector = namespaceSelector; self.ipBlock = ipBlock
    }
}

public struct NetworkPolicyPort: Hashable, Sendable {
    /// Defaults to TCP when omitted, as in Kubernetes.
    public var `protocol`: L4Protocol
    /// `nil` means all ports.
    public var port: PortSpec?
    public var endPort: UInt16?
    public init(protocol: L4Protocol = .tcp, port: PortSpec? = nil, endPort: UInt16? = nil) {
        self.protocol = `protocol`; self.port = port; self.endPort = endPort
    }
}

/// One element of `spec.ingress` (`from`) or `spec.egress` (`to`).
public struct NetworkPolicyRule: Hashable, Sendable {
    /// `nil` or empty: all peers.
    public var peers: [NetworkPolicyPeer]?
    /// `nil` or empty: all ports.
    public var ports: [NetworkPolicyPort]?
    public init(peers: [NetworkPolicyPeer]? = nil, ports: [NetworkPolicyPort]? = nil) {
        self.peers = peers; self.ports = ports
    }
}

public enum PolicyType: String, Hashable, Sendable { case ingress = "Ingress", egress = "Egress" }

public struct NetworkPolicy: Hashable, Sendable {
    public var ref: ResourceRef
    public var meta: ObjectMeta
    public var podSelector: LabelSelector
    public var ingress: [NetworkPolicyRule]?
    public var egress: [NetworkPolicyRule]?
    /// As written; `nil` when omitted (then Ingress, plus Egress when `egress` is present).
    public var policyTypes: [PolicyType]?

    public init(ref: ResourceRef, meta: ObjectMeta, podSelector: LabelSelector,
                ingress: [NetworkPolicyRule]? = nil, egress: [NetworkPolicyRule]? = nil, policyTypes: [PolicyType]? = nil) {
        self.ref = ref; self.meta = meta; self.podSelector = podSelector
        self.ingress = ingress; self.egress = egress; self.policyTypes = policyTypes
    }

    /// The policy types in force, with Kubernetes' defaulting.
    public var effectivePolicyTypes: Set<PolicyType> {
        if let policyTypes { return Set(policyTypes) }
        return (egress ?? []).isEmpty ? [.ingress] : [.ingress, .egress]
    }
}

// MARK: - CIDR groups

public struct CiliumCIDRGroup: Hashable, Sendable {
    public var meta: ObjectMeta
    public var externalCIDRs: [IPPrefix]
    public init(meta: ObjectMeta, externalCIDRs: [IPPrefix]) { self.meta = meta; self.externalCIDRs = externalCIDRs }
}

// MARK: - Cluster objects

public struct NamespaceObject: Hashable, Sendable {
    public var meta: ObjectMeta
    public init(meta: ObjectMeta) { self.meta = meta }
}

public struct ContainerPort: Hashable, Sendable {
    public var name: String?
    public var containerPort: UInt16
    public var `protocol`: L4Protocol
    public init(name: String? = nil, containerPort: UInt16, protocol: L4Protocol = .tcp) {
        self.name = name; self.containerPort = containerPort; self.protocol = `protocol`
    }
}

public struct PodObject: Hashable, Sendable {
    public var meta: ObjectMeta
    public var nodeName: String?
    /// Defaults to `default`.
    public var serviceAccountName: String
    public var hostNetwork: Bool
    /// `status.podIPs` (or `status.podIP`).
    public var podIPs: [IPAddress]
    public var containerPorts: [ContainerPort]

    public init(meta: ObjectMeta, nodeName: String? = nil, serviceAccountName: String = "default",
                hostNetwork: Bool = false, podIPs: [IPAddress] = [], containerPorts: [ContainerPort] = []) {
        self.meta = meta; self.nodeName = nodeName; self.serviceAccountName = serviceAccountName
        self.hostNetwork = hostNetwork; self.podIPs = podIPs; self.containerPorts = containerPorts
    }
}

public struct NodeObject: Hashable, Sendable {
    public var meta: ObjectMeta
    /// `status.addresses` of type InternalIP (and ExternalIP, which also belong to the node).
    public var addresses: [IPAddress]
    public init(meta: ObjectMeta, addresses: [IPAddress] = []) { self.meta = meta; self.addresses = addresses }
}

public struct ServicePort: Hashable, Sendable {
    public var name: String?
    public var port: UInt16
    /// Defaults to `port`.
    public var targetPort: PortSpec
    public var `protocol`: L4Protocol
    public init(name: String? = nil, port: UInt16, targetPort: PortSpec? = nil, protocol: L4Protocol = .tcp) {
        self.name = name; self.port = port; self.targetPort = targetPort ?? .number(port); self.protocol = `protocol`
    }
}

public struct ServiceObject: Hashable, Sendable {
    public var meta: ObjectMeta
    /// `nil` for a selectorless Service (backends come from an Endpoints object).
    public var selector: [String: String]?
    /// `spec.clusterIP(s)`; empty for headless Services.
    public var clusterIPs: [IPAddress]
    public var ports: [ServicePort]
    public init(meta: ObjectMeta, selector: [String: String]? = nil, clusterIPs: [IPAddress] = [], ports: [ServicePort] = []) {
        self.meta = meta; self.selector = selector; self.clusterIPs = clusterIPs; self.ports = ports
    }
}

/// A core/v1 Endpoints object: backends of selectorless Services, and `default/kubernetes` for the kube-apiserver.
public struct EndpointsObject: Hashable, Sendable {
    public struct Port: Hashable, Sendable {
        public var name: String?
        public var port: UInt16
        public var `protocol`: L4Protocol
        public init(name: String? = nil, port: UInt16, protocol: L4Protocol = .tcp) {
            self.name = name; self.port = port; self.protocol = `protocol`
        }
    }
    public var meta: ObjectMeta
    public var addresses: [IPAddress]
    public var ports: [Port]
    public init(meta: ObjectMeta, addresses: [IPAddress] = [], ports: [Port] = []) {
        self.meta = meta; self.addresses = addresses; self.ports = ports
    }
}

// MARK: - Decoded manifests

public enum ResourceBody: Hashable, Sendable {
    case ciliumPolicy(CiliumPolicy)
    case networkPolicy(NetworkPolicy)
    case cidrGroup(CiliumCIDRGroup)
    case namespace(NamespaceObject)
    case pod(PodObject)
    case node(NodeObject)
    case service(ServiceObject)
    case endpoints(EndpointsObject)
}

public struct Resource: Hashable, Sendable {
    public var ref: ResourceRef
    public var location: SourceLocation
    public var body: ResourceBody
    public init(ref: ResourceRef, location: SourceLocation, body: ResourceBody) {
        self.ref = ref; self.location = location; self.body = body
    }
}

/// An error with its place: file, document, resource, field path, and what was expected.
public struct ManifestError: Error, Hashable, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    /// `Kind namespace/name`, when the document got far enough to have one.
    public var resource: ResourceRef?
    /// Dotted field path, e.g. `spec.egress[1].toPorts[0].ports[0].endPort`; empty for the document itself.
    public var path: String
    /// One-based line of the offending node, when known.
    public var line: Int?
    public var message: String

    public init(location: SourceLocation, resource: ResourceRef? = nil, path: String, line: Int? = nil, message: String) {
        self.location = location; self.resource = resource; self.path = path; self.line = line; self.message = message
    }

    public var description: String {
        var s = "\(location.file): document \(location.document)"
        if let item = location.listItem { s += " item \(item)" }
        if let line = line ?? location.line { s += " line \(line)" }
        if let resource { s += ": \(resource)" }
        if !path.isEmpty { s += ": \(path)" }
        return s + ": " + message
    }
}

/// Ignored documents (kinds Membrane does not read) are reported, not errors.
public struct ManifestWarning: Hashable, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    public init(location: SourceLocation, message: String) { self.location = location; self.message = message }
    public var description: String { "\(location): \(message)" }
}

/// Everything decoded from a set of files: valid resources, plus the errors of the rejected ones.
public struct ManifestSet: Sendable {
    public var resources: [Resource]
    public var errors: [ManifestError]
    public var warnings: [ManifestWarning]
    public init(resources: [Resource] = [], errors: [ManifestError] = [], warnings: [ManifestWarning] = []) {
        self.resources = resources; self.errors = errors; self.warnings = warnings
    }
}
