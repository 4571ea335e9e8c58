import MembraneTestSupport
import Testing
@testable import Policy
import PolicyAPI

@Suite struct SelectorCacheTests {
    @Test func internSharesAndReleases() {
        var c = SelectorCache()
        c.upsertIdentity(Identity(id: 300, labels: LabelSet([k8s("app", "x")])))
        let s = PeerSelector.labels(EndpointSelector(sel(["app": "x"])))
        let a = c.intern(s)
        let b = c.intern(s)
        #expect(a == b)
        #expect(c.selectorCount == 1)
        #expect(c.selections(a) == [300])
        c.release(a)
        #expect(c.selectorCount == 1, "one reference left")
        c.release(b)
        #expect(c.selectorCount == 0)
        let d = c.intern(.labels(.wildcard))
        #expect(c.selections(d) == [300])
    }

    @Test func upsertReturnsChangedSelectors() {
        var c = SelectorCache()
        let x = c.intern(.labels(EndpointSelector(sel(["app": "x"]))))
        let y = c.intern(.labels(EndpointSelector(sel(["app": "y"]))))
        let all = c.intern(.labels(.wildcard))
        let first = c.upsertIdentity(Identity(id: 300, labels: LabelSet([k8s("app", "x")])))
        #expect(first == [x, all].sorted())
        #expect(c.selections(x) == [300])
        // Relabel: leaves x, joins y.
        let changed = c.upsertIdentity(Identity(id: 300, labels: LabelSet([k8s("app", "y")])))
        #expect(Set(changed) == [x, y, all])
        #expect(c.selections(x).isEmpty)
        #expect(c.selections(y) == [300])
        let removed = c.removeIdentity(300)
        #expect(removed == [y, all].sorted())
        #expect(c.selections(all).isEmpty)
        let again = c.removeIdentity(300)
        #expect(again.isEmpty)
        #expect(c.identity(300) == nil)
    }

    @Test func cidrAndFQDNSelectors() {
        var c = SelectorCache()
        let net = c.intern(.cidr(prefix("10.0.0.0/8"), except: [prefix("10.1.0.0/16")]))
        let world = c.intern(.cidr(prefix("0.0.0.0/0"), except: []))
        let f = c.intern(.fqdn("*.cilium.io"))
        c.upsertIdentity(.reserved(.world))
        c.upsertIdentity(Identity(id: 16_777_300, labels: SelectorTests.cidrIdentity("10.2.0.0/16")))
        c.upsertIdentity(Identity(id: 16_777_301, labels: SelectorTests.cidrIdentity("10.1.1.0/24")))
        c.upsertIdentity(Identity(id: 16_777_302, labels: LabelSet([Label(source: "fqdn", key: "*.cilium.io"),
                                                                      CIDRLabel.label(for: prefix("104.1.1.1/32")), reservedLabel("world")])))
        #expect(c.selections(net) == [16_777_300])
        #expect(c.selections(world) == [2, 16_777_300, 16_777_301, 16_777_302])
        #expect(c.selections(f) == [16_777_302])
    }

    // MARK: Property: incremental selections equal a from-scratch evaluation

    static let vocabulary: [Label] = [
        k8s("app", "a"), k8s("app", "b"), k8s("app", "c"), k8s("tier", "front"), k8s("tier", "back"),
        k8s(WellKnownLabel.podNamespace, "default"), k8s(WellKnownLabel.podNamespace, "other"),
        Label(source: "unspec", key: "app", value: "a"), k8s("host"),
        reservedLabel("host"), reservedLabel("world"), reservedLabel("remote-node"), reservedLabel("kube-apiserver"),
        reservedLabel("world-ipv4"), reservedLabel("world-ipv6"),
        Label(source: "fqdn", key: "*.cilium.io"), Label(source: "fqdn", key: "api.example.com"),
    ]
    static let cidrs = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.168.0.0/16", "2001:db8::/32", "2001:db8:1::/48"]

    static func randomLabels(_ rng: inout SplitMix64) -> LabelSet {
        var labels: [Label] = []
        for _ in 0..<rng.int(0..<5) { labels.append(rng.pick(vocabulary)) }
        if rng.chance(0.3) { labels.append(CIDRLabel.label(for: prefix(rng.pick(cidrs)))) }
        return LabelSet(labels)
    }

