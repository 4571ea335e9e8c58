import PolicyAPI

/// Cilium's policy enforcement modes.
public enum EnforcementMode: String, Sendable, CaseIterable {
    /// Enforce in a direction once a policy with rules in that direction selects the endpoint.
    case `default`
    /// Enforce both directions on every endpoint, selected or not.
    case always
    /// Never enforce: everything is allowed, explicit denies included.
    case never
}

/// The agent settings that change how policy applies.
public struct EngineSettings: Sendable, Hashable {
    public var enforcementMode: EnforcementMode = .default
    /// Would-be drops are forwarded and reported with verdict AUDIT.
    public var auditMode = false
    /// Host policies (CCNP `nodeSelector`) apply to the host endpoint.
    public var hostFirewall = false
    /// The local host may reach local endpoints (Cilium's `allow-localhost`).
    public var allowLocalhost = true
    /// Addresses outside the cluster get world-ipv4/world-ipv6 rather than world.
    public var dualStack = false
    public init(enforcementMode: EnforcementMode = .default, auditMode: Bool = false, hostFirewall: Bool = false,
                allowLocalhost: Bool = true, dualStack: Bool = false) {
        self.enforcementMode = enforcementMode; self.auditMode = auditMode; self.hostFirewall = hostFirewall
        self.allowLocalhost = allowLocalhost; self.dualStack = dualStack
    }
}

/// A named container port, for resolving named ports in rules.
public struct NamedPort: Hashable, Sendable {
    public var name: String
    public var proto: UInt8
    public var port: UInt16
    public init(name: String, proto: UInt8, port: UInt16) { self.name = name; self.proto = proto; self.port = port }
}

/// A local endpoint the engine computes a policy for: a pod, or its node's host endpoint.
public struct EndpointSubject: Hashable, Sendable {
    public var id: UInt16
    public var identity: Identity
    public var isHost: Bool
    /// The endpoint's own container ports, for ingress rules with named ports.
    public var namedPorts: [NamedPort]
    public init(id: UInt16, identity: Identity, isHost: Bool = false, namedPorts: [NamedPort] = []) {
        self.id = id; self.identity = identity; self.isHost = isHost; self.namedPorts = namedPorts
    }
}

/// What a direction of an endpoint's policy enforces, and why.
public struct DirectionPosture: Hashable, Sendable {
    public var enforced: Bool
    public var defaultDeny: Bool
    /// Policies that put the endpoint into default deny in this direction (the answer to "why dropped").
    public var defaultDenyBy: [ResourceRef]
    /// `"enforcement-mode always"` and the like, when the posture does not come from a policy.
    public var reason: String?
}

/// The staged policy calculation for the endpoints of one node.
///
/// Policies enter the repository; their selectors are interned in the selector cache; each endpoint's
/// selecting rules are distilled into its `MapState`. Every change is applied incrementally: an identity
/// added or removed touches only the map entries of that identity on endpoints whose selectors select it;
/// a policy change touches only the endpoints it selects (before or after).
public struct PolicyEngine: Sendable {
    public private(set) var settings: EngineSettings
    public private(set) var context: PolicyContext
    public private(set) var origins = OriginTable()
    public private(set) var selectorCache = SelectorCache()
    public private(set) var revision: UInt64 = 1
    private var allocator = IdentityAllocator()

    /// The repository: converted specs by policy, with the revision each was last changed in.
    public private(set) var policies: [ResourceRef: [PolicyRuleSpec]] = [:]
    public private(set) var policyRevisions: [ResourceRef: UInt64] = [:]
    /// Policies by namespace ("" for cluster-scoped ones), so an endpoint only looks at those that can select it.
    private var policiesByNamespace: [String: Set<ResourceRef>] = [:]
    /// Cluster-wide named ports, for egress rules with named ports.
    public private(set) var clusterNamedPorts: [String: Set<NamedPort>] = [:]
    /// CIDR identities for every prefix that policies name.
    private var cidrPrefixes: [IPPrefix: Int] = [:]
    public private(set) var cidrIdentities: [IPPrefix: NumericIdentity] = [:]

    struct PolicyDirection: Hashable, Sendable {
        var ref: ResourceRef
        var direction: TrafficDirection
    }

    struct Use: Sendable {
        var direction: TrafficDirection
        var l4: [L4Prefix]
        var template: Contribution
    }

