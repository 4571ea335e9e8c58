import MembraneTestSupport
import Testing
@testable import Policy
import PolicyAPI

private func facts(_ labels: Label...) -> IdentityFacts { IdentityFacts(Identity(id: 1000, labels: LabelSet(labels))) }
private func facts(_ set: LabelSet) -> IdentityFacts { IdentityFacts(Identity(id: 1000, labels: set)) }
private func expr(_ key: String, _ op: LabelSelectorRequirement.Operator, _ values: [String] = []) -> LabelSelectorRequirement {
    LabelSelectorRequirement(key: key, operator: op, values: values)
}

@Suite struct SelectorTests {
    static let pod = LabelSet([k8s("app", "web"), k8s("tier", "front"), k8s(WellKnownLabel.podNamespace, "default")])
    static let host = LabelSet([reservedLabel("host"), k8s("kubernetes.io/hostname", "n1")])

    @Test(arguments: [
        // (matchLabels, expressions, selects pod, selects host)
        ([:], [], true, true),
        (["app": "web"], [], true, false),
        (["k8s:app": "web"], [], true, false),
        (["any:app": "web"], [], true, false),
        (["reserved:app": "web"], [], false, false),
        (["app": "api"], [], false, false),
        (["app": "web", "tier": "back"], [], false, false),
        (["reserved:host": ""], [], false, true),
        (["host": ""], [], false, true),
        (["k8s:host": ""], [], false, false),
        (["kubernetes.io/hostname": "n1"], [], false, true),
        ([:], [expr("app", .in, ["web", "api"])], true, false),
        ([:], [expr("app", .in, ["api"])], false, false),
        ([:], [expr("app", .notIn, ["api"])], true, true),
        ([:], [expr("app", .notIn, ["web"])], false, true),
        ([:], [expr("k8s:app", .notIn, ["web"])], false, true),
        ([:], [expr("reserved:app", .notIn, ["web"])], true, true),
        ([:], [expr("tier", .exists)], true, false),
        ([:], [expr("k8s:tier", .exists)], true, false),
        ([:], [expr("reserved:tier", .exists)], false, false),
        ([:], [expr("tier", .doesNotExist)], false, true),
        ([:], [expr("reserved:tier", .doesNotExist)], true, true),
        ([:], [expr("reserved:host", .exists)], false, true),
        ([:], [expr("reserved:host", .doesNotExist)], true, false),
        (["app": "web"], [expr("tier", .in, ["front"]), expr("zone", .doesNotExist)], true, false),
    ] as [([String: String], [LabelSelectorRequirement], Bool, Bool)])
    func labelSelector(matchLabels: [String: String], exprs: [LabelSelectorRequirement], pod: Bool, host: Bool) {
        let s = EndpointSelector(LabelSelector(matchLabels: matchLabels, matchExpressions: exprs))
        #expect(s.matches(Self.pod) == pod, "\(s)")
        #expect(s.matches(Self.host) == host, "\(s)")
        #expect(PeerSelector.labels(s).selects(facts(Self.pod)) == pod)
    }

    @Test func selectorIsCanonical() {
        let a = EndpointSelector(sel(["app": "x", "tier": "y"]))
        let b = EndpointSelector([LabelRequirement(key: "tier", operation: .in(["y"])), LabelRequirement(key: "app", operation: .in(["x"])),
                                  LabelRequirement(key: "app", operation: .in(["x"]))])
        #expect(a == b)
        #expect(a.requirements.count == 2)
        #expect(EndpointSelector.wildcard.isWildcard)
        #expect(EndpointSelector(sel()).isWildcard)
        #expect(!a.isWildcard)
        // In values are order-insensitive.
        #expect(EndpointSelector(sel([:], [expr("a", .in, ["2", "1"])])) == EndpointSelector(sel([:], [expr("a", .in, ["1", "2"])])))
    }

    @Test func parseKey() {
        #expect(LabelRequirement.parseKey("k8s:app") == ("k8s", "app"))
        #expect(LabelRequirement.parseKey("app") == ("any", "app"))
        #expect(LabelRequirement.parseKey("reserved:host") == ("reserved", "host"))
    }

    @Test func reservedSelector() {
        let s = EndpointSelector.reserved(.remoteNode)
        #expect(s.matches(ReservedIdentity.remoteNode.labels))
        #expect(s.matches(ReservedIdentity.kubeAPIServer.labels), "identity 7 carries remote-node")
        #expect(!s.matches(ReservedIdentity.host.labels))
        #expect(!s.matches(LabelSet([k8s("remote-node")])), "k8s-sourced label of the same key is not reserved")
        #expect(EndpointSelector.reserved(.kubeAPIServer).matches(ReservedIdentity.kubeAPIServer.labels))
        #expect(!EndpointSelector.reserved(.kubeAPIServer).matches(ReservedIdentity.remoteNode.labels))
    }

