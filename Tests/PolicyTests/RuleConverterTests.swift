import Testing
@testable import Policy
import PolicyAPI

private func req(_ source: String = "k8s", _ key: String, _ op: LabelRequirement.Operation) -> LabelRequirement {
    LabelRequirement(source: source, key: key, operation: op)
}
private let nsKey = WellKnownLabel.podNamespace

@Suite struct RuleConverterTests {
    static func convertCNP(ns: String?, subject: LabelSelector = sel(["app": "x"]), ingress: [PolicyRule]? = nil,
                           egress: [PolicyRule]? = nil, context: PolicyContext = PolicyContext()) -> PolicyRuleSpec {
        let p = cnp("p", ns: ns, PolicySpec(endpointSelector: subject, ingress: ingress, egress: egress))
        return RuleConverter.convert(p, context: context)[0]
    }

    // MARK: Subject scoping

    @Test func cnpSubjectIsScopedToItsNamespace() {
        let spec = Self.convertCNP(ns: "prod", subject: sel(["app": "x", "k8s:io.kubernetes.pod.namespace": "other"]))
        guard case .endpoints(let s) = spec.subject else { Issue.record("not an endpoint subject"); return }
        #expect(s.requirements.contains(req("k8s", nsKey, .in(["prod"]))))
        #expect(!s.requirements.contains { $0.key == nsKey && $0.operation == .in(["other"]) }, "a user namespace match is overridden")
        #expect(s.matches(podLabels(ns: "prod", ["app": "x"])))
        #expect(!s.matches(podLabels(ns: "other", ["app": "x"])))
    }

    @Test func ccnpSubjectIsNotScoped() {
        let spec = Self.convertCNP(ns: nil)
        guard case .endpoints(let s) = spec.subject else { Issue.record("not an endpoint subject"); return }
        #expect(s.matches(podLabels(ns: "a", ["app": "x"])) && s.matches(podLabels(ns: "b", ["app": "x"])))
    }

    // MARK: Peer scoping

    static let peerCases: [(String?, LabelSelector, LabelSet, Bool)] = [
        // (policy namespace, fromEndpoints selector, peer labels, selected)
        ("prod", sel(["app": "y"]), podLabels(ns: "prod", ["app": "y"]), true),
        ("prod", sel(["app": "y"]), podLabels(ns: "dev", ["app": "y"]), false),
        ("prod", sel(), podLabels(ns: "prod", ["app": "z"]), true),
        ("prod", sel(), podLabels(ns: "dev", ["app": "z"]), false),
        ("prod", sel(), ReservedIdentity.world.labels, false),
        ("prod", sel(["k8s:io.kubernetes.pod.namespace": "dev", "app": "y"]), podLabels(ns: "dev", ["app": "y"]), true),
        ("prod", sel(["io.kubernetes.pod.namespace": "dev"]), podLabels(ns: "dev", ["app": "q"]), true),
        ("prod", sel(["reserved:host": ""]), ReservedIdentity.host.labels, true),
        ("prod", sel(["reserved:world": ""]), ReservedIdentity.world.labels, true),
        // A selector on namespace labels alone stays in the policy's namespace (as in Cilium).
        ("prod", sel(["io.cilium.k8s.namespace.labels.team": "t"]),
         LabelSet(podLabels(ns: "dev", ["app": "y"]).labels + [k8s("io.cilium.k8s.namespace.labels.team", "t")]), false),
        (nil, sel(), podLabels(ns: "prod", ["app": "z"]), true),
        (nil, sel(), podLabels(ns: "dev", ["app": "z"]), true),
        (nil, sel(), ReservedIdentity.world.labels, false),
        (nil, sel(), ReservedIdentity.host.labels, false),
        (nil, sel(), ReservedIdentity.remoteNode.labels, false),
        (nil, sel(["app": "y"]), podLabels(ns: "dev", ["app": "y"]), true),
    ]

    @Test(arguments: peerCases)
    func peerScoping(ns: String?, peer: LabelSelector, labels: LabelSet, selected: Bool) {
        let spec = Self.convertCNP(ns: ns, ingress: [PolicyRule(endpoints: [peer])])
        let rule = spec.allow[.ingress]![0]
        #expect(rule.endpointSelectors.count == 1)
        #expect(rule.endpointSelectors[0].matches(labels) == selected, "\(rule.endpointSelectors[0])")
        #expect(!rule.wildcardPeer)
        #expect(rule.ports == .all)
    }

    // MARK: Entities