    struct EndpointState: Sendable {
        var subject: EndpointSubject
        var specs: [ResourceRef]
        /// The specs that select the endpoint, in repository order (by policy, then spec).
        var selecting: [PolicyRuleSpec] = []
        var posture: [TrafficDirection: DirectionPosture] = [:]
        var requirements: [TrafficDirection: [LabelRequirement]] = [:]
        var denyRequirements: [TrafficDirection: [LabelRequirement]] = [:]
        var mapState = MapState()
        var uses: [SelectorID: [Use]] = [:]
        /// Interned selectors by the policy and direction that interned them, to release on change.
        var selectorsByPolicy: [PolicyDirection: [SelectorID]] = [:]
    }

    /// The slots a change touched, to resolve only those; a full regeneration resolves all and tracks none.
    struct TouchedSlots {
        var all = false
        var slots = Set<MapState.Slot>()
        mutating func insert(_ s: MapState.Slot) { if !all { slots.insert(s) } }
    }

    private var endpoints: [UInt16: EndpointState] = [:]
    /// Endpoints whose map state changed since `takeChangedEndpoints()` was last called: what a datapath
    /// must program next.
    private var changedEndpoints = Set<UInt16>()

    /// The endpoints whose map state changed since the last call (including removed ones).
    public mutating func takeChangedEndpoints() -> Set<UInt16> {
        defer { changedEndpoints.removeAll() }
        return changedEndpoints
    }
    /// selector → endpoints that use it, for identity updates.
    private var selectorUsers: [SelectorID: Set<UInt16>] = [:]

    public init(settings: EngineSettings = EngineSettings(), context: PolicyContext = PolicyContext()) {
        self.settings = settings; self.context = context
        for r in ReservedIdentity.allCases { selectorCache.upsertIdentity(.reserved(r)) }
    }

    // MARK: Identities

    /// Adds or relabels an identity and updates every map state that selects it. Returns the endpoints touched.
    @discardableResult
    public mutating func upsertIdentity(_ identity: Identity) -> [UInt16] {
        let changed = selectorCache.upsertIdentity(identity)
        return applyIdentityChange(identity.id, removed: false, changedSelectors: changed)
    }

    /// Removes an identity from the selector cache and from every map state.
    @discardableResult
    public mutating func removeIdentity(_ id: NumericIdentity) -> [UInt16] {
        let changed = selectorCache.removeIdentity(id)
        return applyIdentityChange(id, removed: true, changedSelectors: changed)
    }

    /// Allocates (or finds) the identity for a label set, as the agent does for a new workload.
    public mutating func allocateIdentity(_ labels: LabelSet, local: Bool = false) -> Identity {
        let (identity, isNew) = allocator.allocate(labels, local: local)
        if isNew { upsertIdentity(identity) }
        return identity
    }

    public func identity(_ id: NumericIdentity) -> Identity? { selectorCache.identity(id) }

    /// Drops one reference to an allocated identity; the identity goes when its last user does.
    public mutating func releaseIdentity(_ id: NumericIdentity) {
        if allocator.release(id) { removeIdentity(id) }
    }

    /// Brings the claims on identity `id` up to date for the selectors whose selection of it changed;
    /// claims through selectors that still select it (or never did) are untouched.
    private mutating func applyIdentityChange(_ id: NumericIdentity, removed: Bool, changedSelectors: [SelectorID]) -> [UInt16] {
        var touched = Set<UInt16>()
        for sid in changedSelectors { touched.formUnion(selectorUsers[sid] ?? []) }
        let changed = Set(changedSelectors.map(\.raw))
        for ep in touched {
            // Taken out so that the map state is uniquely referenced and mutates in place.
            var state = endpoints.removeValue(forKey: ep)!
            for dir in TrafficDirection.allCases {
                _ = state.mapState.remove(where: { changed.contains($0.selector) }, direction: dir, identity: id)
            }
            if !removed {
                for sid in changedSelectors where selectorCache.selections(sid).contains(id) {
                    for use in state.uses[sid] ?? [] {
                        let cid = state.mapState.intern(use.template)
                        for l4 in use.l4 { state.mapState.add(cid, direction: use.direction, identity: id, l4: l4) }
                    }
                }
            }
            state.mapState.resolve([MapState.Slot(direction: .ingress, identity: id), MapState.Slot(direction: .egress, identity: id)])
            endpoints[ep] = state
            changedEndpoints.insert(ep)
        }
        return touched.sorted()
    }

