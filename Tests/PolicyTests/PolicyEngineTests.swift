import Testing
@testable import Policy
import PolicyAPI

@Suite struct PolicyEngineTests {
    static let world = ReservedIdentity.world.rawValue
    static let host = ReservedIdentity.host.rawValue

    /// An engine with a subject pod (endpoint 1, app=db), a client identity (app=web) and the given policies.
    static func setup(_ settings: EngineSettings = EngineSettings(), _ policies: CiliumPolicy...) -> (PolicyEngine, web: NumericIdentity) {
        var e = PolicyEngine(settings: settings)
        let web = e.allocateIdentity(podLabels(["app": "web"])).id
        e.addPod(1, podLabels(["app": "db"]))
        for p in policies { e.apply(p) }
        return (e, web)
    }

    static func ingressPolicy(_ rules: [PolicyRule], deny: [PolicyRule]? = nil, name: String = "p",
                              defaultDeny: DefaultDenyConfig = .init()) -> CiliumPolicy {
        cnp(name, PolicySpec(endpointSelector: sel(["app": "db"]), ingress: rules, ingressDeny: deny, enableDefaultDeny: defaultDeny))
    }

    @Test func noPolicyAllowsEverything() {
        let (e, web) = Self.setup()
        for dir in TrafficDirection.allCases {
            #expect(e.decide(1, dir, web, port: 1) == .allow)
            #expect(e.posture(1, dir)?.enforced == false)
        }
        #expect(e.mapState(1)!.entries.keys.contains(PolicyMapKey(direction: .egress, identity: 0, l4: .all)))
    }

    @Test func ingressRulesEnforceIngressOnly() {
        let (e, web) = Self.setup(EngineSettings(), Self.ingressPolicy([PolicyRule(endpoints: [sel(["app": "web"])], toPorts: [PortRule(ports: [tcp(5432)])])]))
        #expect(e.decide(1, .ingress, web, port: 5432) == .allow)
        #expect(e.decide(1, .ingress, web, port: 5433) == .defaultDeny)
        #expect(e.decide(1, .ingress, web, IPProtocol.udp, port: 5432) == .defaultDeny)
        #expect(e.decide(1, .ingress, Self.world, port: 5432) == .defaultDeny)
        #expect(e.decide(1, .egress, Self.world, port: 443) == .allow, "egress stays open")
        #expect(e.posture(1, .ingress)?.defaultDenyBy == [cnpRef("p")])
        #expect(e.selectingPolicies(1) == [cnpRef("p")])
    }

    @Test func nonSelectingPolicyHasNoEffect() {
        let (e, web) = Self.setup(EngineSettings(), cnp("other", PolicySpec(endpointSelector: sel(["app": "web"]), ingress: [PolicyRule()])))
        #expect(e.decide(1, .ingress, web, port: 1) == .allow)
        #expect(e.selectingPolicies(1).isEmpty)
    }

    @Test func otherNamespacePolicyHasNoEffect() {
        let p = CiliumPolicy(ref: cnpRef("p", ns: "other"), meta: ObjectMeta(name: "p", namespace: "other"),
                             specs: [PolicySpec(endpointSelector: sel(["app": "db"]), ingress: [PolicyRule()])])
        let (e, web) = Self.setup(EngineSettings(), p)
        #expect(e.decide(1, .ingress, web, port: 1) == .allow)
    }

    @Test func enableDefaultDenyFalse() {
        let p = Self.ingressPolicy([PolicyRule(endpoints: [sel(["app": "web"])], toPorts: [PortRule(ports: [tcp(80)], rules: httpA)])],
                                   deny: [PolicyRule(entities: [.world])], defaultDeny: DefaultDenyConfig(ingress: false))
        let (e, web) = Self.setup(EngineSettings(), p)
        #expect(e.posture(1, .ingress)?.enforced == true)
        #expect(e.posture(1, .ingress)?.defaultDeny == false)
        #expect(e.decide(1, .ingress, web, port: 81) == .allow)
        #expect(e.decide(1, .ingress, 4242, port: 81) == .allow)
        #expect(e.decide(1, .ingress, Self.world, port: 81) == .deny, "explicit denies still apply")
        #expect(e.decide(1, .ingress, web, port: 80) == .allowL7([httpA]), "L7 redirect still happens")
    }