    static let entityCases: [(Entity, [ReservedIdentity], Bool)] = [
        (.world, [.world, .worldIPv4, .worldIPv6], false),
        (.worldIPv4, [.worldIPv4], false),
        (.worldIPv6, [.worldIPv6], false),
        (.host, [.host], false),
        (.remoteNode, [.remoteNode, .kubeAPIServer], false),
        (.kubeAPIServer, [.kubeAPIServer], false),
        (.`init`, [.`init`], false),
        (.health, [.health], false),
        (.unmanaged, [.unmanaged], false),
        (.ingress, [.ingress], false),
        (.cluster, [.host, .remoteNode, .`init`, .ingress, .health, .unmanaged, .kubeAPIServer], false),
        (.all, ReservedIdentity.allCases, true),
    ]

    @Test(arguments: entityCases)
    func entities(entity: Entity, selects: [ReservedIdentity], wildcard: Bool) {
        var ctx = PolicyContext(); ctx.clusterName = "c1"
        let rule = Self.convertCNP(ns: "prod", ingress: [PolicyRule(entities: [entity])], context: ctx).allow[.ingress]![0]
        #expect(rule.wildcardPeer == wildcard)
        #expect(rule.endpointSelectors.isEmpty, "entities are not namespace-scoped endpoint selectors")
        for r in ReservedIdentity.allCases {
            let chosen = wildcard || rule.otherSelectors.contains { $0.selects(IdentityFacts(.reserved(r))) }
            #expect(chosen == selects.contains(r), "\(entity) vs \(r.name)")
        }
        // Pods: only `cluster` (by the cluster-name label) and `all`.
        let pod = LabelSet([k8s("app", "a"), k8s(nsKey, "any"), k8s(WellKnownLabel.cluster, "c1")])
        let podChosen = wildcard || rule.otherSelectors.contains { $0.selects(IdentityFacts(Identity(id: 300, labels: pod))) }
        #expect(podChosen == (entity == .cluster || entity == .all))
        if entity == .cluster {
            #expect(rule.otherSelectors.contains(.labels(.label(k8s(WellKnownLabel.cluster, "c1")))))
            let otherCluster = LabelSet([k8s("app", "a"), k8s(nsKey, "any"), k8s(WellKnownLabel.cluster, "c2")])
            #expect(!rule.otherSelectors.contains { $0.selects(IdentityFacts(Identity(id: 301, labels: otherCluster))) })
        }
    }

    // MARK: Rule shapes

    @Test func portsOnlyRuleSelectsEveryPeer() {
        let r = Self.convertCNP(ns: "prod", ingress: [PolicyRule(toPorts: [PortRule(ports: [tcp(80)])])]).allow[.ingress]![0]
        #expect(r.wildcardPeer)
        #expect(r.ports == .ports([PortRule(ports: [tcp(80)])]))
    }

    @Test func emptyRuleSelectsNothingButEnablesDefaultDeny() {
        let spec = Self.convertCNP(ns: "prod", ingress: [PolicyRule()])
        let r = spec.allow[.ingress]![0]
        #expect(!r.wildcardPeer && r.endpointSelectors.isEmpty && r.otherSelectors.isEmpty)
        #expect(spec.hasRules == [.ingress])
        #expect(spec.defaultDeny == [.ingress])
    }

    @Test func emptyListDoesNotEnforce() {
        let spec = Self.convertCNP(ns: "prod", ingress: [], egress: nil)
        #expect(spec.hasRules.isEmpty)
        #expect(spec.defaultDeny.isEmpty)
    }

    @Test func enableDefaultDenyFalse() {
        let p = cnp("p", ns: "prod", PolicySpec(endpointSelector: sel(), ingress: [PolicyRule(entities: [.world])],
                                               egress: [PolicyRule(entities: [.world])],
                                               enableDefaultDeny: DefaultDenyConfig(ingress: false)))
        let spec = RuleConverter.convert(p, context: PolicyContext())[0]
        #expect(spec.hasRules == [.ingress, .egress])
        #expect(spec.defaultDeny == [.egress])
    }

