import PolicyAPI

/// Where a claim on the policy map came from: a rule of a policy, or an allowance the agent derives itself.
public struct PolicyOrigin: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The policy; `nil` for derived allowances.
    public var ref: ResourceRef?
    /// For derived allowances: `allow-localhost-ingress`, `allow-any-ingress`, `allow-any-egress`.
    public var derived: String?
    /// The rule within the policy, e.g. `spec.ingress[0]` or `specs[1].egressDeny[0]`.
    public var rulePath: String
    public var uid: String?
    public var revision: UInt64

    public init(ref: ResourceRef?, derived: String? = nil, rulePath: String, uid: String? = nil, revision: UInt64 = 0) {
        self.ref = ref; self.derived = derived; self.rulePath = rulePath; self.uid = uid; self.revision = revision
    }

    public static func derived(_ name: String) -> PolicyOrigin { PolicyOrigin(ref: nil, derived: name, rulePath: "") }

    /// Cilium's policy labels (`io.cilium.k8s.policy.*`), as Hubble reports them.
    public var labels: [Label] {
        guard let ref else { return [Label(source: LabelSource.reserved, key: "io.cilium.policy.derived-from", value: derived ?? "")] }
        var out = [Label(source: LabelSource.k8s, key: WellKnownLabel.policyDerivedFrom, value: ref.kind.rawValue),
                   Label(source: LabelSource.k8s, key: WellKnownLabel.policyName, value: ref.name)]
        if let ns = ref.namespace { out.append(Label(source: LabelSource.k8s, key: WellKnownLabel.policyNamespace, value: ns)) }
        out.append(Label(source: LabelSource.k8s, key: WellKnownLabel.policyUID, value: uid ?? ""))
        return out
    }

    public var description: String { ref.map { "\($0) \(rulePath)" } ?? (derived ?? "") }

    public static func < (a: Self, b: Self) -> Bool {
        (a.ref?.description ?? "", a.derived ?? "", a.rulePath) < (b.ref?.description ?? "", b.derived ?? "", b.rulePath)
    }
}

/// Interns origins so that map entries carry small numbers.
public struct OriginTable: Sendable {
    public private(set) var origins: [PolicyOrigin] = []
    private var index: [PolicyOrigin: OriginID] = [:]
    /// The origins of each policy, so that a policy's claims can be found when it changes.
    public private(set) var byRef: [ResourceRef: Set<OriginID>] = [:]
    public init() {}

    public mutating func intern(_ o: PolicyOrigin) -> OriginID {
        if let id = index[o] { return id }
        let id = OriginID(origins.count)
        origins.append(o); index[o] = id
        if let ref = o.ref { byRef[ref, default: []].insert(id) }
        return id
    }

    public subscript(_ id: OriginID) -> PolicyOrigin { origins[Int(id)] }
}

/// The ports part of a rule, in internal form.
public enum RulePorts: Hashable, Sendable {
    /// No toPorts/icmps: every protocol and port (an L3-only rule).
    case all
    case ports([PortRule])
    case icmps([ICMPField])
}

/// One element of ingress/ingressDeny/egress/egressDeny, in the internal form all policy kinds convert to.
public struct PeerRule: Hashable, Sendable {
    public var path: String
    /// `fromEndpoints`/`toEndpoints`, already scoped to the policy's namespace; `fromRequires` are ANDed in
    /// when the rule is resolved for a subject.
    public var endpointSelectors: [EndpointSelector]
    /// Entities, nodes, CIDRs, FQDNs and services: not subject to requirements.
    public var otherSelectors: [PeerSelector]
    /// True when the rule selects every peer (no L3 selector but ports, `all`, or a KNP rule without peers).
    public var wildcardPeer: Bool
    public var ports: RulePorts
    public var authRequired: Bool
}

/// A policy spec in internal form: subject, rules per direction, and its default-deny posture.
public struct PolicyRuleSpec: Hashable, Sendable {
    public enum Subject: Hashable, Sendable {
        case endpoints(EndpointSelector)
        case node(EndpointSelector)
    }
    public var ref: ResourceRef
    public var uid: String?
    public var specPath: String
    public var subject: Subject
    public var allow: [TrafficDirection: [PeerRule]]
    public var deny: [TrafficDirection: [PeerRule]]
    /// Whether this spec has rules in a direction (a non-empty list), which enforces policy there.
    public var hasRules: Set<TrafficDirection>
    /// Whether this spec puts its subjects into default deny in a direction.
    public var defaultDeny: Set<TrafficDirection>
    /// `fromRequires`/`toRequires` of allow and deny rules, ANDed into every selecting spec's endpoint selectors.
    public var allowRequirements: [TrafficDirection: [LabelRequirement]]
    public var denyRequirements: [TrafficDirection: [LabelRequirement]]
}