    @Test func defaultDenyFromAnyPolicyWins() {
        let lenient = Self.ingressPolicy([PolicyRule(entities: [.world])], name: "a", defaultDeny: DefaultDenyConfig(ingress: false))
        let strict = Self.ingressPolicy([PolicyRule(endpoints: [sel(["app": "web"])])], name: "b")
        let (e, web) = Self.setup(EngineSettings(), lenient, strict)
        #expect(e.decide(1, .ingress, 4242, port: 1) == .defaultDeny)
        #expect(e.decide(1, .ingress, web, port: 1) == .allow)
        #expect(e.decide(1, .ingress, Self.world, port: 1) == .allow)
        #expect(e.posture(1, .ingress)?.defaultDenyBy == [cnpRef("b")])
    }

    @Test func enforcementAlways() {
        let (e, web) = Self.setup(EngineSettings(enforcementMode: .always))
        #expect(e.decide(1, .ingress, web, port: 80) == .defaultDeny)
        #expect(e.decide(1, .egress, web, port: 80) == .defaultDeny)
        #expect(e.decide(1, .ingress, Self.host, port: 80) == .allow, "allow-localhost still applies")
        #expect(e.decide(1, .egress, Self.host, port: 80) == .defaultDeny)
        #expect(e.posture(1, .egress)?.reason == "policy enforcement mode always")
    }

    @Test func enforcementNeverIgnoresDeny() {
        let p = Self.ingressPolicy([PolicyRule(endpoints: [sel(["app": "web"])])], deny: [PolicyRule(entities: [.all])])
        let (e, web) = Self.setup(EngineSettings(enforcementMode: .never), p)
        #expect(e.decide(1, .ingress, web, port: 80) == .allow)
        #expect(e.decide(1, .ingress, Self.world, port: 80) == .allow)
        #expect(e.mapState(1)!.entries.values.allSatisfy { !$0.isDeny })
        #expect(e.mapState(1)!.count == 2, "one allow-any key per direction")
    }

    @Test func allowLocalhostEntry() {
        let p = Self.ingressPolicy([PolicyRule()])
        let (e, web) = Self.setup(EngineSettings(), p)
        let key = PolicyMapKey(direction: .ingress, identity: Self.host, l4: .all)
        let entry = e.mapState(1)!.entries[key]
        #expect(entry != nil && entry?.isDeny == false)
        #expect(entry.map { $0.origins.map { e.origins[$0].derived } } == ["allow-localhost-ingress"])
        #expect(e.decide(1, .ingress, Self.host, IPProtocol.icmp, port: 8) == .allow)
        #expect(e.decide(1, .ingress, web, port: 80) == .defaultDeny)

        let (off, _) = Self.setup(EngineSettings(allowLocalhost: false), p)
        #expect(off.mapState(1)!.entries[key] == nil)
        #expect(off.decide(1, .ingress, Self.host, port: 80) == .defaultDeny)

        // An explicit deny from the host still wins.
        let (denied, _) = Self.setup(EngineSettings(), Self.ingressPolicy([PolicyRule()], deny: [PolicyRule(entities: [.host], toPorts: [PortRule(ports: [tcp(22)])])]))
        #expect(denied.decide(1, .ingress, Self.host, port: 22) == .deny)
        #expect(denied.decide(1, .ingress, Self.host, port: 23) == .allow)
    }

    @Test func hostFirewall() {
        let hostPolicy = cnp("host", ns: nil, PolicySpec(nodeSelector: sel(["kubernetes.io/hostname": "n1"]),
                                                        ingress: [PolicyRule(entities: [.cluster], toPorts: [PortRule(ports: [tcp(22)])])]))
        let podPolicy = cnp("all-pods", ns: nil, PolicySpec(endpointSelector: sel(), ingress: [PolicyRule()]))
        let hostIdentity = Identity(id: 1, labels: LabelSet([reservedLabel("host"), k8s("kubernetes.io/hostname", "n1")]))
        for firewall in [false, true] {
            var e = PolicyEngine(settings: EngineSettings(hostFirewall: firewall))
            e.upsertEndpoint(EndpointSubject(id: 9, identity: hostIdentity, isHost: true))
            e.apply(hostPolicy); e.apply(podPolicy)
            #expect(e.posture(9, .ingress)?.enforced == firewall)
            #expect(e.decide(9, .ingress, Self.world, port: 22) == (firewall ? .defaultDeny : .allow))
            #expect(e.decide(9, .ingress, ReservedIdentity.remoteNode.rawValue, port: 22) == .allow)
            #expect(e.decide(9, .ingress, ReservedIdentity.remoteNode.rawValue, port: 23) == (firewall ? .defaultDeny : .allow))
            #expect(!e.selectingPolicies(9).contains(cnpRef("all-pods", ns: nil)), "endpoint selectors never select the host")
            // No allow-localhost key on the host endpoint itself.
            #expect(e.mapState(9)!.entries[PolicyMapKey(direction: .ingress, identity: 1, l4: .all)] == nil)
        }
    }

