import MembraneTestSupport
import Testing
@testable import Policy
import PolicyAPI

// MARK: - Direct MapState resolution

@Suite struct MapStateTests {
    static let T = IPProtocol.tcp
    static func c(_ deny: Bool, _ origin: OriginID, l7: L7Rules? = nil, selector: Int32 = -1) -> Contribution {
        Contribution(isDeny: deny, l7: l7, authRequired: false, origin: origin, selector: selector)
    }

    @Test func denyOnWildcardBeatsSpecificAllow() {
        var m = MapState()
        _ = m.add(Self.c(false, 1), direction: .ingress, identity: 300, l4: .all)
        _ = m.add(Self.c(true, 2), direction: .ingress, identity: 0, l4: .port(Self.T, 80))
        m.resolveAll()
        #expect(decision(m, .ingress, 300, Self.T, 80) == .deny)
        #expect(decision(m, .ingress, 300, Self.T, 81) == .allow)
        #expect(decision(m, .ingress, 301, Self.T, 80) == .deny)
        #expect(decision(m, .ingress, 301, Self.T, 81) == .defaultDeny)
        // The any-peer deny is the longer prefix, so no peer-specific key is needed for it.
        #expect(m.entries[PolicyMapKey(direction: .ingress, identity: 300, l4: .port(Self.T, 80))] == nil)
    }

    @Test func specificDenyBeatsWildcardAllowOnPort() {
        var m = MapState()
        _ = m.add(Self.c(true, 1), direction: .egress, identity: 300, l4: .all)
        _ = m.add(Self.c(false, 2), direction: .egress, identity: 0, l4: .port(Self.T, 80))
        m.resolveAll()
        #expect(decision(m, .egress, 300, Self.T, 80) == .deny)
        #expect(decision(m, .egress, 301, Self.T, 80) == .allow)
        #expect(decision(m, .ingress, 301, Self.T, 80) == .defaultDeny, "directions are independent")
        // Here the peer's deny needs its own key at 80/TCP, or the longer any-peer allow would win.
        #expect(m.entries[PolicyMapKey(direction: .egress, identity: 300, l4: .port(Self.T, 80))]?.isDeny == true)
    }

    @Test func mostSpecificAllowDecidesL7() {
        var m = MapState()
        _ = m.add(Self.c(false, 1), direction: .ingress, identity: 300, l4: .all)
        _ = m.add(Self.c(false, 2, l7: httpA), direction: .ingress, identity: 0, l4: .port(Self.T, 80))
        m.resolveAll()
        #expect(decision(m, .ingress, 300, Self.T, 80) == .allowL7([httpA]), "L3-only allow does not bypass port L7")
        #expect(decision(m, .ingress, 300, Self.T, 81) == .allow)
        // A plain allow at the same specificity makes the L7 rules moot.
        _ = m.add(Self.c(false, 3), direction: .ingress, identity: 300, l4: .port(Self.T, 80))
        m.resolve([MapState.Slot(direction: .ingress, identity: 300)])
        #expect(decision(m, .ingress, 300, Self.T, 80) == .allow)
        let e = m.lookup(direction: .ingress, identity: 300, proto: Self.T, port: 80)!.entry
        #expect(e.l7?.allowAllBy == [3])
        #expect(e.isRedirect, "still redirected to the proxy")
        #expect(e.origins == [2, 3])
    }

    @Test func conflictingParsersAreRecorded() {
        var m = MapState()
        _ = m.add(Self.c(false, 1, l7: httpA), direction: .ingress, identity: 0, l4: .port(Self.T, 80))
        _ = m.add(Self.c(false, 2, l7: .kafka([KafkaRule(topic: "t")])), direction: .ingress, identity: 0, l4: .port(Self.T, 80))
        m.resolveAll()
        let e = m.lookup(direction: .ingress, identity: 5, proto: Self.T, port: 80)!.entry
        #expect(e.l7?.conflictingParsers == [.http, .kafka])
        #expect(!L7Evaluator.evaluate(e.l7!, .http(method: "GET", path: "/a", host: "", headers: [])).allowed)
    }