    @Test func constrains() {
        let s = EndpointSelector(sel(["k8s:io.kubernetes.pod.namespace": "a", "reserved:host": ""]))
        #expect(s.constrains(key: "io.kubernetes.pod.namespace"))
        #expect(s.constrains(source: "reserved"))
        #expect(!s.constrains(source: "cidr"))
        #expect(s.constrains(keyPrefix: "io.kubernetes"))
        #expect(!s.constrains(key: "app"))
    }

    // MARK: CIDR selectors

    static func cidrIdentity(_ p: String, world: String = "world") -> LabelSet {
        LabelSet([CIDRLabel.label(for: prefix(p)), reservedLabel(world)])
    }

    @Test(arguments: [
        // selector, except, identity prefix, selected
        ("10.0.0.0/8", [], "10.1.2.0/24", true),
        ("10.0.0.0/8", [], "10.0.0.0/8", true),
        ("10.0.0.0/8", [], "10.0.0.0/7", false),
        ("10.0.0.0/8", [], "11.0.0.0/24", false),
        ("10.0.0.0/8", [], "10.1.2.3/32", true),
        ("10.0.0.0/8", ["10.1.0.0/16"], "10.1.2.0/24", false),
        ("10.0.0.0/8", ["10.1.0.0/16"], "10.1.0.0/16", false),
        ("10.0.0.0/8", ["10.1.0.0/16"], "10.2.0.0/16", true),
        ("10.0.0.0/8", ["10.1.0.0/16"], "10.0.0.0/8", true),
        ("192.168.1.1/32", [], "192.168.1.1/32", true),
        ("0.0.0.0/0", [], "8.8.8.8/32", true),
        ("0.0.0.0/0", [], "2001:db8::/32", false),
        ("2001:db8::/32", [], "2001:db8:1::/48", true),
        ("2001:db8::/32", [], "2001:db9::/48", false),
        ("::/0", [], "10.0.0.0/8", false),
    ] as [(String, [String], String, Bool)])
    func cidrContainment(selector: String, except: [String], identity: String, selected: Bool) {
        let s = PeerSelector.cidr(prefix(selector), except: except.map(prefix))
        #expect(s.selects(facts(Self.cidrIdentity(identity))) == selected)
    }

    @Test func cidrSelectorUsesLongestCIDRLabel() {
        // An identity carrying several cidr labels (older Cilium style) is judged by its most specific one.
        let set = LabelSet([CIDRLabel.label(for: prefix("10.0.0.0/8")), CIDRLabel.label(for: prefix("10.1.2.0/24")), reservedLabel("world")])
        #expect(PeerSelector.cidr(prefix("10.1.0.0/16"), except: []).selects(facts(set)))
        #expect(!PeerSelector.cidr(prefix("10.0.0.0/8"), except: [prefix("10.1.0.0/16")]).selects(facts(set)))
    }

    @Test func cidrNeverSelectsPods() {
        #expect(!PeerSelector.cidr(prefix("0.0.0.0/0"), except: []).selects(facts(Self.pod)))
        #expect(!PeerSelector.cidr(prefix("10.0.0.0/8"), except: []).selects(facts(ReservedIdentity.host.labels)))
        #expect(!PeerSelector.cidr(prefix("0.0.0.0/0"), except: []).selects(facts(ReservedIdentity.remoteNode.labels)))
    }

    @Test(arguments: [
        ("0.0.0.0/0", ReservedIdentity.world, true),
        ("0.0.0.0/0", .worldIPv4, true),
        ("0.0.0.0/0", .worldIPv6, false),
        ("::/0", .world, true),
        ("::/0", .worldIPv6, true),
        ("::/0", .worldIPv4, false),
        ("10.0.0.0/8", .world, false),
        ("128.0.0.0/1", .worldIPv4, false),
    ])
    func zeroPrefixSelectsWorld(selector: String, world: ReservedIdentity, selected: Bool) {
        #expect(PeerSelector.cidr(prefix(selector), except: []).selects(facts(world.labels)) == selected)
    }

    @Test func cidrLabelSpelling() {
        #expect(CIDRLabel.label(for: prefix("10.0.0.0/8")).description == "cidr:10.0.0.0/8")
        let v6 = CIDRLabel.label(for: prefix("2001:db8::/32"))
        #expect(!v6.key.contains(":"))
        #expect(CIDRLabel.prefix(of: v6) == prefix("2001:db8::/32"))
        #expect(CIDRLabel.prefix(of: CIDRLabel.label(for: prefix("10.1.2.3/32"))) == prefix("10.1.2.3/32"))
        #expect(CIDRLabel.prefix(of: k8s("10.0.0.0/8")) == nil)
        // The label must parse back through Label(parsing:).
        #expect(Label(parsing: v6.description) == v6)
    }

