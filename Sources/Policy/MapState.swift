import PolicyAPI

/// Index of a policy origin (a rule of a policy, or a derived allowance) in the engine's `OriginTable`.
public typealias OriginID = UInt32

/// A key of an endpoint's policy map: direction, peer identity (0 = any), and an L4 prefix.
///
/// `encoded` is the one definition of the datapath's key layout (12 bytes, an LPM trie key):
/// `u32 prefixlen (host order) | u32 identity (host order) | u8 direction | u8 protocol | be16 port`,
/// where `prefixlen = 40 + l4.length`: identity and direction always match exactly, and the
/// protocol/port bits match up to the L4 prefix length.
public struct PolicyMapKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var direction: TrafficDirection
    public var identity: NumericIdentity
    public var l4: L4Prefix

    public init(direction: TrafficDirection, identity: NumericIdentity, l4: L4Prefix) {
        self.direction = direction; self.identity = identity; self.l4 = l4
    }

    public static let encodedSize = 12

    public var encoded: [UInt8] {
        var out = [UInt8](); out.reserveCapacity(12)
        let prefixLength = UInt32(40) + UInt32(l4.length)
        withUnsafeBytes(of: prefixLength.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: identity.littleEndian) { out.append(contentsOf: $0) }
        out.append(direction.rawValue)
        out.append(l4.proto)
        out.append(UInt8(l4.port >> 8)); out.append(UInt8(l4.port & 0xff))
        return out
    }

    public init?(encoded b: [UInt8]) {
        guard b.count == 12, let dir = TrafficDirection(rawValue: b[8]) else { return nil }
        let plen = UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
        guard plen >= 40, plen <= 64 else { return nil }
        let id = UInt32(b[4]) | UInt32(b[5]) << 8 | UInt32(b[6]) << 16 | UInt32(b[7]) << 24
        self.init(direction: dir, identity: id,
                  l4: L4Prefix(proto: b[9], port: UInt16(b[10]) << 8 | UInt16(b[11]), length: UInt8(plen - 40)))
    }

    public var description: String { "\(direction) id=\(identity) \(l4)" }

    public static func < (a: Self, b: Self) -> Bool {
        (a.direction.rawValue, a.identity, a.l4) < (b.direction.rawValue, b.identity, b.l4)
    }
}

/// The L7 protocol a redirect hands traffic to.
public enum L7Parser: String, Hashable, Sendable, Comparable {
    case http, kafka, dns
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// The local proxy port for this parser and direction (Cilium allocates from 10000–20000).
    public func proxyPort(_ direction: TrafficDirection) -> UInt16 {
        switch (self, direction) {
        case (.dns, _): 10053
        case (.http, .ingress): 10080
        case (.http, .egress): 10081
        case (.kafka, .ingress): 10092
        case (.kafka, .egress): 10093
        }
    }
}

/// One set of L7 rules that applies on an entry, with the policy rule it came from.
public struct L7RuleSet: Hashable, Sendable {
    public var origin: OriginID
    public var rules: L7Rules
}

/// What the proxy enforces for the traffic of one map entry.
public struct L7Policy: Hashable, Sendable {
    public var parser: L7Parser
    /// Rule sets; a request is allowed when any rule of any set matches.
    public var ruleSets: [L7RuleSet]
    /// Policies whose plain L3/L4 allow on the same port makes the L7 rules moot: everything is allowed,
    /// though the traffic still goes through the proxy (so DNS is still learned and requests observed).
    public var allowAllBy: [OriginID]
    /// More than one parser claimed the same traffic; Membrane fails closed and drops it.
    public var conflictingParsers: [L7Parser]
}