    @Test func removeClaimsAndResolveClearsEntries() {
        var m = MapState()
        _ = m.add(Self.c(false, 1, selector: 4), direction: .ingress, identity: 300, l4: .port(Self.T, 80))
        _ = m.add(Self.c(false, 2), direction: .ingress, identity: 0, l4: .port(Self.T, 443))
        m.resolveAll()
        #expect(m.count == 2)
        let dup = m.add(Self.c(false, 1, selector: 4), direction: .ingress, identity: 300, l4: .port(Self.T, 80))
        #expect(!dup)
        let removed = m.remove(where: { $0.selector == 4 }, direction: .ingress, identity: 300)
        #expect(removed)
        m.resolve([MapState.Slot(direction: .ingress, identity: 300)])
        #expect(m.count == 1)
        #expect(decision(m, .ingress, 300, Self.T, 80) == .defaultDeny)
        #expect(decision(m, .ingress, 300, Self.T, 443) == .allow)
    }

    @Test func wildcardChangeReresolvesEveryIdentity() {
        var m = MapState()
        _ = m.add(Self.c(false, 1), direction: .ingress, identity: 300, l4: .proto(Self.T))
        m.resolveAll()
        _ = m.add(Self.c(true, 2), direction: .ingress, identity: 0, l4: .port(Self.T, 22))
        m.resolve([MapState.Slot(direction: .ingress, identity: 0)])
        #expect(decision(m, .ingress, 300, Self.T, 22) == .deny)
        #expect(decision(m, .ingress, 300, Self.T, 23) == .allow)
    }
}

// MARK: - Property test: engine-built map state vs. a ground truth computed from the policies

/// A generated rule, abstract enough to compute the expected verdict without the engine.
struct GenPort: Hashable { var port: UInt16; var end: UInt16?; var proto: L4Protocol }
struct GenPortRule: Hashable { var ports: [GenPort]; var l7: L7Rules? }
enum GenPorts: Hashable { case all, ports([GenPortRule]), icmp(UInt8) }
enum GenPeer: Hashable {
    case app(String), tier(String), allInNamespace, entityAll, entityWorld, entityHost, entityCluster
    case cidr(String, except: [String])
    case none
}
struct GenRule: Hashable { var peers: [GenPeer]; var ports: GenPorts; var requiresTier: String? = nil }
struct GenPolicy: Hashable {
    var name: String
    var namespace: String?   // nil: CCNP
    var selectsSubject: Bool
    var lists: [TrafficDirection: (allow: [GenRule]?, deny: [GenRule]?)] = [:]
    var defaultDeny: [TrafficDirection: Bool] = [:]

    static func == (a: Self, b: Self) -> Bool { a.name == b.name }
    func hash(into h: inout Hasher) { h.combine(name) }

    var ref: ResourceRef { cnpRef(name, ns: namespace) }

    func render() -> CiliumPolicy {
        func rules(_ rs: [GenRule]?) -> [PolicyRule]? { rs.map { $0.map(Self.render) } }
        let spec = PolicySpec(endpointSelector: sel(["app": selectsSubject ? "subject" : "nobody"]),
                              ingress: rules(lists[.ingress]?.allow), ingressDeny: rules(lists[.ingress]?.deny),
                              egress: rules(lists[.egress]?.allow), egressDeny: rules(lists[.egress]?.deny),
                              enableDefaultDeny: DefaultDenyConfig(ingress: defaultDeny[.ingress], egress: defaultDeny[.egress]))
        return CiliumPolicy(ref: ref, meta: ObjectMeta(name: name, namespace: namespace), specs: [spec])
    }

    static func render(_ r: GenRule) -> PolicyRule {
        var p = PolicyRule()
        if let t = r.requiresTier { p.requires = [sel(["tier": t])] }
        for peer in r.peers {
            switch peer {
            case .app(let a): p.endpoints = (p.endpoints ?? []) + [sel(["app": a])]
            case .tier(let t): p.endpoints = (p.endpoints ?? []) + [sel(["tier": t])]
            case .allInNamespace: p.endpoints = (p.endpoints ?? []) + [sel()]
            case .entityAll: p.entities = (p.entities ?? []) + [.all]
            case .entityWorld: p.entities = (p.entities ?? []) + [.world]
            case .entityHost: p.entities = (p.entities ?? []) + [.host]
            case .entityCluster: p.entities = (p.entities ?? []) + [.cluster]
            case .cidr(let c, let e): p.cidrSet = (p.cidrSet ?? []) + [CIDRRule(cidr: prefix(c), except: e.map(prefix))]
            case .none: break
            }
        }
        switch r.ports {
        case .all: break
        case .icmp(let t): p.icmps = [[ICMPField(family: .ipv4, type: t)]]
        case .ports(let prs):
            p.toPorts = prs.map { pr in
                PortRule(ports: pr.ports.map { PortProtocol(port: $0.port == 0 ? .any : .number($0.port), endPort: $0.end, protocol: $0.proto) },
                         rules: pr.l7)
            }
        }
        return p
    }
}