    // MARK: Repository

    /// Adds or replaces a policy (all its specs) and brings the affected map states up to date.
    /// Returns the endpoints whose policy was recomputed.
    @discardableResult
    public mutating func upsertPolicy(_ ref: ResourceRef, specs: [PolicyRuleSpec]) -> [UInt16] {
        let old = policies[ref] ?? []
        revision += 1
        policies[ref] = specs
        policyRevisions[ref] = revision
        policiesByNamespace[ref.namespace ?? "", default: []].insert(ref)
        updatePrefixes(removing: old, adding: specs)
        return regenerate(ref, affectedBy: old + specs)
    }

    @discardableResult
    public mutating func removePolicy(_ ref: ResourceRef) -> [UInt16] {
        guard let old = policies.removeValue(forKey: ref) else { return [] }
        revision += 1
        policyRevisions[ref] = nil
        policiesByNamespace[ref.namespace ?? ""]?.remove(ref)
        updatePrefixes(removing: old, adding: [])
        return regenerate(ref, affectedBy: old)
    }

    /// Converts and adds a decoded policy resource.
    @discardableResult
    public mutating func apply(_ body: ResourceBody, ref: ResourceRef) -> [UInt16] {
        switch body {
        case .ciliumPolicy(let p): return upsertPolicy(ref, specs: RuleConverter.convert(p, context: context))
        case .networkPolicy(let p): return upsertPolicy(ref, specs: [RuleConverter.convert(p, context: context)])
        default: return []
        }
    }

    public mutating func setClusterNamedPorts(_ ports: [NamedPort]) {
        clusterNamedPorts = Dictionary(grouping: ports, by: \.name).mapValues(Set.init)
    }

    private func prefixes(of specs: [PolicyRuleSpec]) -> [IPPrefix] {
        var out: [IPPrefix] = []
        for spec in specs {
            for rules in Array(spec.allow.values) + Array(spec.deny.values) {
                for rule in rules {
                    for sel in rule.otherSelectors {
                        if case .cidr(let p, let except) = sel {
                            if p.length > 0 { out.append(p) }
                            out += except
                        }
                    }
                }
            }
        }
        return out
    }

    private mutating func updatePrefixes(removing old: [PolicyRuleSpec], adding new: [PolicyRuleSpec]) {
        for p in prefixes(of: new) {
            cidrPrefixes[p, default: 0] += 1
            if cidrPrefixes[p] == 1 {
                let identity = allocateIdentity(cidrLabels(p), local: true)
                cidrIdentities[p] = identity.id
            }
        }
        for p in prefixes(of: old) {
            guard let n = cidrPrefixes[p] else { continue }
            if n > 1 { cidrPrefixes[p] = n - 1; continue }
            cidrPrefixes[p] = nil
            if let id = cidrIdentities.removeValue(forKey: p), allocator.release(id) { removeIdentity(id) }
        }
    }

    /// The world label for an address family, as Cilium gives it to CIDR and world identities.
    public func worldLabel(ipv4: Bool) -> Label {
        guard settings.dualStack else { return ReservedIdentity.world.label }
        return ipv4 ? ReservedIdentity.worldIPv4.label : ReservedIdentity.worldIPv6.label
    }

    public func worldIdentity(ipv4: Bool) -> NumericIdentity {
        guard settings.dualStack else { return ReservedIdentity.world.rawValue }
        return ipv4 ? ReservedIdentity.worldIPv4.rawValue : ReservedIdentity.worldIPv6.rawValue
    }

    public func cidrLabels(_ p: IPPrefix) -> LabelSet { LabelSet([CIDRLabel.label(for: p), worldLabel(ipv4: p.isIPv4)]) }

    /// The node-local identity for an address that a DNS lookup tied to `name`: labelled with every
    /// `toFQDNs` selector (in any policy) that matches the name, as the DNS proxy does.
    public mutating func fqdnIdentity(name: String, address: IPAddress) -> Identity? {
        var labels: [Label] = []
        for specs in policies.values {
            for spec in specs {
                for rule in spec.allow[.egress] ?? [] {
                    for case .fqdn(let f) in rule.otherSelectors
                    where FQDNMatcher.matches(pattern: f, name: FQDNMatcher.normalize(name)) {
                        labels.append(Label(source: LabelSource.fqdn, key: f))
                    }
                }
            }
        }
        guard !labels.isEmpty else { return nil }
        labels.append(CIDRLabel.label(for: IPPrefix(address: address, length: address.bitWidth)))
        labels.append(worldLabel(ipv4: address.isIPv4))
        return allocateIdentity(LabelSet(labels), local: true)
    }

