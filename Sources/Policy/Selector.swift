import PolicyAPI

/// One requirement of a selector over an identity's labels.
///
/// `source` is `any` unless the selector key named one (`k8s:app`, `reserved:host`), as in Cilium.
public struct LabelRequirement: Hashable, Sendable, Comparable, CustomStringConvertible {
    public enum Operation: Hashable, Sendable {
        case `in`([String]), notIn([String]), exists, doesNotExist
    }
    public var source: String
    public var key: String
    public var operation: Operation

    public init(source: String = LabelSource.any, key: String, operation: Operation) {
        self.source = source; self.key = key; self.operation = operation
    }

    /// Splits a selector key `source:key` (no source means `any`).
    public static func parseKey(_ text: String) -> (source: String, key: String) {
        if let colon = text.firstIndex(of: ":") {
            return (String(text[..<colon]), String(text[text.index(after: colon)...]))
        }
        return (LabelSource.any, text)
    }

    @inlinable func sourceMatches(_ s: String) -> Bool { source == LabelSource.any || source == s }

    public func matches(_ labels: LabelSet) -> Bool {
        switch operation {
        case .in(let values):
            for l in labels.labels where l.key == key && sourceMatches(l.source) && values.contains(l.value) { return true }
            return false
        case .notIn(let values):
            for l in labels.labels where l.key == key && sourceMatches(l.source) && values.contains(l.value) { return false }
            return true
        case .exists:
            for l in labels.labels where l.key == key && sourceMatches(l.source) { return true }
            return false
        case .doesNotExist:
            for l in labels.labels where l.key == key && sourceMatches(l.source) { return false }
            return true
        }
    }

    /// A requirement `key=value` that every selected identity must carry, usable as an index.
    var indexKey: String? {
        if case .in(let values) = operation, values.count == 1 { return key + "=" + values[0] }
        return nil
    }

    public var description: String {
        let k = "\(source):\(key)"
        switch operation {
        case .in(let v) where v.count == 1: return "\(k)=\(v[0])"
        case .in(let v): return "\(k) in (\(v.joined(separator: ",")))"
        case .notIn(let v): return "\(k) notin (\(v.joined(separator: ",")))"
        case .exists: return k
        case .doesNotExist: return "!\(k)"
        }
    }

    public static func < (a: LabelRequirement, b: LabelRequirement) -> Bool { a.description < b.description }
}

/// A label selector over identities: every requirement must hold. Empty selects every identity.
public struct EndpointSelector: Hashable, Sendable, CustomStringConvertible {
    public private(set) var requirements: [LabelRequirement]

    public init(_ requirements: [LabelRequirement]) {
        self.requirements = Array(Set(requirements)).sorted()
    }

    /// Converts a Kubernetes selector as written (keys may carry a source prefix).
    public init(_ selector: LabelSelector) {
        var reqs: [LabelRequirement] = []
        for (k, v) in selector.matchLabels {
            let (s, key) = LabelRequirement.parseKey(k)
            reqs.append(LabelRequirement(source: s, key: key, operation: .in([v])))
        }
        for e in selector.matchExpressions {
            let (s, key) = LabelRequirement.parseKey(e.key)
            let op: LabelRequirement.Operation
            switch e.operator {
            case .in: op = .in(e.values.sorted())
            case .notIn: op = .notIn(e.values.sorted())
            case .exists: op = .exists
            case .doesNotExist: op = .doesNotExist
            }
            reqs.append(LabelRequirement(source: s, key: key, operation: op))
        }
        self.init(reqs)
    }

    public static let wildcard = EndpointSelector([])
    public static func label(_ l: Label) -> EndpointSelector {
        EndpointSelector([LabelRequirement(source: l.source, key: l.key, operation: .in([l.value]))])
    }
    public static func reserved(_ r: ReservedIdentity) -> EndpointSelector {
        EndpointSelector([LabelRequirement(source: LabelSource.reserved, key: r.name, operation: .exists)])
    }

    public var isWildcard: Bool { requirements.isEmpty }