/// The value of a policy map entry.
///
/// `encoded` is the datapath's value layout (`struct policy_value` in bpf/membrane.h, 12 bytes):
/// `be16 proxy_port | u8 flags | u8 auth_type | u8 l4_prefixlen | u8 pad[3] | u32 cookie (host order)`,
/// flags bit 0 = deny, bit 1 = redirect. `l4_prefixlen` repeats the key's L4 prefix length so that the
/// datapath can compare its two lookups; the cookie indexes the attribution of the entry in userspace.
public struct PolicyEntry: Hashable, Sendable {
    public var isDeny: Bool
    public var l7: L7Policy?
    public var authRequired: Bool
    /// The policy rules that decided this entry (deny rules for a deny, the most specific allows for an allow).
    public var origins: [OriginID]

    public var isRedirect: Bool { l7 != nil }
    public func proxyPort(_ direction: TrafficDirection) -> UInt16 { l7?.parser.proxyPort(direction) ?? 0 }

    public static let encodedSize = 12

    public func encoded(for key: PolicyMapKey, cookie: UInt32) -> [UInt8] {
        let port = proxyPort(key.direction)
        var flags: UInt8 = 0
        if isDeny { flags |= 1 }
        if isRedirect { flags |= 2 }
        var out: [UInt8] = [UInt8(port >> 8), UInt8(port & 0xff), flags, authRequired ? 1 : 0, key.l4.length, 0, 0, 0]
        withUnsafeBytes(of: cookie.littleEndian) { out.append(contentsOf: $0) }
        return out
    }
}

/// One rule's claim on a map key, before overlapping claims are resolved.
struct Contribution: Hashable, Sendable {
    var isDeny: Bool
    var l7: L7Rules?
    var authRequired: Bool
    var origin: OriginID
    /// The selector through which the rule selected the peer (-1 for wildcard and derived entries), so that
    /// an identity leaving one selector removes only that selector's claims.
    var selector: Int32
}

/// The concrete policy of one endpoint: the policy map contents, and the one lookup that decides traffic.
///
/// Rules contribute claims on keys. Claims overlap: a deny on an identity for all ports and an allow on
/// any identity for port 80, say. The datapath's lookup is two longest-prefix matches (the peer's identity
/// and the wildcard identity 0), taking the entry with the longer L4 prefix and, on a tie, the peer's.
/// The entries are built so that this lookup returns, for every packet, the resolution of exactly the
/// claims that cover it (Cilium's rule priority: any deny wins; otherwise the most specific covering
/// allows decide, and a plain allow among them makes their L7 rules moot; no claim means default deny):
///
/// - every claimed key is an entry, valued with the resolution of all claims covering it;
/// - where a peer's claim contains a more specific any-peer key `w` and a deny of the peer covers `w`,
///   `(peer, w)` is an entry too. Without it the lookup would pick the any-peer entry (longer prefix) and
///   miss the peer's deny. No other intersection matters: the peer's allows are all shorter than `w`, so
///   the most specific allows covering `w` are the any-peer ones either way.
///
/// Storage is compact because maps reach tens of thousands of entries: claims refer to interned
/// contributions, entries to interned values, and keys are packed into 64 bits.
public struct MapState: Sendable {
    struct Slot: Hashable, Sendable {
        var direction: TrafficDirection
        var identity: NumericIdentity
        var packed: UInt64 { UInt64(identity) << 1 | UInt64(direction.rawValue) }
        init(direction: TrafficDirection, identity: NumericIdentity) { self.direction = direction; self.identity = identity }
        init(packed: UInt64) { direction = TrafficDirection(rawValue: UInt8(packed & 1))!; identity = NumericIdentity(packed >> 1) }
    }

    struct Claim: Hashable, Sendable {
        var l4: L4Prefix
        var contribution: UInt32
    }

    struct SlotState: Sendable {
        var claims: SmallList<Claim> = .empty
        /// The L4 keys of this slot's entries, to clear them when the slot is resolved again.
        var keys: SmallList<L4Prefix> = .empty
    }

