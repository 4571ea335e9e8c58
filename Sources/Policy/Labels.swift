import PolicyAPI

/// A label `source:key=value`, Cilium's unit of identity.
///
/// The source says where the label came from (`k8s`, `reserved`, `cidr`, `fqdn`, …); selectors may name
/// a source or use `any`, which matches all of them.
public struct Label: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var source: String
    public var key: String
    public var value: String

    public init(source: String, key: String, value: String = "") {
        self.source = source; self.key = key; self.value = value
    }

    public var description: String { value.isEmpty ? "\(source):\(key)" : "\(source):\(key)=\(value)" }

    public static func < (a: Label, b: Label) -> Bool { (a.source, a.key, a.value) < (b.source, b.key, b.value) }

    /// Parses `source:key=value`, `source:key` or `key=value` (with `defaultSource` when no source is given).
    public init(parsing text: String, defaultSource: String = LabelSource.k8s) {
        var rest = Substring(text)
        var source = defaultSource
        if let colon = rest.firstIndex(of: ":"), !rest[..<colon].contains("=") , !rest[..<colon].contains("/") {
            source = String(rest[..<colon]); rest = rest[rest.index(after: colon)...]
        }
        if let eq = rest.firstIndex(of: "=") {
            self.init(source: source, key: String(rest[..<eq]), value: String(rest[rest.index(after: eq)...]))
        } else {
            self.init(source: source, key: String(rest))
        }
    }
}

/// Label sources and the well-known keys Cilium derives for a pod.
public enum LabelSource {
    public static let k8s = "k8s"
    public static let reserved = "reserved"
    public static let cidr = "cidr"
    public static let fqdn = "fqdn"
    public static let any = "any"
    public static let unspec = "unspec"
    public static let cidrGroup = "cidrgroup"
}

public enum WellKnownLabel {
    public static let podNamespace = "io.kubernetes.pod.namespace"
    public static let namespaceLabelsPrefix = "io.cilium.k8s.namespace.labels."
    public static let serviceAccount = "io.cilium.k8s.policy.serviceaccount"
    public static let cluster = "io.cilium.k8s.policy.cluster"
    public static let policyName = "io.cilium.k8s.policy.name"
    public static let policyNamespace = "io.cilium.k8s.policy.namespace"
    public static let policyDerivedFrom = "io.cilium.k8s.policy.derived-from"
    public static let policyUID = "io.cilium.k8s.policy.uid"
}

/// A set of labels, kept sorted so that equal sets compare and hash equal.
public struct LabelSet: Hashable, Sendable, Comparable, CustomStringConvertible, Sequence {
    public private(set) var labels: [Label]

    public init<S: Sequence>(_ labels: S) where S.Element == Label {
        // One value per (source, key): the last one given wins, as in a map.
        var byKey: [String: Label] = [:]
        for l in labels { byKey[l.source + ":" + l.key] = l }
        self.labels = byKey.values.sorted()
    }

    public init() { labels = [] }

    public func makeIterator() -> IndexingIterator<[Label]> { labels.makeIterator() }
    public var count: Int { labels.count }
    public var isEmpty: Bool { labels.isEmpty }

    /// The labels with this key, from any source (usually zero or one).
    @inlinable public func values(forKey key: String) -> some Sequence<Label> {
        labels.lazy.filter { $0.key == key }
    }

    public func contains(source: String, key: String) -> Bool {
        labels.contains { $0.key == key && $0.source == source }
    }

    public func has(_ label: Label) -> Bool { labels.contains(label) }

    public var description: String { labels.map(\.description).joined(separator: ",") }

    public static func < (a: LabelSet, b: LabelSet) -> Bool { a.labels.lexicographicallyPrecedes(b.labels) }
}

/// The identity-relevant label filter: which of a workload's labels take part in its security identity.
///
/// Mirrors Cilium's default (`pkg/labelsfilter`): high-cardinality and bookkeeping labels such as
/// `pod-template-hash` or `controller-revision-hash` would otherwise give every rollout a new identity.
/// A label is kept when it matches an include prefix, dropped when it matches an exclude rule, kept otherwise.
public struct LabelFilter: Sendable {
    public var includePrefixes: [String]
    public var excludePrefixes: [String]
    public var excludeExact: [String]
    public var excludeContains: [String]

    /// Cilium's defaults: every label counts unless an exclude pattern matches at the start of its key
    /// (or `beta.kubernetes.io` anywhere) and no longer include pattern does.
    public static let cilium = LabelFilter(
        includePrefixes: [WellKnownLabel.podNamespace, "io.cilium.k8s.namespace.labels", "app.kubernetes.io"],
        excludePrefixes: ["io.kubernetes", "kubernetes.io", "k8s.io", "pod-template-generation", "pod-template-hash",
                          "controller-revision-hash", "annotation", "etcd_node"],
        excludeExact: [],
        excludeContains: ["beta.kubernetes.io"])

    /// Cilium's rule: the longest include match must be longer than the shortest exclude match
    /// (a label no exclude pattern matches is kept).
    public func isRelevant(_ label: Label) -> Bool {
        if label.source == LabelSource.reserved { return true }
        let key = label.key
        var included = 0
        for p in includePrefixes where key.hasPrefix(p) { included = max(included, p.count) }
        var ignored = Int.max
        if excludeExact.contains(key) { ignored = key.count }
        for p in excludePrefixes where key.hasPrefix(p) { ignored = min(ignored, p.count) }
        for c in excludeContains {
            // `.*c` matches greedily up to the end of the last occurrence.
            if let end = LabelFilter.endOfLastOccurrence(of: c, in: key) { ignored = min(ignored, end) }
        }
        return ignored == Int.max || included > ignored
    }

    static func endOfLastOccurrence(of needle: String, in text: String) -> Int? {
        let t = Array(text.utf8), n = Array(needle.utf8)
        guard n.count <= t.count else { return nil }
        for start in stride(from: t.count - n.count, through: 0, by: -1) where Array(t[start..<start + n.count]) == n {
            return start + n.count
        }
        return nil
    }

    public func filter(_ labels: LabelSet) -> LabelSet { LabelSet(labels.labels.filter(isRelevant)) }
}
