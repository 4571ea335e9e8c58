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
/// `encoded` is the datapath's value layout (8 bytes): `be16 proxy_port | u8 flags | u8 auth_type | u32 cookie`,
/// flags bit 0 = deny, bit 1 = redirect; the cookie indexes the attribution table.
public struct PolicyEntry: Hashable, Sendable {
    public var isDeny: Bool
    public var l7: L7Policy?
    public var authRequired: Bool
    /// The policy rules that decided this entry (deny rules for a deny, the most specific allows for an allow).
    public var origins: [OriginID]

    public var isRedirect: Bool { l7 != nil }
    public func proxyPort(_ direction: TrafficDirection) -> UInt16 { l7?.parser.proxyPort(direction) ?? 0 }

    public static let encodedSize = 8

    public func encoded(direction: TrafficDirection, cookie: UInt32) -> [UInt8] {
        let port = proxyPort(direction)
        var flags: UInt8 = 0
        if isDeny { flags |= 1 }
        if isRedirect { flags |= 2 }
        var out: [UInt8] = [UInt8(port >> 8), UInt8(port & 0xff), flags, authRequired ? 1 : 0]
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
/// Rules contribute claims on keys (`raw`). Claims overlap: a deny on an identity for all ports and an
/// allow on any identity for port 80, say. The datapath's lookup is two longest-prefix matches (the
/// peer's identity and the wildcard identity 0), taking the entry with the longer L4 prefix and, on a tie,
/// the peer's. `entries` is built so that this lookup returns, for every packet, the resolution of
/// exactly the claims that cover it: the key set is closed under intersection of a peer's keys with the
/// more specific wildcard keys, and each key's value is resolved from all claims that cover it.
/// Resolution (Cilium's rule priority): any deny wins; otherwise the most specific covering allows decide,
/// and a plain allow among them makes their L7 rules moot; no claim at all means default deny.
public struct MapState: Sendable {
    struct Slot: Hashable, Sendable {
        var direction: TrafficDirection
        var identity: NumericIdentity
    }

    private(set) var raw: [Slot: [L4Prefix: [Contribution]]] = [:]
    public private(set) var entries: [PolicyMapKey: PolicyEntry] = [:]
    private var finalKeys: [Slot: [L4Prefix]] = [:]

    public init() {}

    public var count: Int { entries.count }

    // MARK: Claims

    mutating func add(_ c: Contribution, direction: TrafficDirection, identity: NumericIdentity, l4: L4Prefix) -> Bool {
        let slot = Slot(direction: direction, identity: identity)
        var claims = raw[slot, default: [:]][l4, default: []]
        if claims.contains(c) { return false }
        claims.append(c)
        raw[slot, default: [:]][l4] = claims
        return true
    }

    mutating func remove(where predicate: (Contribution) -> Bool, direction: TrafficDirection, identity: NumericIdentity) -> Bool {
        let slot = Slot(direction: direction, identity: identity)
        guard var byL4 = raw[slot] else { return false }
        var changed = false
        for (l4, claims) in byL4 {
            let kept = claims.filter { !predicate($0) }
            if kept.count != claims.count {
                changed = true
                byL4[l4] = kept.isEmpty ? nil : kept
            }
        }
        raw[slot] = byL4.isEmpty ? nil : byL4
        return changed
    }

    mutating func removeAll(where predicate: (Contribution) -> Bool) -> Set<Slot> {
        var touched = Set<Slot>()
        for slot in Array(raw.keys) where remove(where: predicate, direction: slot.direction, identity: slot.identity) {
            touched.insert(slot)
        }
        return touched
    }

    // MARK: Resolution

    /// Recomputes the entries of the slots whose claims changed. A change on the wildcard identity
    /// affects every identity of that direction.
    mutating func resolve(_ slots: Set<Slot>) {
        var todo = slots
        for slot in slots where slot.identity == 0 {
            for other in raw.keys where other.direction == slot.direction { todo.insert(other) }
            for other in finalKeys.keys where other.direction == slot.direction { todo.insert(other) }
        }
        for slot in todo { resolveSlot(slot) }
    }

    mutating func resolveAll() { resolve(Set(raw.keys).union(finalKeys.keys)) }

    private mutating func resolveSlot(_ slot: Slot) {
        for l4 in finalKeys[slot] ?? [] {
            entries[PolicyMapKey(direction: slot.direction, identity: slot.identity, l4: l4)] = nil
        }
        let own = raw[slot] ?? [:]
        let wildcard = slot.identity == 0 ? [:] : (raw[Slot(direction: slot.direction, identity: 0)] ?? [:])
        var keys = Set(own.keys)
        if !wildcard.isEmpty {
            for s in own.keys { for w in wildcard.keys where w.length > s.length && s.contains(w) { keys.insert(w) } }
        }
        var stored: [L4Prefix] = []
        stored.reserveCapacity(keys.count)
        for key in keys {
            if let entry = MapState.resolveClaims(covering: key, own: own, wildcard: wildcard) {
                entries[PolicyMapKey(direction: slot.direction, identity: slot.identity, l4: key)] = entry
                stored.append(key)
            }
        }
        finalKeys[slot] = stored.isEmpty ? nil : stored
    }

    /// Cilium's rule priority over the claims that cover `key`.
    static func resolveClaims(covering key: L4Prefix, own: [L4Prefix: [Contribution]],
                              wildcard: [L4Prefix: [Contribution]]) -> PolicyEntry? {
        var denyOrigins: [OriginID] = []
        var bestAllowLength: Int = -1
        var best: [Contribution] = []
        func visit(_ table: [L4Prefix: [Contribution]]) {
            for (l4, claims) in table where l4.contains(key) {
                for c in claims {
                    if c.isDeny { denyOrigins.append(c.origin); continue }
                    let len = Int(l4.length)
                    if len > bestAllowLength { bestAllowLength = len; best = [c] }
                    else if len == bestAllowLength { best.append(c) }
                }
            }
        }
        visit(own)
        visit(wildcard)
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
                if let e = entries[key] { return (key, e) }
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
        entries.map { ($0.key, $0.value) }.sorted { $0.key < $1.key }
    }
}

func sortedUnique(_ xs: [OriginID]) -> [OriginID] { Array(Set(xs)).sorted() }