    @Test func auditModeDoesNotChangeTheMap() {
        let p = Self.ingressPolicy([PolicyRule(endpoints: [sel(["app": "web"])], toPorts: [PortRule(ports: [tcp(80)], rules: httpA)])],
                                   deny: [PolicyRule(entities: [.world])])
        let (a, _) = Self.setup(EngineSettings(auditMode: false), p)
        let (b, _) = Self.setup(EngineSettings(auditMode: true), p)
        #expect(normalized(a, 1) == normalized(b, 1))
        #expect(!normalized(a, 1).isEmpty)
    }

    @Test func namedPortsIngressResolveOnTheEndpoint() {
        var e = PolicyEngine()
        let web = e.allocateIdentity(podLabels(["app": "web"])).id
        e.addPod(1, podLabels(["app": "db", "v": "1"]), namedPorts: [NamedPort(name: "pg", proto: IPProtocol.tcp, port: 5432)])
        e.addPod(2, podLabels(["app": "db", "v": "2"]), namedPorts: [NamedPort(name: "pg", proto: IPProtocol.tcp, port: 6432)])
        e.addPod(3, podLabels(["app": "db", "v": "3"]))
        e.apply(Self.ingressPolicy([PolicyRule(endpoints: [sel(["app": "web"])], toPorts: [PortRule(ports: [PortProtocol(port: .named("pg"), protocol: .tcp)])])]))
        #expect(e.decide(1, .ingress, web, port: 5432) == .allow)
        #expect(e.decide(1, .ingress, web, port: 6432) == .defaultDeny)
        #expect(e.decide(2, .ingress, web, port: 6432) == .allow)
        #expect(e.decide(2, .ingress, web, port: 5432) == .defaultDeny)
        #expect(e.decide(3, .ingress, web, port: 5432) == .defaultDeny, "unresolvable: no entry")
        // Protocol must match: a UDP named-port rule does not resolve a TCP container port.
        e.apply(Self.ingressPolicy([PolicyRule(endpoints: [sel(["app": "web"])], toPorts: [PortRule(ports: [PortProtocol(port: .named("pg"), protocol: .udp)])])]))
        #expect(e.decide(1, .ingress, web, IPProtocol.udp, port: 5432) == .defaultDeny)
    }

    @Test func namedPortsEgressResolveClusterWide() {
        var e = PolicyEngine()
        e.setClusterNamedPorts([NamedPort(name: "http-alt", proto: IPProtocol.tcp, port: 8080),
                                NamedPort(name: "http-alt", proto: IPProtocol.tcp, port: 8081),
                                NamedPort(name: "dns", proto: IPProtocol.udp, port: 53)])
        let db = e.addPod(1, podLabels(["app": "web"]))
        _ = db
        e.apply(cnp("eg", PolicySpec(endpointSelector: sel(["app": "web"]), egress: [
            PolicyRule(toPorts: [PortRule(ports: [PortProtocol(port: .named("http-alt"), protocol: .tcp),
                                                  PortProtocol(port: .named("dns"), protocol: .any)])])])))
        #expect(e.decide(1, .egress, Self.world, port: 8080) == .allow)
        #expect(e.decide(1, .egress, Self.world, port: 8081) == .allow)
        #expect(e.decide(1, .egress, Self.world, port: 8082) == .defaultDeny)
        #expect(e.decide(1, .egress, Self.world, IPProtocol.udp, port: 53) == .allow)
        #expect(e.decide(1, .egress, Self.world, port: 53) == .defaultDeny)
    }

    // MARK: L7 merging

    @Test func l3l4AllowOnSamePortMakesL7Moot() {
        let p = Self.ingressPolicy([
            PolicyRule(toPorts: [PortRule(ports: [tcp(80)], rules: httpA)]),
            PolicyRule(endpoints: [sel(["app": "web"])], toPorts: [PortRule(ports: [tcp(80)])]),
        ])
        let (e, web) = Self.setup(EngineSettings(), p)
        #expect(e.decide(1, .ingress, web, port: 80) == .allow)
        let entry = e.mapState(1)!.lookup(direction: .ingress, identity: web, proto: IPProtocol.tcp, port: 80)!.entry
        #expect(entry.isRedirect, "the peer is still proxied")
        #expect(entry.l7?.allowAllBy.isEmpty == false)
        #expect(L7Evaluator.evaluate(entry.l7!, .http(method: "POST", path: "/zzz", host: "", headers: [])).allowed)
        // Other peers still get the L7 rules.
        #expect(e.decide(1, .ingress, Self.world, port: 80) == .allowL7([httpA]))
    }

