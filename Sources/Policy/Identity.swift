import PolicyAPI

/// A numeric security identity, as carried in the datapath. 0 means "any" in policy map keys.
public typealias NumericIdentity = UInt32

/// Cilium's reserved identities, with Cilium's numbers (`cilium-dbg identity list`).
public enum ReservedIdentity: NumericIdentity, CaseIterable, Sendable {
    case host = 1, world = 2, unmanaged = 3, health = 4, `init` = 5, remoteNode = 6, kubeAPIServer = 7
    case ingress = 8, worldIPv4 = 9, worldIPv6 = 10

    public var name: String {
        switch self {
        case .host: "host"; case .world: "world"; case .unmanaged: "unmanaged"; case .health: "health"
        case .`init`: "init"; case .remoteNode: "remote-node"; case .kubeAPIServer: "kube-apiserver"
        case .ingress: "ingress"; case .worldIPv4: "world-ipv4"; case .worldIPv6: "world-ipv6"
        }
    }

    public var label: Label { Label(source: LabelSource.reserved, key: name) }

    /// The labels of the reserved identity. Identity 7 is the apiserver on a remote node, as in the deep dive.
    public var labels: LabelSet {
        switch self {
        case .kubeAPIServer: LabelSet([label, ReservedIdentity.remoteNode.label])
        default: LabelSet([label])
        }
    }

    public init?(name: String) {
        guard let r = ReservedIdentity.allCases.first(where: { $0.name == name }) else { return nil }
        self = r
    }
}

public enum IdentityRange {
    public static let minimumCluster: NumericIdentity = 256
    public static let maximumCluster: NumericIdentity = 65535
    /// Node-local identities (CIDR, FQDN): bit 24 set, as in Cilium.
    public static let minimumLocal: NumericIdentity = 16_777_216
    public static let maximumLocal: NumericIdentity = 33_554_431
}

/// A security identity: a number and the identity-relevant labels it stands for.
public struct Identity: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var id: NumericIdentity
    public var labels: LabelSet

    public init(id: NumericIdentity, labels: LabelSet) { self.id = id; self.labels = labels }

    public var isReserved: Bool { id >= 1 && id <= 10 }
    public var isLocal: Bool { id >= IdentityRange.minimumLocal }
    public var scope: String { isReserved ? "reserved" : (isLocal ? "node-local" : "cluster") }

    public var description: String { "\(id) \(labels)" }
    public static func < (a: Identity, b: Identity) -> Bool { a.id < b.id }

    public static func reserved(_ r: ReservedIdentity) -> Identity { Identity(id: r.rawValue, labels: r.labels) }
}

/// Allocates identity numbers deterministically: the same label sets always get the same numbers.
///
/// Cluster identities are a hash of the labels into 256…65535 with linear probing, so adding a workload
/// does not renumber the others (as a sequential counter would). Node-local identities (CIDR and FQDN
/// selections) are numbered the same way from 16777216. Label sets are allocated in sorted order
/// whenever a batch is given, so probing collisions resolve the same way on every run.
public struct IdentityAllocator: Sendable {
    public private(set) var byLabels: [LabelSet: NumericIdentity] = [:]
    public private(set) var byID: [NumericIdentity: LabelSet] = [:]
    /// Reference counts, so that an identity is released when its last user goes.
    private var references: [NumericIdentity: Int] = [:]

    public init() {
        for r in ReservedIdentity.allCases {
            byLabels[r.labels] = r.rawValue
            byID[r.rawValue] = r.labels
        }
    }

    /// Returns the identity for `labels`, allocating it if needed. `isNew` tells whether it was created.
    public mutating func allocate(_ labels: LabelSet, local: Bool) -> (identity: Identity, isNew: Bool) {
        if let id = byLabels[labels] {
            if !(id >= 1 && id <= 10) { references[id, default: 0] += 1 }
            return (Identity(id: id, labels: labels), false)
        }
        let (lo, hi) = local ? (IdentityRange.minimumLocal, IdentityRange.maximumLocal)
                             : (IdentityRange.minimumCluster, IdentityRange.maximumCluster)
        let span = UInt64(hi - lo + 1)
        var candidate = lo + NumericIdentity(IdentityAllocator.stableHash(labels) % span)
        var probes: UInt64 = 0
        while byID[candidate] != nil {
            candidate = candidate == hi ? lo : candidate + 1
            probes += 1
            precondition(probes < span, "identity space exhausted")
        }
        byLabels[labels] = candidate
        byID[candidate] = labels
        references[candidate] = 1
        return (Identity(id: candidate, labels: labels), true)
    }

    /// Drops one reference; returns true when the identity was released.
    @discardableResult
    public mutating func release(_ id: NumericIdentity) -> Bool {
        guard let n = references[id] else { return false }
        if n > 1 { references[id] = n - 1; return false }
        references[id] = nil
        if let labels = byID.removeValue(forKey: id) { byLabels[labels] = nil }
        return true
    }

    public func lookup(_ id: NumericIdentity) -> Identity? {
        byID[id].map { Identity(id: id, labels: $0) }
    }

    public func lookup(labels: LabelSet) -> NumericIdentity? { byLabels[labels] }

    public var all: [Identity] { byID.map { Identity(id: $0.key, labels: $0.value) }.sorted() }

    /// FNV-1a over the canonical text of the labels: stable across runs and platforms (unlike `Hasher`).
    static func stableHash(_ labels: LabelSet) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for l in labels.labels {
            for byte in l.description.utf8 { h ^= UInt64(byte); h = h &* 0x0000_0100_0000_01B3 }
            h ^= 0xff; h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }
}