/// The identities a generated world has, and what each stands for.
struct GenIdentity { var id: NumericIdentity; var labels: LabelSet; var pod: (app: String, tier: String, ns: String)?; var cidr: IPPrefix? }

enum Generator {
    static let apps = ["a", "b", "subject"]
    static let tiers = ["front", "back"]
    static let cidrs = ["10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16"]

    static func peer(_ rng: inout SplitMix64) -> GenPeer {
        switch rng.int(0..<11) {
        case 0, 1: return .app(rng.pick(apps))
        case 2: return .tier(rng.pick(tiers))
        case 3: return .allInNamespace
        case 4: return .entityAll
        case 5: return .entityWorld
        case 6: return .entityHost
        case 7: return .entityCluster
        case 8: return rng.chance(0.5) ? .cidr(rng.pick(cidrs), except: []) : .cidr("10.0.0.0/8", except: ["10.1.0.0/16"])
        default: return .none
        }
    }

    static func port(_ rng: inout SplitMix64) -> GenPort {
        let proto = rng.pick([L4Protocol.tcp, .tcp, .udp, .any])
        switch rng.int(0..<8) {
        case 0: return GenPort(port: 0, end: nil, proto: proto)
        case 1...3: return GenPort(port: rng.pick([53, 80, 443, 8080, 8500]), end: nil, proto: proto)
        default:
            let (a, b) = rng.pick([(8000, 9000), (1, 1023), (80, 81), (1024, 65535), (8192, 8703)] as [(UInt16, UInt16)])
            return GenPort(port: a, end: b, proto: proto)
        }
    }

    static func rule(_ rng: inout SplitMix64, deny: Bool) -> GenRule {
        let kind = peer(&rng)
        var peers = [kind]
        if rng.chance(0.25), case .app = kind { peers.append(.app(rng.pick(apps))) }
        let ports: GenPorts
        switch rng.int(0..<10) {
        case 0...2: ports = .all
        case 3: ports = .icmp(rng.pick([0, 8]))
        default:
            var prs: [GenPortRule] = []
            for _ in 0..<rng.int(1..<3) {
                var ps = (0..<rng.int(1..<3)).map { _ in port(&rng) }
                var l7: L7Rules?
                if !deny && rng.chance(0.45) {
                    // Cilium: L7 only with TCP and a non-zero port.
                    ps = ps.map { GenPort(port: $0.port == 0 ? 80 : $0.port, end: $0.end, proto: .tcp) }
                    l7 = rng.pick([httpA, httpB])
                }
                prs.append(GenPortRule(ports: ps, l7: l7))
            }
            ports = .ports(prs)
        }
        return GenRule(peers: peers, ports: ports, requiresTier: rng.chance(0.1) ? rng.pick(tiers) : nil)
    }

    static func policy(_ rng: inout SplitMix64, name: String) -> GenPolicy {
        var p = GenPolicy(name: name, namespace: rng.chance(0.2) ? nil : "default", selectsSubject: rng.chance(0.85))
        for dir in TrafficDirection.allCases {
            func list(deny: Bool) -> [GenRule]? {
                switch rng.int(0..<6) {
                case 0, 1: return nil
                case 2: return rng.chance(0.5) ? [] : [GenRule(peers: [.none], ports: .all)]
                default: return (0..<rng.int(1..<3)).map { _ in rule(&rng, deny: deny) }
                }
            }
            p.lists[dir] = (list(deny: false), rng.chance(0.4) ? list(deny: true) : nil)
            if rng.chance(0.15) { p.defaultDeny[dir] = false }
        }
        return p
    }
}

/// The expected verdict, computed from the generated policies and identities only.
struct GroundTruth {
    var policies: [GenPolicy]
    var identities: [NumericIdentity: GenIdentity]
    var cidrIdentity: [IPPrefix: NumericIdentity]
    var allowLocalhost = true