    // MARK: Endpoints

    /// Adds or updates a local endpoint and computes its policy.
    public mutating func upsertEndpoint(_ subject: EndpointSubject) {
        if subject.identity.id > 10 && selectorCache.identity(subject.identity.id) == nil { upsertIdentity(subject.identity) }
        if let old = endpoints.removeValue(forKey: subject.id) { releaseSelectors(of: old) }
        // Endpoints of one identity share one policy computation (all others are current here).
        if var shared = endpoints.values.first(where: {
            $0.subject.identity == subject.identity && $0.subject.isHost == subject.isHost && $0.subject.namedPorts == subject.namedPorts
        }) {
            shared.subject = subject
            for sids in shared.selectorsByPolicy.values {
                for sid in sids { selectorCache.retain(sid); selectorUsers[sid, default: []].insert(subject.id) }
            }
            endpoints[subject.id] = shared
            changedEndpoints.insert(subject.id)
            return
        }
        endpoints[subject.id] = EndpointState(subject: subject, specs: [])
        regenerate(subject.id)
    }

    public mutating func removeEndpoint(_ id: UInt16) {
        guard let old = endpoints.removeValue(forKey: id) else { return }
        releaseSelectors(of: old)
        changedEndpoints.insert(id)
    }

    public var endpointIDs: [UInt16] { endpoints.keys.sorted() }
    public func mapState(_ endpoint: UInt16) -> MapState? { endpoints[endpoint]?.mapState }
    public func posture(_ endpoint: UInt16, _ dir: TrafficDirection) -> DirectionPosture? { endpoints[endpoint]?.posture[dir] }
    public func subject(_ endpoint: UInt16) -> EndpointSubject? { endpoints[endpoint]?.subject }
    public func selectingPolicies(_ endpoint: UInt16) -> [ResourceRef] { endpoints[endpoint]?.specs ?? [] }

    private mutating func releaseSelectors(of state: EndpointState) {
        for sids in state.selectorsByPolicy.values {
            for sid in sids {
                selectorCache.release(sid)
                selectorUsers[sid]?.remove(state.subject.id)
                if selectorUsers[sid]?.isEmpty == true { selectorUsers[sid] = nil }
            }
        }
    }

    func selects(_ spec: PolicyRuleSpec, _ subject: EndpointSubject) -> Bool {
        switch spec.subject {
        case .endpoints(let sel): return !subject.isHost && sel.matches(subject.identity.labels)
        case .node(let sel): return subject.isHost && settings.hostFirewall && sel.matches(subject.identity.labels)
        }
    }

    /// Brings the endpoints a policy change affects up to date: those its old or new specs select.
    private mutating func regenerate(_ ref: ResourceRef, affectedBy specs: [PolicyRuleSpec]) -> [UInt16] {
        var affected: [UInt16] = []
        for (id, state) in endpoints where state.specs.contains(ref) || specs.contains(where: { selects($0, state.subject) }) {
            affected.append(id)
        }
        affected.sort()
        for id in affected { update(id, forChangeOf: ref) }
        return affected
    }

    /// The specs that select an endpoint, in a stable order: only the policies of its namespace and the
    /// cluster-scoped ones can.
    private func selectingSpecs(_ subject: EndpointSubject) -> [PolicyRuleSpec] {
        var refs = Array(policiesByNamespace[""] ?? [])
        if !subject.isHost, let ns = subject.identity.labels.values(forKey: WellKnownLabel.podNamespace).first(where: { _ in true })?.value {
            refs += policiesByNamespace[ns] ?? []
        }
        var hits: [ResourceRef] = []
        for ref in refs where policies[ref]?.contains(where: { selects($0, subject) }) == true { hits.append(ref) }
        var out: [PolicyRuleSpec] = []
        for ref in hits.sorted() { for spec in policies[ref]! where selects(spec, subject) { out.append(spec) } }
        return out
    }

