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

    /// `key=value` → label selectors that require it.
    private var labelIndex: [String: Set<SelectorID>] = [:]
    /// Label selectors with no single-valued requirement to index under.
    private var unindexed: Set<SelectorID> = []
    /// CIDR selectors, evaluated only for CIDR and world identities.
    private var cidrSelectors: Set<SelectorID> = []
    /// FQDN selectors by their `fqdn:` label key.
    private var fqdnIndex: [String: SelectorID] = [:]

    public init() {}

    public var selectorCount: Int { byValue.count }
    public var identityCount: Int { identities.count }
    public var allIdentities: [Identity] { identities.values.map(\.identity).sorted() }
    public func identity(_ id: NumericIdentity) -> Identity? { identities[id]?.identity }

    public func selector(_ id: SelectorID) -> PeerSelector { entries[Int(id.raw)]!.selector }
    public func selections(_ id: SelectorID) -> Set<NumericIdentity> { entries[Int(id.raw)]!.selected }

    /// Interns `selector` and takes a reference; the selections are computed on first use.
    public mutating func intern(_ selector: PeerSelector) -> SelectorID {
        if let id = byValue[selector] {
            entries[Int(id.raw)]!.references += 1
            return id
        }
        var selected = Set<NumericIdentity>()
        for (n, facts) in identities where selector.selects(facts) { selected.insert(n) }
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

    /// Drops one reference; the selector is forgotten with its last one.
    public mutating func release(_ id: SelectorID) {
        guard var e = entries[Int(id.raw)] else { return }
        e.references -= 1
        if e.references > 0 { entries[Int(id.raw)] = e; return }
        entries[Int(id.raw)] = nil
        freeSlots.append(id.raw)
        byValue[e.selector] = nil
        unindex(id, e.selector)
    }

    private mutating func index(_ id: SelectorID, _ selector: PeerSelector) {
        switch selector {
        case .labels(let s):
            if let key = s.requirements.lazy.compactMap(\.indexKey).first { labelIndex[key, default: []].insert(id) }
            else { unindexed.insert(id) }
        case .cidr: cidrSelectors.insert(id)
        case .fqdn(let f): fqdnIndex[f] = id
        }
    }

    private mutating func unindex(_ id: SelectorID, _ selector: PeerSelector) {
        switch selector {
        case .labels(let s):
            if let key = s.requirements.lazy.compactMap(\.indexKey).first { labelIndex[key]?.remove(id) }
            else { unindexed.remove(id) }
        case .cidr: cidrSelectors.remove(id)
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
        if facts.cidr != nil || facts.isWorld { out.append(contentsOf: cidrSelectors) }
        return out
    }

    /// Adds (or relabels) an identity; returns the selectors whose selections changed.
    @discardableResult
    public mutating func upsertIdentity(_ identity: Identity) -> [SelectorID] {
        var changed = Set<SelectorID>()
        if identities[identity.id] != nil { changed.formUnion(removeIdentity(identity.id)) }
        let facts = IdentityFacts(identity)
        identities[identity.id] = facts
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
        var changed: [SelectorID] = []
        for sid in Set(candidates(facts)) where entries[Int(sid.raw)]!.selected.remove(id) != nil {
            changed.append(sid)
        }
        return changed.sorted()
    }
}