    struct Claim { var deny: Bool; var length: Int; var l7: L7Rules?; var origin: String }

    func selected(_ peer: GenPeer, _ id: NumericIdentity, namespace: String?) -> Bool {
        let gi = identities[id]
        let podInScope: (String, String, String)? = gi?.pod.flatMap { p in (namespace == nil || p.ns == namespace) ? p : nil }
        switch peer {
        case .app(let a): return podInScope?.0 == a
        case .tier(let t): return podInScope?.1 == t
        case .allInNamespace: return podInScope != nil
        case .entityAll: return true
        case .entityWorld: return [2, 9, 10].contains(id) || gi?.cidr != nil
        case .entityHost: return id == 1
        case .entityCluster: return [1, 3, 4, 5, 6, 7, 8].contains(id) || gi?.pod != nil
        case .cidr(let c, let except):
            guard let q = gi?.cidr else { return false }
            return prefix(c).contains(q) && !except.contains { prefix($0).contains(q) }
        case .none: return false
        }
    }

    /// The specificity (L4 prefix length) with which a port entry covers a packet, or nil.
    static func covers(_ p: GenPort, proto: UInt8, port: UInt16) -> Int? {
        let protos: [UInt8] = p.proto == .any ? [6, 17, 132] : [p.proto.number]
        guard protos.contains(proto) else { return nil }
        if p.port == 0 { return 8 }
        guard let end = p.end, end > p.port else { return port == p.port ? 24 : nil }
        guard port >= p.port && port <= end else { return nil }
        // The largest aligned block around the port inside the range.
        for k in stride(from: 16, through: 0, by: -1) {
            let size = UInt32(1) << UInt32(k)
            let lo = UInt32(port) / size * size, hi = lo + size - 1
            if lo >= UInt32(p.port) && hi <= UInt32(end) { return 24 - k }
        }
        return nil
    }

    func claims(_ dir: TrafficDirection, peer: NumericIdentity, proto: UInt8, port: UInt16) -> [Claim] {
        let selecting = policies.filter(\.selectsSubject)
        var out: [Claim] = []
        // fromRequires of every selecting policy constrain every endpoint peer (allow and deny separately),
        // each requirement scoped to its own policy's namespace.
        func requirementsHold(deny: Bool) -> Bool {
            for p in selecting {
                for r in (deny ? p.lists[dir]?.deny : p.lists[dir]?.allow) ?? [] {
                    guard let t = r.requiresTier else { continue }
                    guard let pod = identities[peer]?.pod, pod.tier == t, p.namespace == nil || pod.ns == p.namespace else { return false }
                }
            }
            return true
        }
        let name = dir == .ingress ? "ingress" : "egress"
        for p in selecting {
            for (deny, rules) in [(true, p.lists[dir]?.deny), (false, p.lists[dir]?.allow)] {
                for (i, r) in (rules ?? []).enumerated() {
                    let origin = "\(p.ref) spec.\(name)\(deny ? "Deny" : "")[\(i)]"
                    let wildcard = r.peers.contains(.entityAll) || (r.peers == [.none] && r.ports != .all)
                    let endpointPeer: (GenPeer) -> Bool = { if case .app = $0 { return true }; if case .tier = $0 { return true }; return $0 == .allInNamespace }
                    guard wildcard || r.peers.contains(where: {
                        selected($0, peer, namespace: p.namespace) && (!endpointPeer($0) || requirementsHold(deny: deny))
                    }) else { continue }
                    switch r.ports {
                    case .all: out.append(Claim(deny: deny, length: 0, l7: nil, origin: origin))
                    case .icmp(let t):
                        if proto == IPProtocol.icmp && port == UInt16(t) { out.append(Claim(deny: deny, length: 24, l7: nil, origin: origin)) }
                    case .ports(let prs):
                        for pr in prs {
                            for pp in pr.ports {
                                if let len = Self.covers(pp, proto: proto, port: port) {
                                    out.append(Claim(deny: deny, length: len, l7: deny ? nil : pr.l7, origin: origin))
                                }
                            }
                        }
                    }
                }
            }
        }
        let enforced = selecting.contains { p in
            !(p.lists[dir]?.allow ?? []).isEmpty || !(p.lists[dir]?.deny ?? []).isEmpty
        }
        let defaultDeny = selecting.contains { p in
            (!(p.lists[dir]?.allow ?? []).isEmpty || !(p.lists[dir]?.deny ?? []).isEmpty) && p.defaultDeny[dir] != false
        }
        if !enforced { out.append(Claim(deny: false, length: 0, l7: nil, origin: "allow-any-\(name)")) }
        else if !defaultDeny { out.append(Claim(deny: false, length: 0, l7: nil, origin: "allow-all-\(name)-no-default-deny")) }
        // (Membrane adds the allow-localhost key only where ingress is enforced; elsewhere allow-any covers it.)
        if dir == .ingress && allowLocalhost && peer == 1 && enforced {
            out.append(Claim(deny: false, length: 0, l7: nil, origin: "allow-localhost-ingress"))
        }
        return out
    }

