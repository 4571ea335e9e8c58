import PolicyAPI

/// A handle to an interned selector.
public struct SelectorID: Hashable, Sendable, Comparable {
    public let raw: Int32
    public static func < (a: SelectorID, b: SelectorID) -> Bool { a.raw < b.raw }
}

/// The set of identities each selector selects, kept current as identities come and go.
///
/// Selectors are interned: a selector written in many policies is evaluated once. Adding an identity
/// evaluates only the selectors that could select it — those indexed under one of its labels, plus the
/// few that cannot be indexed (wildcards, negations, CIDR and FQDN selectors) — so the cost of an
/// identity change does not grow with the number of policies that ignore it.
public struct SelectorCache: Sendable {
    struct Entry: Sendable {
        var selector: PeerSelector
        var selected: Set<NumericIdentity>
        var references: Int
    }

    private var entries: [Entry?] = []
    private var freeSlots: [Int32] = []
    private var byValue: [PeerSelector: SelectorID] = [:]
    private var identities: [NumericIdentity: IdentityFacts] = [:]
    /// `key=value` → identities carrying that label, so that interning a selector evaluates only candidates.
    private var identitiesByLabel: [String: Set<NumericIdentity>] = [:]
    /// Selectors nobody references any more, kept (and kept current) because regenerating an endpoint
    /// releases and re-interns the same selectors; purged when they outnumber the referenced ones.
    private var unreferenced = Set<SelectorID>()

    /// `key=value` → label selectors that require it.
    private var labelIndex: [String: Set<SelectorID>] = [:]
    /// Label selectors with no single-valued requirement to index under.
    private var unindexed: Set<SelectorID> = []
    /// CIDR selectors, evaluated only for CIDR and world identities.
    /// CIDR selectors by their prefix: an identity's prefix is covered only by selectors on its ≤ 129
    /// enclosing prefixes, so a new CIDR identity visits those instead of every CIDR selector.
    private var cidrIndex: [IPPrefix: Set<SelectorID>] = [:]
    /// FQDN selectors by their `fqdn:` label key.
    private var fqdnIndex: [String: SelectorID] = [:]

    public init() {}

    /// Selectors in use (cached unreferenced ones are not counted).
    public var selectorCount: Int { byValue.count - unreferenced.count }
    public var identityCount: Int { identities.count }
    public var allIdentities: [Identity] { identities.values.map(\.identity).sorted() }
    public func identity(_ id: NumericIdentity) -> Identity? { identities[id]?.identity }

    public func selector(_ id: SelectorID) -> PeerSelector { entries[Int(id.raw)]!.selector }
    public func selections(_ id: SelectorID) -> Set<NumericIdentity> { entries[Int(id.raw)]!.selected }

    /// Interns `selector` and takes a reference; the selections are computed on first use.
    public mutating func intern(_ selector: PeerSelector) -> SelectorID {
        if let id = byValue[selector] {
            entries[Int(id.raw)]!.references += 1
            unreferenced.remove(id)
            return id
        }
        var selected = Set<NumericIdentity>()
        if case .labels(let s) = selector, let key = s.requirements.lazy.compactMap(\.indexKey).first {
            for n in identitiesByLabel[key] ?? [] where selector.selects(identities[n]!) { selected.insert(n) }
        } else {
            for (n, facts) in identities where selector.selects(facts) { selected.insert(n) }
        }
        let entry = Entry(selector: selector, selected: selected, references: 1)
        let id: SelectorID
        if let slot = freeSlots.popLast() {
            id = SelectorID(raw: slot); entries[Int(slot)] = entry
        } else {
            id = SelectorID(raw: Int32(entries.count)); entries.append(entry)
        }
        byValue[selector] = id
        index(id, selector)
        return id
    }

    /// Takes one more reference on an interned selector.
    public mutating func retain(_ id: SelectorID) {
        entries[Int(id.raw)]!.references += 1
        unreferenced.remove(id)
    }