    public func adding(_ more: [LabelRequirement]) -> EndpointSelector { EndpointSelector(requirements + more) }

    /// True when some requirement constrains `key` (any source).
    public func constrains(key: String) -> Bool { requirements.contains { $0.key == key } }
    public func constrains(keyPrefix: String) -> Bool { requirements.contains { $0.key.hasPrefix(keyPrefix) } }
    public func constrains(source: String) -> Bool { requirements.contains { $0.source == source } }

    @inlinable public func matches(_ labels: LabelSet) -> Bool {
        for r in requirements where !r.matches(labels) { return false }
        return true
    }

    public var description: String { requirements.isEmpty ? "{}" : requirements.map(\.description).joined(separator: ", ") }
}

/// Anything a peer can be selected by, in the form the selector cache interns.
///
/// Entities and node selectors become `.labels` selectors over reserved labels; CIDR selectors match the
/// `cidr:` label of CIDR identities by prefix containment (and `/0` matches the world identities, which
/// stand for every address no policy names); FQDN selectors match the `fqdn:` label that the DNS proxy
/// gives to the addresses it saw for a selected name.
public enum PeerSelector: Hashable, Sendable, CustomStringConvertible {
    case labels(EndpointSelector)
    case cidr(IPPrefix, except: [IPPrefix])
    case fqdn(String)

    public var description: String {
        switch self {
        case .labels(let s): return s.description
        case .cidr(let p, let except):
            return except.isEmpty ? "cidr:\(p)" : "cidr:\(p) except \(except.map(\.description).joined(separator: ","))"
        case .fqdn(let f): return "fqdn:\(f)"
        }
    }
}

/// The `cidr:` label of a prefix, in Cilium's spelling (IPv6 colons become dashes so the label parses).
public enum CIDRLabel {
    public static func label(for prefix: IPPrefix) -> Label {
        let text = prefix.isIPv4 ? prefix.description : prefix.description.replacingColons()
        return Label(source: LabelSource.cidr, key: text)
    }

    public static func prefix(of label: Label) -> IPPrefix? {
        guard label.source == LabelSource.cidr else { return nil }
        if label.key.contains(":") || label.key.split(separator: ".").count == 4 { return IPPrefix(label.key) }
        return IPPrefix(String(label.key.map { $0 == "-" ? ":" : $0 }))
    }
}

extension String {
    fileprivate func replacingColons() -> String { String(map { $0 == ":" ? "-" : $0 }) }
}

/// A derived view of an identity that the selector cache needs on every evaluation.
struct IdentityFacts: Sendable {
    var identity: Identity
    var cidr: IPPrefix?
    var isWorld: Bool

    init(_ identity: Identity) {
        self.identity = identity
        var cidr: IPPrefix?
        var isWorld = false
        for l in identity.labels.labels {
            if l.source == LabelSource.cidr, let p = CIDRLabel.prefix(of: l) {
                if cidr == nil || p.length > cidr!.length { cidr = p }
            } else if l.source == LabelSource.reserved,
                      l.key == "world" || l.key == "world-ipv4" || l.key == "world-ipv6" {
                isWorld = true
            }
        }
        self.cidr = cidr; self.isWorld = isWorld
    }
}

extension PeerSelector {
    func selects(_ facts: IdentityFacts) -> Bool {
        switch self {
        case .labels(let s): return s.matches(facts.identity.labels)
        case .fqdn(let f):
            return facts.identity.labels.has(Label(source: LabelSource.fqdn, key: f))
        case .cidr(let prefix, let except):
            if let c = facts.cidr {
                guard prefix.contains(c) else { return false }
                return !except.contains { $0.contains(c) }
            }
            // A world identity stands for addresses outside every prefix that policies name:
            // only a selector covering the whole family covers them.
            guard facts.isWorld, prefix.length == 0 else { return false }
            let labels = facts.identity.labels
            if labels.contains(source: LabelSource.reserved, key: "world-ipv6") { return !prefix.isIPv4 }
            if labels.contains(source: LabelSource.reserved, key: "world-ipv4") { return prefix.isIPv4 }
            return true
        }
    }
}