    func expected(_ dir: TrafficDirection, peer: NumericIdentity, proto: UInt8, port: UInt16) -> (Decision, Set<String>) {
        let cs = claims(dir, peer: peer, proto: proto, port: port)
        let denies = cs.filter(\.deny)
        if !denies.isEmpty { return (.deny, Set(denies.map(\.origin))) }
        guard let best = cs.map(\.length).max() else { return (.defaultDeny, []) }
        let top = cs.filter { $0.length == best }
        let origins = Set(top.map(\.origin))
        if top.contains(where: { $0.l7 == nil }) { return (.allow, origins) }
        return (.allowL7(Set(top.compactMap(\.l7))), origins)
    }
}

/// An entry with origins replaced by their descriptions, so that engines with different origin numbering compare.
struct NormalizedEntry: Hashable {
    var isDeny: Bool
    var auth: Bool
    var origins: [String]
    var parser: L7Parser?
    var ruleSets: Set<[String]>
    var allowAllBy: [String]
    var conflicting: [L7Parser]
}

func normalized(_ engine: PolicyEngine, _ ep: UInt16) -> [PolicyMapKey: NormalizedEntry] {
    guard let m = engine.mapState(ep) else { return [:] }
    func names(_ os: [OriginID]) -> [String] { os.map { engine.origins[$0].description }.sorted() }
    return m.entries.mapValues { e in
        NormalizedEntry(isDeny: e.isDeny, auth: e.authRequired, origins: names(e.origins), parser: e.l7?.parser,
                        ruleSets: Set((e.l7?.ruleSets ?? []).map { [engine.origins[$0.origin].description, "\($0.rules)"] }),
                        allowAllBy: names(e.l7?.allowAllBy ?? []), conflicting: e.l7?.conflictingParsers ?? [])
    }
}

@Suite struct MapStatePropertyTests {
    static let ports: [UInt16] = [0, 1, 53, 79, 80, 81, 443, 1023, 1024, 7999, 8000, 8080, 8191, 8192, 8500, 8703, 8704, 9000, 9001, 65535]

    /// Builds the world of one case: pods in two namespaces, the subject endpoint, and the policies.
    static func build(seed: UInt64) -> (PolicyEngine, GroundTruth, [NumericIdentity]) {
        var rng = SplitMix64(seed: seed)
        var engine = PolicyEngine()
        var ids: [NumericIdentity: GenIdentity] = [:]
        for r in ReservedIdentity.allCases { ids[r.rawValue] = GenIdentity(id: r.rawValue, labels: r.labels, pod: nil, cidr: nil) }
        for ns in ["default", "other"] {
            for app in Generator.apps {
                for tier in Generator.tiers where ns == "default" || rng.chance(0.5) {
                    let labels = podLabels(ns: ns, ["app": app, "tier": tier])
                    let id = engine.allocateIdentity(labels)
                    ids[id.id] = GenIdentity(id: id.id, labels: labels, pod: (app, tier, ns), cidr: nil)
                }
            }
        }
        let subject = engine.allocateIdentity(podLabels(["app": "subject", "tier": "front"]))
        var policies: [GenPolicy] = []
        for i in 0..<rng.int(1..<4) { policies.append(Generator.policy(&rng, name: "p\(i)")) }
        for p in policies { engine.apply(p.render()) }
        engine.upsertEndpoint(EndpointSubject(id: 1, identity: subject))
        for (p, id) in engine.cidrIdentities { ids[id] = GenIdentity(id: id, labels: engine.identity(id)!.labels, pod: nil, cidr: p) }
        let truth = GroundTruth(policies: policies, identities: ids, cidrIdentity: engine.cidrIdentities)
        return (engine, truth, ids.keys.sorted() + [99_999])
    }