    private func directionState(_ subject: EndpointSubject, _ selecting: [PolicyRuleSpec])
        -> (posture: [TrafficDirection: DirectionPosture], allow: [TrafficDirection: [LabelRequirement]], deny: [TrafficDirection: [LabelRequirement]]) {
        var posture: [TrafficDirection: DirectionPosture] = [:]
        var allow: [TrafficDirection: [LabelRequirement]] = [:]
        var deny: [TrafficDirection: [LabelRequirement]] = [:]
        for dir in TrafficDirection.allCases {
            posture[dir] = self.posture(dir, subject: subject, selecting: selecting)
            allow[dir] = selecting.flatMap { $0.allowRequirements[dir] ?? [] }
            deny[dir] = selecting.flatMap { $0.denyRequirements[dir] ?? [] }
        }
        return (posture, allow, deny)
    }

    /// Applies one policy's change to one endpoint, a direction at a time. Where the direction's posture
    /// and requirements stay the same, only that policy's claims are replaced (cost proportional to the
    /// policy); otherwise that direction is rebuilt, and the other one left alone.
    private mutating func update(_ id: UInt16, forChangeOf ref: ResourceRef) {
        guard var state = endpoints.removeValue(forKey: id) else { return }  // mutated in place, then put back
        // Patch the selecting specs rather than scanning the repository again.
        var selecting = state.selecting.filter { $0.ref != ref }
        let added = (policies[ref] ?? []).filter { selects($0, state.subject) }
        if !added.isEmpty {
            let at = selecting.firstIndex { $0.ref > ref } ?? selecting.count
            selecting.insert(contentsOf: added, at: at)
        }
        let (posture, allowReq, denyReq) = directionState(state.subject, selecting)
        var touched = TouchedSlots()
        for dir in TrafficDirection.allCases {
            let same = posture[dir]!.enforced == state.posture[dir]?.enforced
                && posture[dir]!.defaultDeny == state.posture[dir]?.defaultDeny
                && allowReq[dir] == state.requirements[dir] && denyReq[dir] == state.denyRequirements[dir]
            state.posture[dir] = posture[dir]; state.requirements[dir] = allowReq[dir]; state.denyRequirements[dir] = denyReq[dir]
            if same {
                removeClaims(&state, of: [ref], dir, touched: &touched)
                if posture[dir]!.enforced {
                    for spec in selecting where spec.ref == ref { addRules(&state, spec, dir, touched: &touched) }
                }
            } else {
                let refs = Set(state.selectorsByPolicy.keys.filter { $0.direction == dir }.map(\.ref))
                removeClaims(&state, of: refs, dir, touched: &touched)
                for id in [0, ReservedIdentity.host.rawValue] {
                    if state.mapState.remove(where: { _ in true }, direction: dir, identity: id) {
                        touched.insert(MapState.Slot(direction: dir, identity: id))
                    }
                }
                addDirection(&state, dir, selecting, touched: &touched)
            }
        }
        state.selecting = selecting
        state.specs = Array(Set(selecting.map(\.ref))).sorted()
        state.mapState.resolve(touched.slots)
        endpoints[id] = state
        changedEndpoints.insert(id)
    }

    /// Removes the claims that some policies made in one direction, and releases their selectors.
    private mutating func removeClaims(_ state: inout EndpointState, of refs: Set<ResourceRef>, _ dir: TrafficDirection,
                                       touched: inout TouchedSlots) {
        var old = Set<OriginID>()
        for ref in refs { old.formUnion(origins.byRef[ref] ?? []) }
        if old.isEmpty { return }
        let keys = refs.map { PolicyDirection(ref: $0, direction: dir) }
        var slots = Set<NumericIdentity>()
        for key in keys {
            for sid in state.selectorsByPolicy[key] ?? [] { slots.formUnion(selectorCache.selections(sid)) }
        }
        let predicate: (Contribution) -> Bool = { old.contains($0.origin) }
        for n in slots where state.mapState.remove(where: predicate, direction: dir, identity: n) {
            touched.insert(MapState.Slot(direction: dir, identity: n))
        }
        // The any-peer slot is touched only when the policies had claims there.
        if state.mapState.remove(where: predicate, direction: dir, identity: 0) { touched.insert(MapState.Slot(direction: dir, identity: 0)) }
        for key in keys {
            for sid in state.selectorsByPolicy.removeValue(forKey: key) ?? [] {
                state.uses[sid]?.removeAll { $0.direction == dir && old.contains($0.template.origin) }
                if state.uses[sid]?.isEmpty == true {
                    state.uses[sid] = nil
                    selectorUsers[sid]?.remove(state.subject.id)
                    if selectorUsers[sid]?.isEmpty == true { selectorUsers[sid] = nil }
                }
                selectorCache.release(sid)
            }
        }
    }