    // MARK: FQDN selectors

    @Test func fqdnSelectorMatchesLabel() {
        let id = LabelSet([Label(source: "fqdn", key: "*.cilium.io"), CIDRLabel.label(for: prefix("1.2.3.4/32")), reservedLabel("world")])
        #expect(PeerSelector.fqdn("*.cilium.io").selects(facts(id)))
        #expect(!PeerSelector.fqdn("www.cilium.io").selects(facts(id)))
        #expect(!PeerSelector.fqdn("*.cilium.io").selects(facts(LabelSet([k8s("*.cilium.io")]))))
        #expect(FQDNMatcher.canonicalSelector(FQDNSelector(matchPattern: "*.Cilium.IO.")) == "*.cilium.io")
        #expect(FQDNMatcher.canonicalSelector(FQDNSelector(matchName: "WWW.cilium.io")) == "www.cilium.io")
    }

    // MARK: FQDN glob semantics (Cilium matchpattern)

    @Test(arguments: [
        ("*.cilium.io", "www.cilium.io", true),
        ("*.cilium.io", "blog.cilium.io", true),
        ("*.cilium.io", "cilium.io", false),
        ("*.cilium.io", "a.b.cilium.io", false),
        ("*.cilium.io", "www.cilium.io.", true),
        ("*.cilium.io", "WWW.Cilium.IO", true),
        ("*.cilium.io.", "www.cilium.io", true),
        ("*.CILIUM.io", "www.cilium.io", true),
        ("*", "anything.example.com", true),
        ("*", "com", true),
        ("*", ".", true),
        ("sub*.cilium.io", "sub.cilium.io", true),
        ("sub*.cilium.io", "subdomain.cilium.io", true),
        ("sub*.cilium.io", "su.cilium.io", false),
        ("*cilium.io", "cilium.io", true),
        ("*cilium.io", "xcilium.io", true),
        ("*cilium.io", "www.cilium.io", false),
        ("a*b.io", "ab.io", true),
        ("a*b.io", "a.b.io", false),
        ("*.*.io", "a.b.io", true),
        ("*.*.io", "b.io", false),
        ("**", "ab", true),
        ("**", "a.b", false),
        ("cilium.io", "cilium.io", true),
        ("cilium.io", "ciliumxio", false),
        ("cilium.io", "www.cilium.io", false),
        ("www-1.cilium.io", "www-1.cilium.io", true),
    ])
    func glob(pattern: String, name: String, matches: Bool) {
        #expect(FQDNMatcher.matches(FQDNSelector(matchPattern: pattern), name: name) == matches)
    }

    @Test(arguments: [
        ("cilium.io", "cilium.io", true),
        ("cilium.io", "CILIUM.IO.", true),
        ("cilium.io.", "cilium.io", true),
        ("cilium.io", "www.cilium.io", false),
        ("*.cilium.io", "www.cilium.io", false), // matchName has no wildcards
    ])
    func matchName(name: String, query: String, matches: Bool) {
        #expect(FQDNMatcher.matches(FQDNSelector(matchName: name), name: query) == matches)
    }

    /// The glob against Cilium's regex translation (`*` → `[-a-zA-Z0-9_]*`, `.` → `[.]`, anchored), on random inputs.
    @Test func globAgreesWithCiliumRegex() throws {
        var rng = SplitMix64(seed: 0xF00D)
        let patternAlphabet: [Character] = ["a", "b", ".", "*", "-"]
        let nameAlphabet: [Character] = ["a", "b", ".", "-"]
        for i in 0..<3000 {
            var pattern = String((0..<rng.int(1..<7)).map { _ in rng.pick(patternAlphabet) })
            let name = String((0..<rng.int(1..<7)).map { _ in rng.pick(nameAlphabet) })
            if pattern == "*" { pattern = "a*" }
            // Compare on normalized names (no trailing dots); Cilium appends one to both sides.
            let p = FQDNMatcher.normalize(pattern), n = FQDNMatcher.normalize(name)
            if p.hasSuffix(".") || n.hasSuffix(".") || p == "*" { continue }
            var re = "^"
            for c in p { re += c == "*" ? "[-a-zA-Z0-9_]*" : (c == "." ? "[.]" : String(c)) }
            re += "[.]$"
            let regex = try Regex(re)
            let expected = (try regex.wholeMatch(in: n + ".")) != nil
            #expect(FQDNMatcher.matches(pattern: p, name: n) == expected, "case \(i): pattern \(p) name \(n)")
        }
    }
}