    /// Drops one reference. A selector without references stays cached until unreferenced selectors
    /// outnumber referenced ones, then those are forgotten.
    public mutating func release(_ id: SelectorID) {
        guard entries[Int(id.raw)] != nil else { return }
        entries[Int(id.raw)]!.references -= 1
        guard entries[Int(id.raw)]!.references == 0 else { return }
        unreferenced.insert(id)
        if unreferenced.count > 1024 && unreferenced.count * 2 > byValue.count { purgeUnreferenced() }
    }

    private mutating func purgeUnreferenced() {
        for id in unreferenced {
            guard let e = entries[Int(id.raw)] else { continue }
            entries[Int(id.raw)] = nil
            freeSlots.append(id.raw)
            byValue[e.selector] = nil
            unindex(id, e.selector)
        }
        unreferenced.removeAll()
    }

    private mutating func index(_ id: SelectorID, _ selector: PeerSelector) {
        switch selector {
        case .labels(let s):
            if let key = s.requirements.lazy.compactMap(\.indexKey).first { labelIndex[key, default: []].insert(id) }
            else { unindexed.insert(id) }
        case .cidr(let p, _): cidrIndex[p, default: []].insert(id)
        case .fqdn(let f): fqdnIndex[f] = id
        }
    }

    private mutating func unindex(_ id: SelectorID, _ selector: PeerSelector) {
        switch selector {
        case .labels(let s):
            if let key = s.requirements.lazy.compactMap(\.indexKey).first { labelIndex[key]?.remove(id) }
            else { unindexed.remove(id) }
        case .cidr(let p, _):
            cidrIndex[p]?.remove(id)
            if cidrIndex[p]?.isEmpty == true { cidrIndex[p] = nil }
        case .fqdn(let f): fqdnIndex[f] = nil
        }
    }

    /// The selectors that may select an identity with these facts (a superset of those that do).
    private func candidates(_ facts: IdentityFacts) -> [SelectorID] {
        var out: [SelectorID] = Array(unindexed)
        for l in facts.identity.labels.labels {
            if let s = labelIndex[l.key + "=" + l.value] { out.append(contentsOf: s) }
            if l.source == LabelSource.fqdn, let s = fqdnIndex[l.key] { out.append(s) }
        }
        if let c = facts.cidr {
            for len in 0...c.length {
                if let s = cidrIndex[IPPrefix(address: c.address, length: len)] { out.append(contentsOf: s) }
            }
        } else if facts.isWorld {
            for zero in [IPPrefix(address: IPAddress(ipv4: 0), length: 0), IPPrefix(address: IPAddress(ipv6: 0, 0), length: 0)] {
                if let s = cidrIndex[zero] { out.append(contentsOf: s) }
            }
        }
        return out
    }

    /// Adds (or relabels) an identity; returns the selectors whose selections changed.
    @discardableResult
    public mutating func upsertIdentity(_ identity: Identity) -> [SelectorID] {
        var changed = Set<SelectorID>()
        if identities[identity.id] != nil { changed.formUnion(removeIdentity(identity.id)) }
        let facts = IdentityFacts(identity)
        identities[identity.id] = facts
        for l in identity.labels.labels { identitiesByLabel[l.key + "=" + l.value, default: []].insert(identity.id) }
        for sid in candidates(facts) {
            if entries[Int(sid.raw)]!.selector.selects(facts),
               entries[Int(sid.raw)]!.selected.insert(identity.id).inserted {
                changed.insert(sid)
            }
        }
        return changed.sorted()
    }

    /// Removes an identity; returns the selectors that had selected it.
    @discardableResult
    public mutating func removeIdentity(_ id: NumericIdentity) -> [SelectorID] {
        guard let facts = identities.removeValue(forKey: id) else { return [] }
        for l in facts.identity.labels.labels {
            let key = l.key + "=" + l.value
            identitiesByLabel[key]?.remove(id)
            if identitiesByLabel[key]?.isEmpty == true { identitiesByLabel[key] = nil }
        }
        var changed: [SelectorID] = []
        for sid in Set(candidates(facts)) where entries[Int(sid.raw)]!.selected.remove(id) != nil {
            changed.append(sid)
        }
        return changed.sorted()
    }
}