    /// Recomputes one endpoint's policy from the repository (the distillation of the deep dive).
    private mutating func regenerate(_ id: UInt16) {
        var state = endpoints[id]!
        releaseSelectors(of: state)
        let subject = state.subject
        let selecting = selectingSpecs(subject)
        state = EndpointState(subject: subject, specs: Array(Set(selecting.map(\.ref))).sorted(), selecting: selecting)
        (state.posture, state.requirements, state.denyRequirements) = directionState(subject, selecting)
        var touched = TouchedSlots(all: true)
        for dir in TrafficDirection.allCases { addDirection(&state, dir, selecting, touched: &touched) }
        state.mapState.resolveAll()
        endpoints[id] = state
        changedEndpoints.insert(id)
    }

    /// Adds everything one direction of an endpoint's policy claims, given its posture.
    private mutating func addDirection(_ state: inout EndpointState, _ dir: TrafficDirection, _ selecting: [PolicyRuleSpec],
                                       touched: inout TouchedSlots) {
        let posture = state.posture[dir]!
        guard posture.enforced else {
            let origin = origins.intern(.derived(dir == .ingress ? "allow-any-ingress" : "allow-any-egress"))
            addDerived(&state, dir, identity: 0, origin: origin, touched: &touched)
            return
        }
        for spec in selecting { addRules(&state, spec, dir, touched: &touched) }
        if !posture.defaultDeny {
            // Rules without default deny: everything not denied is allowed (Cilium adds a wildcard rule).
            let origin = origins.intern(.derived(dir == .ingress ? "allow-all-ingress-no-default-deny" : "allow-all-egress-no-default-deny"))
            addDerived(&state, dir, identity: 0, origin: origin, touched: &touched)
        }
        if dir == .ingress && !state.subject.isHost && settings.allowLocalhost {
            let origin = origins.intern(.derived("allow-localhost-ingress"))
            addDerived(&state, .ingress, identity: ReservedIdentity.host.rawValue, origin: origin, touched: &touched)
        }
    }

    private mutating func addRules(_ state: inout EndpointState, _ spec: PolicyRuleSpec, _ dir: TrafficDirection,
                                   touched: inout TouchedSlots) {
        for rule in spec.deny[dir] ?? [] { addRule(&state, spec: spec, rule: rule, dir: dir, isDeny: true, touched: &touched) }
        for rule in spec.allow[dir] ?? [] { addRule(&state, spec: spec, rule: rule, dir: dir, isDeny: false, touched: &touched) }
    }

    private func posture(_ dir: TrafficDirection, subject: EndpointSubject, selecting: [PolicyRuleSpec]) -> DirectionPosture {
        if settings.enforcementMode == .never {
            return DirectionPosture(enforced: false, defaultDeny: false, defaultDenyBy: [], reason: "policy enforcement mode never")
        }
        if subject.isHost && !settings.hostFirewall {
            return DirectionPosture(enforced: false, defaultDeny: false, defaultDenyBy: [], reason: "host firewall disabled")
        }
        let by = Array(Set(selecting.filter { $0.defaultDeny.contains(dir) }.map(\.ref))).sorted()
        if settings.enforcementMode == .always {
            return DirectionPosture(enforced: true, defaultDeny: true, defaultDenyBy: by, reason: "policy enforcement mode always")
        }
        let enforced = selecting.contains { $0.hasRules.contains(dir) }
        return DirectionPosture(enforced: enforced, defaultDeny: enforced && !by.isEmpty, defaultDenyBy: by,
                                reason: enforced ? nil : "no policy with \(dir == .ingress ? "ingress" : "egress") rules selects the endpoint")
    }

    private mutating func addDerived(_ state: inout EndpointState, _ dir: TrafficDirection, identity: NumericIdentity,
                                     origin: OriginID, touched: inout TouchedSlots) {
        let c = Contribution(isDeny: false, l7: nil, authRequired: false, origin: origin, selector: -1)
        _ = state.mapState.add(c, direction: dir, identity: identity, l4: .all)
        touched.insert(MapState.Slot(direction: dir, identity: identity))
    }