    static func randomRequirement(_ rng: inout SplitMix64) -> LabelRequirement {
        let l = rng.pick(vocabulary)
        let source = rng.pick([LabelSource.any, l.source, LabelSource.k8s, LabelSource.reserved])
        let values = ["a", "b", "front", "default", "", "other"]
        let op: LabelRequirement.Operation
        switch rng.int(0..<5) {
        case 0: op = .in([l.value])
        case 1: op = .in([rng.pick(values), rng.pick(values)])
        case 2: op = .notIn([rng.pick(values)])
        case 3: op = .exists
        default: op = .doesNotExist
        }
        return LabelRequirement(source: source, key: l.key, operation: op)
    }

    static func randomSelector(_ rng: inout SplitMix64) -> PeerSelector {
        switch rng.int(0..<10) {
        case 0...5: return .labels(EndpointSelector((0..<rng.int(0..<3)).map { _ in randomRequirement(&rng) }))
        case 6, 7:
            let p = prefix(rng.pick(cidrs + ["0.0.0.0/0", "::/0"]))
            let except = rng.chance(0.4) ? [prefix(rng.pick(cidrs))].filter { p.contains($0) } : []
            return .cidr(p, except: except)
        default: return .fqdn(rng.pick(["*.cilium.io", "api.example.com", "nothing.io"]))
        }
    }

    @Test func incrementalSelectionsMatchFromScratch() {
        for seed in UInt64(1)...200 {
            var rng = SplitMix64(seed: seed)
            var cache = SelectorCache()
            var identities: [NumericIdentity: LabelSet] = [:]
            var live: [SelectorID: (PeerSelector, Int)] = [:]
            let ids: [NumericIdentity] = [1, 2, 6, 7, 300, 301, 302, 303, 304, 16_777_216, 16_777_217, 16_777_218]
            var failed = false
            for step in 0..<60 where !failed {
                switch rng.int(0..<10) {
                case 0...2:
                    let s = Self.randomSelector(&rng)
                    let sid = cache.intern(s)
                    live[sid, default: (s, 0)].1 += 1
                    #expect(live[sid]!.0 == s, "seed \(seed) step \(step): interned id reused for a different selector")
                case 3...5:
                    let id = rng.pick(ids)
                    let labels = Self.randomLabels(&rng)
                    cache.upsertIdentity(Identity(id: id, labels: labels))
                    identities[id] = labels
                case 6, 7:
                    let id = rng.pick(ids)
                    cache.removeIdentity(id)
                    identities[id] = nil
                default:
                    guard let sid = live.keys.sorted().randomElement(using: &rng) else { continue }
                    cache.release(sid)
                    live[sid]!.1 -= 1
                    if live[sid]!.1 == 0 { live[sid] = nil }
                }
                #expect(cache.selectorCount == live.count)
                #expect(cache.identityCount == identities.count)
                for (sid, (s, _)) in live {
                    let expected = Set(identities.filter { s.selects(IdentityFacts(Identity(id: $0.key, labels: $0.value))) }.keys)
                    let actual = cache.selections(sid)
                    if actual != expected {
                        Issue.record("seed \(seed) step \(step): selector \(s) selects \(actual.sorted()), expected \(expected.sorted())")
                        failed = true
                    }
                }
            }
        }
    }

    /// The same, with the reference evaluated by hand from labels (not through PeerSelector.selects).
    @Test func labelSelectorSemanticsIndependentOfCache() {
        func reference(_ r: LabelRequirement, _ set: LabelSet) -> Bool {
            let hits = set.labels.filter { $0.key == r.key && (r.source == "any" || r.source == $0.source) }
            switch r.operation {
            case .in(let vs): return hits.contains { vs.contains($0.value) }
            case .notIn(let vs): return !hits.contains { vs.contains($0.value) }
            case .exists: return !hits.isEmpty
            case .doesNotExist: return hits.isEmpty
            }
        }
        var rng = SplitMix64(seed: 99)
        for i in 0..<2000 {
            let set = Self.randomLabels(&rng)
            let reqs = (0..<rng.int(0..<3)).map { _ in Self.randomRequirement(&rng) }
            let expected = reqs.allSatisfy { reference($0, set) }
            #expect(EndpointSelector(reqs).matches(set) == expected, "case \(i): \(reqs) on \(set)")
        }
    }
}