    @Test func lookupMatchesGroundTruth() {
        var failures = 0
        for seed in UInt64(1)...300 where failures < 5 {
            let (engine, truth, peers) = Self.build(seed: seed)
            let map = engine.mapState(1)!
            search: for dir in TrafficDirection.allCases {
                for peer in peers {
                    var packets: [(UInt8, UInt16)] = [(IPProtocol.icmp, 0), (IPProtocol.icmp, 8)]
                    for proto in [IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp] { for p in Self.ports { packets.append((proto, p)) } }
                    for (proto, port) in packets {
                        let (want, wantOrigins) = truth.expected(dir, peer: peer, proto: proto, port: port)
                        let got = decision(map, dir, peer, proto, port)
                        var gotOrigins: Set<String> = []
                        if let (_, e) = map.lookup(direction: dir, identity: peer, proto: proto, port: port) {
                            gotOrigins = Set(e.origins.map { engine.origins[$0].description })
                        }
                        if got != want || gotOrigins != wantOrigins {
                            Issue.record("""
                                seed \(seed): \(dir) peer \(peer) \(IPProtocol.name(proto))/\(port): got \(got) \(gotOrigins.sorted()), \
                                expected \(want) \(wantOrigins.sorted())
                                policies: \(truth.policies.map { "\($0.name) ns=\($0.namespace ?? "-") sel=\($0.selectsSubject) dd=\($0.defaultDeny) \($0.lists)" })
                                """)
                            failures += 1
                            break search
                        }
                    }
                }
            }
        }
    }