    private mutating func addRule(_ state: inout EndpointState, spec: PolicyRuleSpec, rule: PeerRule, dir: TrafficDirection,
                                  isDeny: Bool, touched: inout TouchedSlots) {
        let origin = origins.intern(PolicyOrigin(ref: spec.ref, rulePath: rule.path, uid: spec.uid))
        // L4 prefixes, each with the L7 rules of its port rule.
        var l4Groups: [(l4: [L4Prefix], l7: L7Rules?)] = []
        switch rule.ports {
        case .all: l4Groups = [([.all], nil)]
        case .icmps(let fields):
            l4Groups = [(fields.map { .port($0.family == .ipv4 ? IPProtocol.icmp : IPProtocol.icmpv6, UInt16($0.type)) }, nil)]
        case .ports(let portRules):
            for pr in portRules {
                var prefixes: [L4Prefix] = []
                for pp in pr.ports { prefixes += l4Prefixes(pp, dir: dir, subject: state.subject) }
                if !prefixes.isEmpty { l4Groups.append((prefixes, isDeny ? nil : pr.rules)) }
            }
        }
        if l4Groups.isEmpty { return }
        let requirements = isDeny ? state.denyRequirements[dir]! : state.requirements[dir]!
        var selectors: [PeerSelector] = rule.otherSelectors
        for s in rule.endpointSelectors { selectors.append(.labels(requirements.isEmpty ? s : s.adding(requirements))) }

        for group in l4Groups {
            if rule.wildcardPeer {
                let c = Contribution(isDeny: isDeny, l7: group.l7, authRequired: rule.authRequired, origin: origin, selector: -1)
                for l4 in group.l4 { _ = state.mapState.add(c, direction: dir, identity: 0, l4: l4) }
                touched.insert(MapState.Slot(direction: dir, identity: 0))
            }
        }
        for sel in selectors {
            let sid = selectorCache.intern(sel)
            state.selectorsByPolicy[PolicyDirection(ref: spec.ref, direction: dir), default: []].append(sid)
            selectorUsers[sid, default: []].insert(state.subject.id)
            for group in l4Groups {
                let c = Contribution(isDeny: isDeny, l7: group.l7, authRequired: rule.authRequired, origin: origin, selector: sid.raw)
                state.uses[sid, default: []].append(Use(direction: dir, l4: group.l4, template: c))
                let cid = state.mapState.intern(c)
                for id in selectorCache.selections(sid) {
                    for l4 in group.l4 { state.mapState.add(cid, direction: dir, identity: id, l4: l4) }
                    touched.insert(MapState.Slot(direction: dir, identity: id))
                }
            }
        }
    }

    /// The L4 prefixes of one `ports` entry: ANY is TCP, UDP and SCTP (never ICMP); ranges split into
    /// prefixes; named ports resolve on the endpoint's own ports (ingress) or cluster-wide (egress).
    func l4Prefixes(_ pp: PortProtocol, dir: TrafficDirection, subject: EndpointSubject) -> [L4Prefix] {
        let protos: [UInt8] = pp.protocol == .any ? [IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp] : [pp.protocol.number]
        var out: [L4Prefix] = []
        for proto in protos {
            switch pp.port {
            case .any: out.append(.proto(proto))
            case .number(let n):
                if let end = pp.endPort, end > n { out += L4Prefix.range(proto: proto, n, end) }
                else { out.append(.port(proto, n)) }
            case .named(let name):
                let candidates: [NamedPort] = dir == .ingress
                    ? subject.namedPorts.filter { $0.name == name }
                    : Array(clusterNamedPorts[name] ?? [])
                for np in candidates where np.proto == proto { out.append(.port(proto, np.port)) }
            }
        }
        return Array(Set(out)).sorted()
    }
}

extension PolicyEngine {
    /// The identity of a kube-apiserver address outside the cluster: `kube-apiserver` and `world`.
    public mutating func apiServerIdentity(_ address: IPAddress) -> NumericIdentity {
        allocateIdentity(LabelSet([ReservedIdentity.kubeAPIServer.label, worldLabel(ipv4: address.isIPv4),
                                   CIDRLabel.label(for: IPPrefix(address: address, length: address.bitWidth))]), local: true).id
    }
}