    @Test func icmpsAndCIDRs() {
        let r = Self.convertCNP(ns: "prod", ingress: [PolicyRule(cidr: [prefix("10.0.0.0/8")],
                                                                 cidrSet: [CIDRRule(cidr: prefix("192.168.0.0/16"), except: [prefix("192.168.1.0/24")])],
                                                                 icmps: [[ICMPField(type: 8)]])]).allow[.ingress]![0]
        #expect(r.ports == .icmps([ICMPField(type: 8)]))
        #expect(Set(r.otherSelectors) == [.cidr(prefix("10.0.0.0/8"), except: []),
                                          .cidr(prefix("192.168.0.0/16"), except: [prefix("192.168.1.0/24")])])
    }

    @Test func cidrGroupRef() {
        var ctx = PolicyContext(); ctx.cidrGroups = ["g": [prefix("1.0.0.0/8"), prefix("2.0.0.0/8")]]
        let r = Self.convertCNP(ns: "prod", egress: [PolicyRule(cidrSet: [CIDRRule(cidrGroupRef: "g", except: [prefix("1.1.0.0/16")]),
                                                                          CIDRRule(cidrGroupRef: "missing")])], context: ctx).allow[.egress]![0]
        #expect(r.otherSelectors == [.cidr(prefix("1.0.0.0/8"), except: [prefix("1.1.0.0/16")]),
                                     .cidr(prefix("2.0.0.0/8"), except: [prefix("1.1.0.0/16")])])
    }

    @Test func fqdnsAreCanonical() {
        let r = Self.convertCNP(ns: "prod", egress: [PolicyRule(fqdns: [FQDNSelector(matchName: "API.Example.com."),
                                                                        FQDNSelector(matchPattern: "*.cilium.io")])]).allow[.egress]![0]
        #expect(r.otherSelectors == [.fqdn("api.example.com"), .fqdn("*.cilium.io")])
    }

    @Test func rulePathsAndDenyLists() {
        let p = cnp("p", ns: "prod", PolicySpec(endpointSelector: sel(), ingressDeny: [PolicyRule(entities: [.world])]),
                    PolicySpec(endpointSelector: sel(), egress: [PolicyRule(entities: [.host]), PolicyRule(entities: [.world])]))
        let specs = RuleConverter.convert(p, context: PolicyContext())
        #expect(specs.count == 2)
        #expect(specs[0].deny[.ingress]?.map(\.path) == ["specs[0].ingressDeny[0]"])
        #expect(specs[0].allow[.ingress] == nil)
        #expect(specs[1].allow[.egress]?.map(\.path) == ["specs[1].egress[0]", "specs[1].egress[1]"])
        #expect(specs[0].hasRules == [.ingress] && specs[1].hasRules == [.egress])
    }

    @Test func nodeSelectorSubject() {
        let p = cnp("host", ns: nil, PolicySpec(nodeSelector: sel(["kubernetes.io/hostname": "n1"]), ingress: [PolicyRule(entities: [.world])]))
        let spec = RuleConverter.convert(p, context: PolicyContext())[0]
        guard case .node(let s) = spec.subject else { Issue.record("expected a node subject"); return }
        #expect(s.matches(LabelSet([reservedLabel("host"), k8s("kubernetes.io/hostname", "n1")])))
    }

    // MARK: fromRequires

    @Test func requiresAreCollectedPerDirectionAndKind() {
        let p = cnp("p", ns: "prod", PolicySpec(endpointSelector: sel(),
                                               ingress: [PolicyRule(requires: [sel(["env": "prod"])])],
                                               ingressDeny: [PolicyRule(requires: [sel(["team": "a"])], entities: [.world])],
                                               egress: [PolicyRule(endpoints: [sel()], requires: [sel(["zone": "z"])])]))
        let spec = RuleConverter.convert(p, context: PolicyContext())[0]
        #expect(spec.allowRequirements[.ingress]?.contains(req("any", "env", .in(["prod"]))) == true)
        #expect(spec.allowRequirements[.ingress]?.contains(req("k8s", nsKey, .in(["prod"]))) == true, "requirements are namespace-scoped")
        #expect(spec.denyRequirements[.ingress]?.contains(req("any", "team", .in(["a"]))) == true)
        #expect(spec.allowRequirements[.egress]?.contains(req("any", "zone", .in(["z"]))) == true)
        #expect(spec.denyRequirements[.egress] == nil)
        // A rule with only fromRequires allows nothing.
        let r = spec.allow[.ingress]![0]
        #expect(!r.wildcardPeer && r.endpointSelectors.isEmpty && r.otherSelectors.isEmpty)
    }

    /// fromRequires of one policy constrains the fromEndpoints of every policy selecting the same endpoint, not entities.
    @Test func requiresAreANDedAcrossSelectingPolicies() {
        var engine = PolicyEngine()
        let prodWeb = engine.allocateIdentity(podLabels(["app": "web", "env": "prod"]))
        let devWeb = engine.allocateIdentity(podLabels(["app": "web", "env": "dev"]))
        engine.addPod(1, podLabels(["app": "db"]))
        engine.apply(cnp("allow-web", PolicySpec(endpointSelector: sel(["app": "db"]), ingress: [
            PolicyRule(endpoints: [sel(["app": "web"])], toPorts: [PortRule(ports: [tcp(5432)])]),
            PolicyRule(entities: [.world], toPorts: [PortRule(ports: [tcp(5432)])]),
        ])))
        #expect(engine.decide(1, .ingress, devWeb.id, port: 5432) == .allow)
        engine.apply(cnp("require-prod", PolicySpec(endpointSelector: sel(["app": "db"]), ingress: [PolicyRule(requires: [sel(["env": "prod"])])])))
        #expect(engine.decide(1, .ingress, prodWeb.id, port: 5432) == .allow)
        #expect(engine.decide(1, .ingress, devWeb.id, port: 5432) == .defaultDeny)
        #expect(engine.decide(1, .ingress, ReservedIdentity.world.rawValue, port: 5432) == .allow, "entities are not constrained")
        // Removing the requiring policy lifts the constraint.
        engine.removePolicy(cnpRef("require-prod"))
        #expect(engine.decide(1, .ingress, devWeb.id, port: 5432) == .allow)
    }

    @Test func requiresDoNotApplyToOtherEndpoints() {
        var engine = PolicyEngine()
        let devWeb = engine.allocateIdentity(podLabels(["app": "web", "env": "dev"]))
        engine.addPod(1, podLabels(["app": "db"]))
        engine.addPod(2, podLabels(["app": "cache"]))
        engine.apply(cnp("allow-web", PolicySpec(endpointSelector: sel(), ingress: [PolicyRule(endpoints: [sel(["app": "web"])])])))
        engine.apply(cnp("require-prod", PolicySpec(endpointSelector: sel(["app": "db"]), ingress: [PolicyRule(requires: [sel(["env": "prod"])])])))
        #expect(engine.decide(1, .ingress, devWeb.id, port: 80) == .defaultDeny)
        #expect(engine.decide(2, .ingress, devWeb.id, port: 80) == .allow)
    }

    // MARK: Kubernetes NetworkPolicy

    @Test func knpSubject() {
        let spec = RuleConverter.convert(knp("k", ns: "prod", podSelector: sel(["app": "x"]), ingress: [NetworkPolicyRule()]), context: PolicyContext())
        guard case .endpoints(let s) = spec.subject else { Issue.record("not an endpoint subject"); return }
        #expect(s.matches(podLabels(ns: "prod", ["app": "x"])))
        #expect(!s.matches(podLabels(ns: "dev", ["app": "x"])))
        #expect(!s.matches(LabelSet([Label(source: "unspec", key: "app", value: "x"), k8s(nsKey, "prod")])), "KNP keys are k8s-sourced")
    }

    @Test func knpRuleWithoutPeersSelectsEveryPeerInclWorld() {
        for rule in [NetworkPolicyRule(), NetworkPolicyRule(peers: [])] {
            var engine = PolicyEngine()
            engine.addPod(1, podLabels(ns: "prod", ["app": "x"]))
            engine.apply(knp("k", ns: "prod", ingress: [rule]))
            for peer in [ReservedIdentity.world.rawValue, ReservedIdentity.host.rawValue, ReservedIdentity.remoteNode.rawValue, 4242] {
                #expect(engine.decide(1, .ingress, peer, IPProtocol.udp, port: 53) == .allow)
                #expect(engine.decide(1, .ingress, peer, IPProtocol.icmp, port: 8) == .allow)
            }
        }
    }

    static let knpPeerCases: [(NetworkPolicyPeer, LabelSet, Bool)] = {
        let teamT = LabelSet(podLabels(ns: "dev", ["app": "y"]).labels + [k8s("io.cilium.k8s.namespace.labels.team", "t")])
        return [
            (NetworkPolicyPeer(podSelector: sel(["app": "y"])), podLabels(ns: "prod", ["app": "y"]), true),
            (NetworkPolicyPeer(podSelector: sel(["app": "y"])), podLabels(ns: "dev", ["app": "y"]), false),
            (NetworkPolicyPeer(podSelector: sel()), podLabels(ns: "prod", ["app": "z"]), true),
            (NetworkPolicyPeer(podSelector: sel()), ReservedIdentity.world.labels, false),
            (NetworkPolicyPeer(namespaceSelector: sel(["team": "t"])), teamT, true),
            (NetworkPolicyPeer(namespaceSelector: sel(["team": "t"])), podLabels(ns: "dev", ["app": "y"]), false),
            (NetworkPolicyPeer(podSelector: sel(["app": "y"]), namespaceSelector: sel(["team": "t"])), teamT, true),
            (NetworkPolicyPeer(podSelector: sel(["app": "q"]), namespaceSelector: sel(["team": "t"])), teamT, false),
            (NetworkPolicyPeer(namespaceSelector: sel()), podLabels(ns: "dev", ["app": "y"]), true),
            (NetworkPolicyPeer(namespaceSelector: sel()), ReservedIdentity.world.labels, false),
            (NetworkPolicyPeer(namespaceSelector: sel()), ReservedIdentity.host.labels, false),
        ]
    }()

    @Test(arguments: knpPeerCases)
    func knpPeers(peer: NetworkPolicyPeer, labels: LabelSet, selected: Bool) {
        let spec = RuleConverter.convert(knp("k", ns: "prod", ingress: [NetworkPolicyRule(peers: [peer])]), context: PolicyContext())
        let r = spec.allow[.ingress]![0]
        #expect(!r.wildcardPeer)
        #expect(r.endpointSelectors.contains { $0.matches(labels) } == selected, "\(r.endpointSelectors)")
    }

    @Test func knpNamespaceSelectorKeysArePrefixed() {
        let spec = RuleConverter.convert(knp("k", ns: "prod", ingress: [NetworkPolicyRule(peers: [NetworkPolicyPeer(namespaceSelector: sel(["team": "t"]))])]),
                                         context: PolicyContext())
        let s = spec.allow[.ingress]![0].endpointSelectors[0]
        #expect(s.requirements == [req("k8s", "io.cilium.k8s.namespace.labels.team", .in(["t"]))])
    }

    @Test func knpIPBlock() {
        let spec = RuleConverter.convert(knp("k", ns: "prod", egress: [NetworkPolicyRule(peers: [
            NetworkPolicyPeer(ipBlock: IPBlock(cidr: prefix("10.0.0.0/8"), except: [prefix("10.1.0.0/16")]))])]), context: PolicyContext())
        let r = spec.allow[.egress]![0]
        #expect(r.otherSelectors == [.cidr(prefix("10.0.0.0/8"), except: [prefix("10.1.0.0/16")])])
        #expect(r.endpointSelectors.isEmpty)
        #expect(r.path == "spec.egress[0].to[0]")
    }

    @Test func knpPortsDefaultTCPAndAllPorts() {
        let spec = RuleConverter.convert(knp("k", ns: "prod", ingress: [NetworkPolicyRule(ports: [NetworkPolicyPort(port: .number(80)),
                                                                                                 NetworkPolicyPort(protocol: .udp)])]),
                                         context: PolicyContext())
        #expect(spec.allow[.ingress]![0].ports == .ports([PortRule(ports: [PortProtocol(port: .number(80), protocol: .tcp)]),
                                                          PortRule(ports: [PortProtocol(port: .any, protocol: .udp)])]))
    }

    static let policyTypeCases: [([PolicyType]?, [NetworkPolicyRule]?, [NetworkPolicyRule]?, Set<TrafficDirection>)] = [
        // (policyTypes, ingress, egress, enforced directions)
        (nil, nil, nil, [.ingress]),
        (nil, [NetworkPolicyRule()], nil, [.ingress]),
        (nil, nil, [NetworkPolicyRule()], [.ingress, .egress]),
        ([.egress], nil, nil, [.egress]),
        ([.egress], [NetworkPolicyRule()], nil, [.egress]),
        ([.ingress], nil, [NetworkPolicyRule()], [.ingress]),
        ([.ingress, .egress], nil, nil, [.ingress, .egress]),
    ]

    @Test(arguments: policyTypeCases)
    func knpPolicyTypes(types: [PolicyType]?, ingress: [NetworkPolicyRule]?, egress: [NetworkPolicyRule]?, enforced: Set<TrafficDirection>) {
        let spec = RuleConverter.convert(knp("k", ns: "prod", ingress: ingress, egress: egress, policyTypes: types), context: PolicyContext())
        #expect(spec.hasRules == enforced)
        #expect(spec.defaultDeny == enforced)
        var engine = PolicyEngine()
        engine.addPod(1, podLabels(ns: "prod", ["app": "x"]))
        engine.upsertPolicy(spec.ref, specs: [spec])
        for dir in TrafficDirection.allCases {
            let hasAllowAll = dir == .ingress ? (ingress ?? []).contains(NetworkPolicyRule()) : (egress ?? []).contains(NetworkPolicyRule())
            let expected: Decision = !enforced.contains(dir) || hasAllowAll ? .allow : .defaultDeny
            #expect(engine.decide(1, dir, ReservedIdentity.world.rawValue, port: 80) == expected, "\(dir)")
            #expect(engine.posture(1, dir)?.enforced == enforced.contains(dir))
        }
    }
}