    /// Every key of the map is reachable: resolution never leaves an entry whose key the lookup can't return for some packet.
    @Test func entriesAreSelfConsistent() {
        for seed in UInt64(1)...100 {
            let (engine, _, _) = Self.build(seed: seed)
            let map = engine.mapState(1)!
            for (key, entry) in map.entries {
                // Probe the key's own first packet: the lookup must return this key or a longer one.
                let proto = key.l4.length >= 8 ? key.l4.proto : IPProtocol.tcp
                let found = map.lookup(direction: key.direction, identity: key.identity, proto: proto, port: key.l4.port)
                #expect(found != nil, "seed \(seed): \(key)")
                if let f = found { #expect(f.key.l4.length >= key.l4.length, "seed \(seed): \(key) shadowed by \(f.key)") }
                if entry.isDeny { #expect(entry.l7 == nil) }
            }
        }
    }

    // MARK: Incremental vs. from scratch

    struct Op: CustomStringConvertible {
        enum Kind { case upsertIdentity(NumericIdentity, LabelSet), removeIdentity(NumericIdentity), upsertPolicy(GenPolicy), removePolicy(String),
                    upsertEndpoint(UInt16, Identity), removeEndpoint(UInt16) }
        var kind: Kind
        var description: String {
            switch kind {
            case .upsertIdentity(let i, let l): "upsertIdentity \(i) \(l)"
            case .removeIdentity(let i): "removeIdentity \(i)"
            case .upsertPolicy(let p): "upsertPolicy \(p.name) \(p.lists)"
            case .removePolicy(let n): "removePolicy \(n)"
            case .upsertEndpoint(let e, let i): "upsertEndpoint \(e) \(i)"
            case .removeEndpoint(let e): "removeEndpoint \(e)"
            }
        }
    }

    @Test func incrementalEqualsFromScratch() {
        // Removable peer identities get fixed numbers; endpoint identities are stable (never removed).
        let pool: [LabelSet] = Generator.apps.flatMap { app in Generator.tiers.map { podLabels(["app": app, "tier": $0]) } }
            + [podLabels(ns: "other", ["app": "a", "tier": "front"]), podLabels(ns: "other", ["app": "b", "tier": "back"])]
        let endpointIdentities = [Identity(id: 5000, labels: podLabels(["app": "subject", "tier": "front", "ep": "1"])),
                                  Identity(id: 5001, labels: podLabels(["app": "subject", "tier": "back", "ep": "2"])),
                                  Identity(id: 5002, labels: podLabels(["app": "a", "tier": "front", "ep": "3"]))]
        var failures = 0
        for seed in UInt64(1)...200 where failures < 3 {
            var rng = SplitMix64(seed: seed &* 7919)
            var engine = PolicyEngine()
            var identities: [NumericIdentity: LabelSet] = [:]
            var policies: [ResourceRef: GenPolicy] = [:]
            var endpoints: [UInt16: Identity] = [:]
            var log: [Op] = []
            for step in 0..<25 {
                let op: Op
                switch rng.int(0..<12) {
                case 0...2:
                    let i = rng.int(0..<pool.count)
                    // Sometimes relabel an existing number.
                    let labels = rng.chance(0.2) ? pool[rng.int(0..<pool.count)] : pool[i]
                    op = Op(kind: .upsertIdentity(NumericIdentity(1000 + i), labels))
                case 3: op = Op(kind: .removeIdentity(NumericIdentity(1000 + rng.int(0..<pool.count))))
                case 4...7: op = Op(kind: .upsertPolicy(Generator.policy(&rng, name: "p\(rng.int(0..<4))")))
                case 8: op = Op(kind: .removePolicy("p\(rng.int(0..<4))"))
                case 9, 10:
                    let e = rng.int(0..<endpointIdentities.count)
                    op = Op(kind: .upsertEndpoint(UInt16(e + 1), endpointIdentities[e]))
                default: op = Op(kind: .removeEndpoint(UInt16(rng.int(0..<endpointIdentities.count) + 1)))
                }
                log.append(op)
                switch op.kind {
                case .upsertIdentity(let id, let l): engine.upsertIdentity(Identity(id: id, labels: l)); identities[id] = l
                case .removeIdentity(let id): engine.removeIdentity(id); identities[id] = nil
                case .upsertPolicy(let p): engine.apply(p.render()); policies[p.ref] = p
                case .removePolicy(let n):
                    // The CNP default/pN, or the CCNP pN when there is one.
                    let ref = policies[cnpRef(n, ns: nil)] != nil && rng.chance(0.5) ? cnpRef(n, ns: nil) : cnpRef(n)
                    engine.removePolicy(ref); policies[ref] = nil
                case .upsertEndpoint(let e, let i):
                    engine.upsertEndpoint(EndpointSubject(id: e, identity: i)); endpoints[e] = i
                    // An endpoint brings its identity into the cache; it stays after the endpoint goes.
                    identities[i.id] = i.labels
                case .removeEndpoint(let e): engine.removeEndpoint(e); endpoints[e] = nil
                }

                // From scratch: identities, policies, endpoints.
                var fresh = PolicyEngine()
                for (id, l) in identities.sorted(by: { $0.key < $1.key }) { fresh.upsertIdentity(Identity(id: id, labels: l)) }
                for p in policies.values.sorted(by: { $0.ref < $1.ref }) { fresh.apply(p.render()) }
                for (e, i) in endpoints.sorted(by: { $0.key < $1.key }) { fresh.upsertEndpoint(EndpointSubject(id: e, identity: i)) }

                #expect(engine.endpointIDs == fresh.endpointIDs)
                var mismatch: String?
                for e in fresh.endpointIDs {
                    let a = normalized(engine, e), b = normalized(fresh, e)
                    if a != b {
                        let extra = a.filter { b[$0.key] != $0.value }.keys.sorted().prefix(4)
                        let missing = b.filter { a[$0.key] != $0.value }.keys.sorted().prefix(4)
                        mismatch = "endpoint \(e): incremental has \(a.count) entries, fresh \(b.count); differing incremental \(Array(extra)), fresh \(Array(missing))"
                            + (extra.first.map { "\n  incremental[\($0)] = \(String(describing: a[$0])) fresh = \(String(describing: b[$0]))" } ?? "")
                        break
                    }
                    for dir in TrafficDirection.allCases where engine.posture(e, dir) != fresh.posture(e, dir) {
                        mismatch = "endpoint \(e): posture \(dir) differs"
                    }
                    if engine.selectingPolicies(e) != fresh.selectingPolicies(e) {
                        mismatch = "endpoint \(e): selecting policies differ: incremental \(engine.selectingPolicies(e)), fresh \(fresh.selectingPolicies(e))"
                    }
                }
                if let mismatch {
                    let ops = log.map { "  \($0)" }.joined(separator: "\n")
                    Issue.record("seed \(seed &* 7919) step \(step): \(mismatch)\nops:\n\(ops)")
                    failures += 1
                    break
                }
            }
        }
    }
}