    private var contributions: [Contribution] = []
    private var contributionIndex: [Contribution: UInt32] = [:]
    private var slots: [UInt64: SlotState] = [:]
    private var resolved: [UInt64: UInt32] = [:]
    private var values: [PolicyEntry] = []
    private var valueIndex: [PolicyEntry: UInt32] = [:]
    /// Resolutions by the claims that cover a key (contribution and prefix length), which repeat a lot.
    private var memo: [[UInt64]: UInt32] = [:]
    private var memoSingle: [UInt32] = []
    /// Scratch space for the claims covering one key, reused across keys.
    private var signature: [UInt64] = []

    public init() {}

    public var count: Int { resolved.count }

    static func pack(_ key: PolicyMapKey) -> UInt64 {
        UInt64(key.identity) << 30 | UInt64(key.direction.rawValue) << 29 | UInt64(key.l4.proto) << 21
            | UInt64(key.l4.port) << 5 | UInt64(key.l4.length)
    }

    static func unpack(_ k: UInt64) -> PolicyMapKey {
        PolicyMapKey(direction: TrafficDirection(rawValue: UInt8(k >> 29 & 1))!, identity: NumericIdentity(k >> 30),
                     l4: L4Prefix(proto: UInt8(k >> 21 & 0xff), port: UInt16(k >> 5 & 0xffff), length: UInt8(k & 0x1f)))
    }

    /// The entries, for display and comparison.
    public var entries: [PolicyMapKey: PolicyEntry] {
        var out: [PolicyMapKey: PolicyEntry] = [:]
        out.reserveCapacity(resolved.count)
        for (k, v) in resolved { out[MapState.unpack(k)] = values[Int(v)] }
        return out
    }

    // MARK: Claims

    mutating func intern(_ c: Contribution) -> UInt32 {
        if let id = contributionIndex[c] { return id }
        let id = UInt32(contributions.count)
        contributions.append(c); contributionIndex[c] = id
        return id
    }

    @discardableResult
    mutating func add(_ c: Contribution, direction: TrafficDirection, identity: NumericIdentity, l4: L4Prefix) -> Bool {
        add(intern(c), direction: direction, identity: identity, l4: l4)
    }

    @discardableResult
    mutating func add(_ contribution: UInt32, direction: TrafficDirection, identity: NumericIdentity, l4: L4Prefix) -> Bool {
        slots[Slot(direction: direction, identity: identity).packed, default: SlotState()].claims
            .insert(Claim(l4: l4, contribution: contribution))
    }

    mutating func remove(where predicate: (Contribution) -> Bool, direction: TrafficDirection, identity: NumericIdentity) -> Bool {
        let key = Slot(direction: direction, identity: identity).packed
        guard let before = slots[key]?.claims.count, before > 0 else { return false }
        slots[key]!.claims.removeAll { predicate(contributions[Int($0.contribution)]) }
        return slots[key]!.claims.count != before
    }

    // MARK: Resolution

    /// The any-peer claims of one direction, grouped by key, with the prefix lengths in use.
    struct WildcardIndex {
        var byKey: [L4Prefix: [Claim]] = [:]
        var lengths: [UInt8] = []
        var keys: [L4Prefix] = []

        init(_ claims: [Claim]) {
            for c in claims { byKey[c.l4, default: []].append(c) }
            keys = byKey.keys.sorted { $0.length < $1.length }
            lengths = Array(Set(keys.map(\.length))).sorted()
        }

        func covering(_ key: L4Prefix, into out: inout [UInt64]) {
            for len in lengths where len <= key.length {
                if let cs = byKey[L4Prefix(proto: key.proto, port: key.port, length: len)] {
                    for c in cs { out.append(UInt64(c.contribution) << 8 | UInt64(len)) }
                }
            }
        }
    }