    @Test func l3OnlyAllowDoesNotBypassPortL7() {
        let p = Self.ingressPolicy([
            PolicyRule(toPorts: [PortRule(ports: [tcp(80)], rules: httpA)]),
            PolicyRule(endpoints: [sel(["app": "web"])]),
        ])
        let (e, web) = Self.setup(EngineSettings(), p)
        #expect(e.decide(1, .ingress, web, port: 80) == .allowL7([httpA]))
        #expect(e.decide(1, .ingress, web, port: 81) == .allow)
        let entry = e.mapState(1)!.lookup(direction: .ingress, identity: web, proto: IPProtocol.tcp, port: 80)!.entry
        #expect(!L7Evaluator.evaluate(entry.l7!, .http(method: "POST", path: "/a", host: "", headers: [])).allowed)
        #expect(L7Evaluator.evaluate(entry.l7!, .http(method: "GET", path: "/a", host: "", headers: [])).allowed)
    }

    @Test func l7RuleSetsOfOverlappingRulesAreUnioned() {
        let p = Self.ingressPolicy([
            PolicyRule(endpoints: [sel(["app": "web"])], toPorts: [PortRule(ports: [tcp(80)], rules: httpA)]),
            PolicyRule(toPorts: [PortRule(ports: [tcp(80)], rules: httpB)]),
        ])
        let (e, web) = Self.setup(EngineSettings(), p)
        #expect(e.decide(1, .ingress, web, port: 80) == .allowL7([httpA, httpB]))
        #expect(e.decide(1, .ingress, Self.world, port: 80) == .allowL7([httpB]))
    }

    // MARK: Deny beats allow in every specificity combination

    enum Peer: CaseIterable { case specific, wildcard }
    enum Ports: CaseIterable { case all, proto, range, port }

    static func rule(_ peer: Peer, _ ports: Ports) -> PolicyRule {
        var r = PolicyRule()
        if peer == .specific { r.endpoints = [sel(["app": "web"])] } else { r.entities = [.all] }
        switch ports {
        case .all: break
        case .proto: r.toPorts = [PortRule(ports: [PortProtocol(port: .any, protocol: .tcp)])]
        case .range: r.toPorts = [PortRule(ports: [tcp(8000, 9000)])]
        case .port: r.toPorts = [PortRule(ports: [tcp(8080)])]
        }
        return r
    }

    static let combos: [(Peer, Ports, Peer, Ports)] = Peer.allCases.flatMap { dp in Ports.allCases.flatMap { dports in
        Peer.allCases.flatMap { ap in Ports.allCases.map { aports in (dp, dports, ap, aports) } } } }

