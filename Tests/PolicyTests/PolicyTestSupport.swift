import MembraneTestSupport
import Testing
@testable import Policy
import PolicyAPI


func k8s(_ key: String, _ value: String = "") -> Label { Label(source: LabelSource.k8s, key: key, value: value) }
func reservedLabel(_ key: String) -> Label { Label(source: LabelSource.reserved, key: key) }
func prefix(_ s: String) -> IPPrefix { IPPrefix(s)! }
func address(_ s: String) -> IPAddress { IPAddress(s)! }

func ls(_ labels: Label...) -> LabelSet { LabelSet(labels) }

/// `LabelSelector` shorthand.
func sel(_ matchLabels: [String: String] = [:], _ exprs: [LabelSelectorRequirement] = []) -> LabelSelector {
    LabelSelector(matchLabels: matchLabels, matchExpressions: exprs)
}

func cnpRef(_ name: String, ns: String? = "default") -> ResourceRef {
    ResourceRef(kind: ns == nil ? .ciliumClusterwideNetworkPolicy : .ciliumNetworkPolicy, namespace: ns, name: name)
}

/// A CNP (or CCNP when `ns` is nil) with one or more specs.
func cnp(_ name: String, ns: String? = "default", _ specs: PolicySpec...) -> CiliumPolicy {
    var specs = specs
    for i in specs.indices where specs.count > 1 { specs[i].path = "specs[\(i)]" }
    return CiliumPolicy(ref: cnpRef(name, ns: ns), meta: ObjectMeta(name: name, namespace: ns, uid: "uid-\(name)"), specs: specs)
}

func knp(_ name: String, ns: String = "default", podSelector: LabelSelector = sel(),
         ingress: [NetworkPolicyRule]? = nil, egress: [NetworkPolicyRule]? = nil, policyTypes: [PolicyType]? = nil) -> NetworkPolicy {
    NetworkPolicy(ref: ResourceRef(kind: .networkPolicy, namespace: ns, name: name), meta: ObjectMeta(name: name, namespace: ns),
                  podSelector: podSelector, ingress: ingress, egress: egress, policyTypes: policyTypes)
}

func tcp(_ port: UInt16, _ end: UInt16? = nil) -> PortProtocol { PortProtocol(port: .number(port), endPort: end, protocol: .tcp) }
func udp(_ port: UInt16) -> PortProtocol { PortProtocol(port: .number(port), protocol: .udp) }

/// Labels of a pod identity as the cluster model gives them (namespace, cluster) plus `extra`.
func podLabels(ns: String = "default", _ extra: [String: String]) -> LabelSet {
    LabelSet(extra.map { k8s($0.key, $0.value) } + [k8s(WellKnownLabel.podNamespace, ns), k8s(WellKnownLabel.cluster, "default")])
}

/// What a packet gets, in terms independent of origin numbering.
enum Decision: Hashable, CustomStringConvertible {
    case defaultDeny
    case deny
    case allow
    /// Allowed at L4, subject to these L7 rule sets.
    case allowL7(Set<L7Rules>)

    var description: String {
        switch self {
        case .defaultDeny: "default-deny"; case .deny: "deny"; case .allow: "allow"
        case .allowL7(let s): "allow+L7\(s.map { "\($0)" }.sorted())"
        }
    }
}

func decision(_ map: MapState, _ dir: TrafficDirection, _ peer: NumericIdentity, _ proto: UInt8, _ port: UInt16) -> Decision {
    guard let (_, e) = map.lookup(direction: dir, identity: peer, proto: proto, port: port) else { return .defaultDeny }
    if e.isDeny { return .deny }
    guard let l7 = e.l7, l7.allowAllBy.isEmpty else { return .allow }
    return .allowL7(Set(l7.ruleSets.map(\.rules)))
}

extension PolicyEngine {
    /// Adds an endpoint for a pod with these labels; returns its identity.
    @discardableResult
    mutating func addPod(_ id: UInt16, _ labels: LabelSet, namedPorts: [NamedPort] = []) -> Identity {
        let identity = allocateIdentity(labels)
        upsertEndpoint(EndpointSubject(id: id, identity: identity, namedPorts: namedPorts))
        return identity
    }

    mutating func apply(_ p: CiliumPolicy) { apply(.ciliumPolicy(p), ref: p.ref) }
    mutating func apply(_ p: NetworkPolicy) { apply(.networkPolicy(p), ref: p.ref) }

    func decide(_ ep: UInt16, _ dir: TrafficDirection, _ peer: NumericIdentity, _ proto: UInt8 = IPProtocol.tcp, port: UInt16) -> Decision {
        decision(mapState(ep)!, dir, peer, proto, port)
    }
}

let httpA = L7Rules.http([HTTPRule(method: "GET", path: "/a")])
let httpB = L7Rules.http([HTTPRule(path: "/b")])