/// What the conversion needs to know beyond the policies themselves.
public struct PolicyContext: Sendable {
    public struct ServiceInfo: Hashable, Sendable {
        public var namespace: String
        public var name: String
        public var labels: [String: String]
        public var selector: [String: String]?
        public var backendAddresses: [IPAddress]
        public init(namespace: String, name: String, labels: [String: String], selector: [String: String]?, backendAddresses: [IPAddress]) {
            self.namespace = namespace; self.name = name; self.labels = labels; self.selector = selector
            self.backendAddresses = backendAddresses
        }
    }
    public var clusterName: String = "default"
    public var cidrGroups: [String: [IPPrefix]] = [:]
    public var services: [ServiceInfo] = []
    public init() {}
}

/// Converts CNP, CCNP and KNP into `PolicyRuleSpec`s, as Cilium's rule import does.
public enum RuleConverter {
    static let namespaceKey = WellKnownLabel.podNamespace

    /// Scopes a peer selector of a namespaced policy to its namespace, unless it already names the namespace
    /// key or selects reserved identities (a selector on namespace labels alone stays in the policy's
    /// namespace, as in Cilium). CCNP peers get "in some namespace": pods only, not reserved identities.
    static func scopePeer(_ sel: EndpointSelector, namespace: String?) -> EndpointSelector {
        if sel.constrains(source: LabelSource.reserved) { return sel }
        if sel.constrains(key: namespaceKey) { return sel }
        if let namespace {
            return sel.adding([LabelRequirement(source: LabelSource.k8s, key: namespaceKey, operation: .in([namespace]))])
        }
        return sel.adding([LabelRequirement(source: LabelSource.k8s, key: namespaceKey, operation: .exists)])
    }

    static func entitySelectors(_ e: Entity, context: PolicyContext) -> (wildcard: Bool, selectors: [PeerSelector]) {
        func r(_ names: ReservedIdentity...) -> [PeerSelector] { names.map { .labels(.reserved($0)) } }
        switch e {
        case .all: return (true, [])
        case .world: return (false, r(.world, .worldIPv4, .worldIPv6))
        case .worldIPv4: return (false, r(.worldIPv4))
        case .worldIPv6: return (false, r(.worldIPv6))
        case .host: return (false, r(.host))
        case .remoteNode: return (false, r(.remoteNode))
        case .kubeAPIServer: return (false, r(.kubeAPIServer))
        case .`init`: return (false, r(.`init`))
        case .health: return (false, r(.health))
        case .unmanaged: return (false, r(.unmanaged))
        case .ingress: return (false, r(.ingress))
        case .cluster:
            return (false, r(.host, .remoteNode, .`init`, .ingress, .health, .unmanaged, .kubeAPIServer)
                + [.labels(.label(Label(source: LabelSource.k8s, key: WellKnownLabel.cluster, value: context.clusterName)))])
        }
    }

    static func cidrSelectors(_ rule: CIDRRule, context: PolicyContext) -> [PeerSelector] {
        if let p = rule.cidr { return [.cidr(p, except: rule.except)] }
        if let g = rule.cidrGroupRef { return (context.cidrGroups[g] ?? []).map { .cidr($0, except: rule.except) } }
        return []
    }

    static func serviceSelectors(_ s: ServiceSelector, namespace: String?, context: PolicyContext) -> [PeerSelector] {
        let matching = context.services.filter { svc in
            if let ref = s.k8sService {
                return ref.serviceName == svc.name && (ref.namespace ?? namespace ?? svc.namespace) == svc.namespace
            }
            if let sel = s.k8sServiceSelector {
                let ns = sel.namespace ?? namespace
                let svcLabels = LabelSet(svc.labels.map { Label(source: LabelSource.k8s, key: $0.key, value: $0.value) })
                return (ns == nil || ns == svc.namespace) && EndpointSelector(sel.selector).matches(svcLabels)
            }
            return false
        }
        var out: [PeerSelector] = []
        for svc in matching {
            if let selector = svc.selector {
                // A Service with a selector: its backends are the pods it selects.
                var reqs = selector.map { LabelRequirement(source: LabelSource.k8s, key: $0.key, operation: .in([$0.value])) }
                reqs.append(LabelRequirement(source: LabelSource.k8s, key: namespaceKey, operation: .in([svc.namespace])))
                out.append(.labels(EndpointSelector(reqs)))
            } else {
                // Selectorless: its Endpoints, which lie outside the cluster, as host prefixes.
                out += svc.backendAddresses.map { .cidr(IPPrefix(address: $0, length: $0.bitWidth), except: []) }
            }
        }
        return out
    }