    /// Recomputes the entries of the slots whose claims changed. A change on the wildcard identity
    /// affects every identity of that direction.
    mutating func resolve(_ changed: Set<Slot>) {
        var todo = Set(changed.map(\.packed))
        for slot in changed where slot.identity == 0 {
            for key in slots.keys where Slot(packed: key).direction == slot.direction { todo.insert(key) }
        }
        resolve(packedSlots: Array(todo))
    }

    /// Resolves every slot (after a full regeneration), in place.
    mutating func resolveAll() {
        let wildcards = wildcardIndexes()
        resolved.reserveCapacity(slots.count)
        var index = slots.startIndex
        var emptied: [UInt64] = []
        while index != slots.endIndex {
            let (key, state) = (slots.keys[index], slots.values[index])
            let slot = Slot(packed: key)
            slots.values[index].keys = resolveSlot(slot, state, wildcards[Int(slot.direction.rawValue)])
            if state.claims.isEmpty && slots.values[index].keys.isEmpty { emptied.append(key) }
            index = slots.index(after: index)
        }
        for key in emptied { slots[key] = nil }
    }

    private func wildcardIndexes() -> [WildcardIndex] {
        TrafficDirection.allCases.map { WildcardIndex(Array(slots[Slot(direction: $0, identity: 0).packed]?.claims ?? .empty)) }
    }

    private mutating func resolve(packedSlots: [UInt64]) {
        let wildcards = wildcardIndexes()
        for key in packedSlots {
            guard let index = slots.index(forKey: key) else { continue }
            let slot = Slot(packed: key)
            let state = slots.values[index]
            let keys = resolveSlot(slot, state, wildcards[Int(slot.direction.rawValue)])
            if state.claims.isEmpty && keys.isEmpty { slots.remove(at: index) } else { slots.values[index].keys = keys }
        }
    }

    /// Replaces the entries of one slot; returns the keys it now has.
    private mutating func resolveSlot(_ slot: Slot, _ state: SlotState, _ wildcard: WildcardIndex) -> SmallList<L4Prefix> {
        let claims = state.claims
        state.keys.forEach { l4 in
            resolved[MapState.pack(PolicyMapKey(direction: slot.direction, identity: slot.identity, l4: l4))] = nil
        }
        let isWildcard = slot.identity == 0
        var keys = SmallList<L4Prefix>.empty
        claims.forEach { c in _ = keys.insert(c.l4) }
        if !isWildcard {
            // Intersections with more specific any-peer keys, where one of this peer's denies covers them.
            var denies: [L4Prefix] = []
            claims.forEach { c in if contributions[Int(c.contribution)].isDeny { denies.append(c.l4) } }
            if !denies.isEmpty {
                for w in wildcard.keys where !keys.contains(w) {
                    if denies.contains(where: { $0.length < w.length && $0.contains(w) }) { keys.append(w) }
                }
            }
        }
        var stored = SmallList<L4Prefix>.empty
        keys.forEach { key in
            signature.removeAll(keepingCapacity: true)
            claims.forEach { c in
                if c.l4.contains(key) { signature.append(UInt64(c.contribution) << 8 | UInt64(c.l4.length)) }
            }
            if !isWildcard { wildcard.covering(key, into: &signature) }
            guard let value = resolveSignature() else { return }
            resolved[MapState.pack(PolicyMapKey(direction: slot.direction, identity: slot.identity, l4: key))] = value
            stored.append(key)
        }
        return stored
    }

    /// The interned value resolving the claims in `signature`, memoized (most keys have one claim, whose
    /// resolution is cached in a flat table by contribution and prefix length).
    private mutating func resolveSignature() -> UInt32? {
        if signature.isEmpty { return nil }
        var single = -1
        if signature.count == 1 {
            single = Int(signature[0] >> 8) * 25 + Int(signature[0] & 0xff)
            if single < memoSingle.count, memoSingle[single] != UInt32.max { return memoSingle[single] }
        } else {
            signature.sort()
            if let v = memo[signature] { return v }
        }
        guard let entry = MapState.resolveClaims(signature.map { (contributions[Int($0 >> 8)], Int($0 & 0xff)) }) else { return nil }
        let value: UInt32
        if let v = valueIndex[entry] { value = v } else {
            value = UInt32(values.count); values.append(entry); valueIndex[entry] = value
        }
        if single >= 0 {
            if single >= memoSingle.count {
                memoSingle.append(contentsOf: repeatElement(UInt32.max, count: single + 1 - memoSingle.count + 64))
            }
            memoSingle[single] = value
        } else {
            memo[signature] = value
        }
        return value
    }