    @Test(arguments: combos)
    func denyBeatsAllow(denyPeer: Peer, denyPorts: Ports, allowPeer: Peer, allowPorts: Ports) {
        let allow = Self.rule(allowPeer, allowPorts)
        var allowL7 = allow
        if allowPorts == .port || allowPorts == .range { allowL7.toPorts![0].rules = httpA }
        for a in [allow, allowL7] {
            let (e, web) = Self.setup(EngineSettings(), Self.ingressPolicy([a], deny: [Self.rule(denyPeer, denyPorts)]))
            // 8080/TCP from web is covered by both rules in every combination.
            #expect(e.decide(1, .ingress, web, port: 8080) == .deny)
            // 9500/TCP is outside the narrower of the two whenever one of them names ports < all.
            let denyCovers9500 = denyPorts == .all || denyPorts == .proto
            let allowCovers9500 = allowPorts == .all || allowPorts == .proto
            let expected: Decision = denyCovers9500 ? .deny : (allowCovers9500 ? .allow : .defaultDeny)
            #expect(e.decide(1, .ingress, web, port: 9500) == expected)
            // Another peer: only wildcard rules apply.
            let other = e.decide(1, .ingress, 4242, port: 8080)
            if denyPeer == .wildcard { #expect(other == .deny) }
            else if allowPeer == .wildcard { #expect(other != .deny && other != .defaultDeny) }
            else { #expect(other == .defaultDeny) }
        }
    }

    // MARK: Incremental behaviour

    @Test func identityAddedLaterIsSelected() {
        var (e, _) = Self.setup(EngineSettings(), Self.ingressPolicy([PolicyRule(endpoints: [sel(["app": "late"])])]))
        let late = e.allocateIdentity(podLabels(["app": "late"])).id
        #expect(e.decide(1, .ingress, late, port: 1) == .allow)
        let touched = e.removeIdentity(late)
        #expect(touched == [1])
        #expect(e.decide(1, .ingress, late, port: 1) == .defaultDeny)
    }

    @Test func cidrIdentitiesFollowPolicies() {
        var (e, _) = Self.setup(EngineSettings(), cnp("p", PolicySpec(endpointSelector: sel(["app": "db"]),
                                                                       egress: [PolicyRule(cidr: [prefix("10.0.0.0/8")])])))
        let id = try? #require(e.cidrIdentities[prefix("10.0.0.0/8")])
        #expect(id.map { $0 >= IdentityRange.minimumLocal } == true)
        if let id {
            #expect(e.identity(id)?.labels == LabelSet([Label(source: "cidr", key: "10.0.0.0/8"), reservedLabel("world")]))
            #expect(e.decide(1, .egress, id, port: 1) == .allow)
            #expect(e.decide(1, .egress, Self.world, port: 1) == .defaultDeny)
        }
        e.removePolicy(cnpRef("p"))
        #expect(e.cidrIdentities.isEmpty)
        if let id { #expect(e.identity(id) == nil) }
    }

    @Test func fqdnIdentityCarriesMatchingSelectors() {
        var (e, _) = Self.setup(EngineSettings(), cnp("p", PolicySpec(endpointSelector: sel(["app": "db"]), egress: [
            PolicyRule(fqdns: [FQDNSelector(matchPattern: "*.cilium.io")]),
            PolicyRule(fqdns: [FQDNSelector(matchName: "docs.cilium.io")]),
        ])))
        let docs = e.fqdnIdentity(name: "DOCS.cilium.io.", address: address("104.1.1.1"))
        #expect(docs?.labels.has(Label(source: "fqdn", key: "*.cilium.io")) == true)
        #expect(docs?.labels.has(Label(source: "fqdn", key: "docs.cilium.io")) == true)
        #expect(docs?.labels.has(Label(source: "cidr", key: "104.1.1.1/32")) == true)
        #expect(e.fqdnIdentity(name: "example.com", address: address("1.1.1.1")) == nil)
        if let docs { #expect(e.decide(1, .egress, docs.id, port: 443) == .allow) }
    }
}

@Suite struct IdentityRelabelTests {
    /// An identity whose labels change keeps the claims of selectors that still select it, loses those of
    /// selectors that stop, and gains those of selectors that start — exactly what a fresh computation gives.
    @Test func relabelledIdentityMatchesFromScratch() {
        let policy = cnp("p", PolicySpec(endpointSelector: sel(["app": "db"]), ingress: [
            PolicyRule(endpoints: [sel(["tier": "front"])], toPorts: [PortRule(ports: [tcp(80)])]),
            PolicyRule(endpoints: [sel(["team": "a"])], toPorts: [PortRule(ports: [tcp(81)])]),
            PolicyRule(endpoints: [sel(["team": "b"])], toPorts: [PortRule(ports: [tcp(82)])]),
        ]))
        let before = Identity(id: 4000, labels: podLabels(["tier": "front", "team": "a"]))
        let after = Identity(id: 4000, labels: podLabels(["tier": "front", "team": "b"]))

        var incremental = PolicyEngine()
        incremental.upsertIdentity(before)
        incremental.addPod(1, podLabels(["app": "db"]))
        incremental.apply(policy)
        #expect(incremental.decide(1, .ingress, 4000, port: 81) == .allow)
        incremental.upsertIdentity(after)

        var scratch = PolicyEngine()
        scratch.upsertIdentity(after)
        scratch.addPod(1, podLabels(["app": "db"]))
        scratch.apply(policy)

        #expect(incremental.mapState(1)!.entries == scratch.mapState(1)!.entries)
        #expect(incremental.decide(1, .ingress, 4000, port: 80) == .allow, "tier=front still selects it")
        #expect(incremental.decide(1, .ingress, 4000, port: 81) == .defaultDeny, "team=a no longer does")
        #expect(incremental.decide(1, .ingress, 4000, port: 82) == .allow, "team=b now does")
    }
}