    static func requirements(_ selectors: [LabelSelector]?, namespace: String?) -> [LabelRequirement] {
        var out: [LabelRequirement] = []
        for s in selectors ?? [] {
            out += scopePeer(EndpointSelector(s), namespace: namespace).requirements
        }
        return out
    }

    static func convert(rule r: PolicyRule, path: String, namespace: String?, context: PolicyContext) -> PeerRule {
        var endpoints: [EndpointSelector] = []
        var others: [PeerSelector] = []
        var wildcard = false
        for s in r.endpoints ?? [] { endpoints.append(scopePeer(EndpointSelector(s), namespace: namespace)) }
        for s in r.nodes ?? [] {
            // Node selectors select the nodes' identities (host / remote-node); see README for the limits.
            _ = s; others += [.labels(.reserved(.host)), .labels(.reserved(.remoteNode))]
        }
        for p in r.cidr ?? [] { others.append(.cidr(p, except: [])) }
        for c in r.cidrSet ?? [] { others += cidrSelectors(c, context: context) }
        for e in r.entities ?? [] {
            let (w, sels) = entitySelectors(e, context: context)
            if w { wildcard = true }
            others += sels
        }
        for f in r.fqdns ?? [] {
            others.append(.fqdn(FQDNMatcher.canonicalSelector(f)))
        }
        for s in r.services ?? [] { others += serviceSelectors(s, namespace: namespace, context: context) }
        let ports: RulePorts
        if let icmps = r.icmps, !icmps.isEmpty { ports = .icmps(icmps.flatMap { $0 }) }
        else if let tp = r.toPorts, !tp.isEmpty { ports = .ports(tp) }
        else { ports = .all }
        // A rule with ports but no peer selector applies to every peer; with neither it selects nothing.
        if r.hasNoPeerSelector && ports != .all { wildcard = true }
        return PeerRule(path: path, endpointSelectors: endpoints, otherSelectors: others, wildcardPeer: wildcard,
                        ports: ports, authRequired: r.authentication == .required)
    }

    /// Converts a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
    public static func convert(_ policy: CiliumPolicy, context: PolicyContext) -> [PolicyRuleSpec] {
        let ns = policy.ref.namespace
        return policy.specs.map { spec in
            let subject: PolicyRuleSpec.Subject
            if let node = spec.nodeSelector {
                subject = .node(EndpointSelector(node))
            } else {
                var sel = EndpointSelector(spec.endpointSelector ?? LabelSelector())
                if let ns {
                    let others = sel.requirements.filter { $0.key != namespaceKey }
                    sel = EndpointSelector(others + [LabelRequirement(source: LabelSource.k8s, key: namespaceKey, operation: .in([ns]))])
                }
                subject = .endpoints(sel)
            }
            var allow: [TrafficDirection: [PeerRule]] = [:]
            var deny: [TrafficDirection: [PeerRule]] = [:]
            var allowReq: [TrafficDirection: [LabelRequirement]] = [:]
            var denyReq: [TrafficDirection: [LabelRequirement]] = [:]
            let lists: [(TrafficDirection, Bool, [PolicyRule]?, String)] = [
                (.ingress, false, spec.ingress, "ingress"), (.ingress, true, spec.ingressDeny, "ingressDeny"),
                (.egress, false, spec.egress, "egress"), (.egress, true, spec.egressDeny, "egressDeny")]
            var hasRules = Set<TrafficDirection>()
            for (dir, isDeny, rules, name) in lists {
                guard let rules, !rules.isEmpty else { continue }
                hasRules.insert(dir)
                for (i, r) in rules.enumerated() {
                    let converted = convert(rule: r, path: "\(spec.path).\(name)[\(i)]", namespace: ns, context: context)
                    if isDeny { deny[dir, default: []].append(converted) } else { allow[dir, default: []].append(converted) }
                    let reqs = requirements(r.requires, namespace: ns)
                    if isDeny { denyReq[dir, default: []] += reqs } else { allowReq[dir, default: []] += reqs }
                }
            }
            var defaultDeny = Set<TrafficDirection>()
            if hasRules.contains(.ingress) && spec.enableDefaultDeny.ingress != false { defaultDeny.insert(.ingress) }
            if hasRules.contains(.egress) && spec.enableDefaultDeny.egress != false { defaultDeny.insert(.egress) }
            return PolicyRuleSpec(ref: policy.ref, uid: policy.meta.uid, specPath: spec.path, subject: subject,
                                  allow: allow, deny: deny, hasRules: hasRules, defaultDeny: defaultDeny,
                                  allowRequirements: allowReq, denyRequirements: denyReq)
        }
    }