    /// Cilium's rule priority over the claims (with their prefix lengths) that cover one key.
    static func resolveClaims(_ covering: [(Contribution, Int)]) -> PolicyEntry? {
        var denyOrigins: [OriginID] = []
        var bestAllowLength = -1
        var best: [Contribution] = []
        for (c, len) in covering {
            if c.isDeny { denyOrigins.append(c.origin); continue }
            if len > bestAllowLength { bestAllowLength = len; best = [c] }
            else if len == bestAllowLength { best.append(c) }
        }
        if !denyOrigins.isEmpty {
            return PolicyEntry(isDeny: true, l7: nil, authRequired: false, origins: sortedUnique(denyOrigins))
        }
        if best.isEmpty { return nil }
        let plain = best.filter { $0.l7 == nil }
        let withL7 = best.filter { $0.l7 != nil }
        var l7: L7Policy?
        if !withL7.isEmpty {
            let parsers = Set(withL7.map { parser(of: $0.l7!) }).sorted()
            let sets = Set(withL7.map { L7RuleSet(origin: $0.origin, rules: $0.l7!) })
                .sorted { ($0.origin, $0.rules.parserName) < ($1.origin, $1.rules.parserName) }
            l7 = L7Policy(parser: parsers[0], ruleSets: sets,
                          allowAllBy: sortedUnique(plain.map(\.origin)),
                          conflictingParsers: parsers.count > 1 ? parsers : [])
        }
        return PolicyEntry(isDeny: false, l7: l7, authRequired: best.contains { $0.authRequired },
                           origins: sortedUnique(best.map(\.origin)))
    }

    static func parser(of rules: L7Rules) -> L7Parser {
        switch rules { case .http: .http; case .kafka: .kafka; case .dns: .dns }
    }

    // MARK: Lookup

    /// The datapath's lookup: longest L4 prefix for the peer and for the wildcard identity, the longer
    /// wins and the peer's wins a tie. `nil` means no entry: default deny.
    public func lookup(direction: TrafficDirection, identity: NumericIdentity, proto: UInt8, port: UInt16)
        -> (key: PolicyMapKey, entry: PolicyEntry)? {
        func longest(_ id: NumericIdentity) -> (PolicyMapKey, PolicyEntry)? {
            for length in stride(from: 24, through: 0, by: -1) {
                let key = PolicyMapKey(direction: direction, identity: id,
                                       l4: L4Prefix(proto: proto, port: port, length: UInt8(length)))
                if let v = resolved[MapState.pack(key)] { return (key, values[Int(v)]) }
            }
            return nil
        }
        let specific = identity == 0 ? nil : longest(identity)
        let any = longest(0)
        switch (specific, any) {
        case (nil, nil): return nil
        case (let s?, nil): return s
        case (nil, let a?): return a
        case (let s?, let a?): return a.0.l4.length > s.0.l4.length ? a : s
        }
    }

    /// The entries sorted for display.
    public var sortedEntries: [(key: PolicyMapKey, entry: PolicyEntry)] {
        resolved.map { (MapState.unpack($0.key), values[Int($0.value)]) }.sorted { $0.key < $1.key }
    }
}

func sortedUnique(_ xs: [OriginID]) -> [OriginID] { xs.count < 2 ? xs : Array(Set(xs)).sorted() }