    /// Converts a Kubernetes NetworkPolicy into the internal form, as Cilium does: peers OR-ed, `ipBlock`
    /// as CIDR selectors (which only ever select addresses outside the cluster), a rule without peers
    /// selects every peer, and `policyTypes` without rules isolates the pods.
    public static func convert(_ knp: NetworkPolicy, context: PolicyContext) -> PolicyRuleSpec {
        let ns = knp.ref.namespace ?? "default"
        var subjectReqs = EndpointSelector(knp.podSelector).requirements.filter { $0.key != namespaceKey }
        subjectReqs = subjectReqs.map { LabelRequirement(source: LabelSource.k8s, key: $0.key, operation: $0.operation) }
        subjectReqs.append(LabelRequirement(source: LabelSource.k8s, key: namespaceKey, operation: .in([ns])))
        let types = knp.effectivePolicyTypes
        var allow: [TrafficDirection: [PeerRule]] = [:]
        var hasRules = Set<TrafficDirection>()

        func k8sPrefixed(_ s: LabelSelector, keyPrefix: String) -> [LabelRequirement] {
            EndpointSelector(s).requirements.map {
                LabelRequirement(source: LabelSource.k8s, key: keyPrefix + $0.key, operation: $0.operation)
            }
        }

        func convertRules(_ rules: [NetworkPolicyRule]?, dir: TrafficDirection, field: String, peerField: String) {
            guard types.contains(dir == .ingress ? .ingress : .egress) else { return }
            hasRules.insert(dir)
            for (i, rule) in (rules ?? []).enumerated() {
                let path = "spec.\(field)[\(i)]"
                var ports: RulePorts = .all
                if let p = rule.ports, !p.isEmpty {
                    ports = .ports(p.map { np in
                        PortRule(ports: [PortProtocol(port: np.port ?? .any, endPort: np.endPort, protocol: np.protocol)])
                    })
                }
                let peers = rule.peers ?? []
                if peers.isEmpty {
                    allow[dir, default: []].append(PeerRule(path: path, endpointSelectors: [], otherSelectors: [],
                                                            wildcardPeer: true, ports: ports, authRequired: false))
                    continue
                }
                for (j, peer) in peers.enumerated() {
                    var endpoints: [EndpointSelector] = []
                    var others: [PeerSelector] = []
                    if let block = peer.ipBlock {
                        others.append(.cidr(block.cidr, except: block.except))
                    } else {
                        var reqs: [LabelRequirement] = []
                        if let nsSel = peer.namespaceSelector {
                            let nsReqs = k8sPrefixed(nsSel, keyPrefix: WellKnownLabel.namespaceLabelsPrefix)
                            reqs += nsReqs.isEmpty
                                ? [LabelRequirement(source: LabelSource.k8s, key: namespaceKey, operation: .exists)] : nsReqs
                        } else {
                            reqs.append(LabelRequirement(source: LabelSource.k8s, key: namespaceKey, operation: .in([ns])))
                        }
                        if let podSel = peer.podSelector { reqs += k8sPrefixed(podSel, keyPrefix: "") }
                        endpoints.append(EndpointSelector(reqs))
                    }
                    allow[dir, default: []].append(PeerRule(path: "\(path).\(peerField)[\(j)]", endpointSelectors: endpoints,
                                                            otherSelectors: others, wildcardPeer: false, ports: ports,
                                                            authRequired: false))
                }
            }
        }
        convertRules(knp.ingress, dir: .ingress, field: "ingress", peerField: "from")
        convertRules(knp.egress, dir: .egress, field: "egress", peerField: "to")
        return PolicyRuleSpec(ref: knp.ref, uid: knp.meta.uid, specPath: "spec", subject: .endpoints(EndpointSelector(subjectReqs)),
                              allow: allow, deny: [:], hasRules: hasRules, defaultDeny: hasRules,
                              allowRequirements: [:], denyRequirements: [:])
    }
}
