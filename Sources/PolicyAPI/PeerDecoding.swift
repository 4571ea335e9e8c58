import Yams

/// L3 peers other than label selectors: CIDRs, CIDR sets, entities, FQDN selectors and services.
extension DocumentReader {
    /// `fromCIDR`/`toCIDR` entries: a prefix, or a bare address (a host prefix). Host bits are
    /// cleared, as Cilium accepts `10.0.0.1/8` and means `10.0.0.0/8`.
    func cidr(_ node: Node, _ path: String) -> IPPrefix? {
        guard let s = string(node, path) else { return nil }
        guard let p = IPPrefix(s) else {
            fail(path, node, "invalid CIDR \"\(s)\": expected an IPv4 or IPv6 prefix such as 10.0.0.0/8 or 2001:db8::/32")
            return nil
        }
        return p
    }

    /// A prefix that must be written with `/len` (CIDR sets, ipBlock, except lists).
    func strictCIDR(_ node: Node, _ path: String) -> IPPrefix? {
        guard let s = string(node, path) else { return nil }
        guard s.contains("/"), let p = IPPrefix(s) else {
            let hint = IPAddress(s) != nil ? " (a prefix length is required here, e.g. \(s)/\(s.contains(":") ? 128 : 32))" : ""
            fail(path, node, "invalid CIDR \"\(s)\": expected an IPv4 or IPv6 prefix such as 10.0.0.0/8\(hint)")
            return nil
        }
        return p
    }

    /// The `except` list of a CIDR set or ipBlock: each must lie inside `cidr` (same family).
    /// `strictSubset` is Kubernetes' rule for ipBlock (an except equal to the cidr is rejected there).
    func exceptList(_ f: Fields, cidr: IPPrefix?, strictSubset: Bool) -> [IPPrefix]? {
        optionalList(f, "except") { n, p -> IPPrefix? in
            guard let e = self.strictCIDR(n, p) else { return nil }
            if let cidr {
                if e.isIPv4 != cidr.isIPv4 {
                    self.fail(p, n, "except \(e) is not of the same address family as cidr \(cidr)")
                    return nil
                }
                if !cidr.contains(e) || (strictSubset && e.length == cidr.length) {
                    self.fail(p, n, "except \(e) is not inside cidr \(cidr)" + (strictSubset && cidr.contains(e) ? " (it must be a strict subset)" : ""))
                    return nil
                }
            }
            return e
        }
    }

    /// `fromCIDRSet`/`toCIDRSet` entries.
    func cidrRule(_ node: Node, _ path: String) -> CIDRRule? {
        guard let f = fields(node, path, allowed: ["cidr", "cidrGroupRef", "except"],
                             unsupported: ["cidrGroupSelector": "cidrGroupSelector is not supported by Membrane; use cidrGroupRef"])
        else { return nil }
        let before = errors.count
        var rule = CIDRRule()
        let hasCIDR = f.has("cidr"), hasRef = f.has("cidrGroupRef")
        if hasCIDR && hasRef {
            fail(path, node, "cidr and cidrGroupRef are mutually exclusive; set exactly one")
        } else if !hasCIDR && !hasRef {
            fail(path, node, "one of cidr or cidrGroupRef is required")
        }
        if let n = f["cidr"] { rule.cidr = strictCIDR(n, f.path("cidr")) }
        if let n = f["cidrGroupRef"], let s = string(n, f.path("cidrGroupRef")) {
            if !LabelSyntax.isDNSSubdomain(s) {
                fail(f.path("cidrGroupRef"), n, "invalid cidrGroupRef \"\(s)\": expected the name of a CiliumCIDRGroup")
            }
            rule.cidrGroupRef = s
        }
        rule.except = exceptList(f, cidr: rule.cidr, strictSubset: false) ?? []
        return errors.count == before ? rule : nil
    }

    func entity(_ node: Node, _ path: String) -> Entity? {
        guard let s = string(node, path) else { return nil }
        if let e = Entity(rawValue: s) { return e }
        let names = Entity.allCases.map(\.rawValue)
        var msg = "unknown entity \"\(s)\""
        if let sug = Suggest.nearest(s, in: names) { msg += "; did you mean \"\(sug)\"?" }
        fail(path, node, msg + " (valid entities: \(names.joined(separator: ", ")))")
        return nil
    }

    /// `toFQDNs` entries and `rules.dns` entries: exactly one of matchName / matchPattern.
    func fqdnSelector(_ node: Node, _ path: String) -> FQDNSelector? {
        guard let f = fields(node, path, allowed: ["matchName", "matchPattern"]) else { return nil }
        let before = errors.count
        var sel = FQDNSelector()
        switch (f.has("matchName"), f.has("matchPattern")) {
        case (true, true): fail(path, node, "only one of matchName or matchPattern is allowed")
        case (false, false): fail(path, node, "one of matchName or matchPattern is required")
        default: break
        }
        if let n = f["matchName"], let s = string(n, f.path("matchName")) {
            if let why = FQDNSyntax.problem(s, pattern: false) { fail(f.path("matchName"), n, "invalid matchName \"\(s)\": \(why)") }
            sel.matchName = s
        }
        if let n = f["matchPattern"], let s = string(n, f.path("matchPattern")) {
            if let why = FQDNSyntax.problem(s, pattern: true) { fail(f.path("matchPattern"), n, "invalid matchPattern \"\(s)\": \(why)") }
            sel.matchPattern = s
        }
        return errors.count == before ? sel : nil
    }

    /// `toServices` entries: exactly one of k8sService / k8sServiceSelector.
    func serviceSelector(_ node: Node, _ path: String) -> ServiceSelector? {
        guard let f = fields(node, path, allowed: ["k8sService", "k8sServiceSelector"]) else { return nil }
        let before = errors.count
        var sel = ServiceSelector()
        switch (f.has("k8sService"), f.has("k8sServiceSelector")) {
        case (true, true): fail(path, node, "only one of k8sService or k8sServiceSelector is allowed")
        case (false, false): fail(path, node, "one of k8sService or k8sServiceSelector is required")
        default: break
        }
        if let n = f["k8sService"], let sf = fields(n, f.path("k8sService"), allowed: ["serviceName", "namespace"]) {
            let name = requiredString(sf, "serviceName")
            let ns = optionalString(sf, "namespace")
            if let name { sel.k8sService = .init(serviceName: name, namespace: ns?.isEmpty == true ? nil : ns) }
        }
        if let n = f["k8sServiceSelector"], let sf = fields(n, f.path("k8sServiceSelector"), allowed: ["selector", "namespace"]) {
            let ns = optionalString(sf, "namespace")
            if let s = sf["selector"] {
                if let ls = labelSelector(s, sf.path("selector")) {
                    sel.k8sServiceSelector = .init(selector: ls, namespace: ns?.isEmpty == true ? nil : ns)
                }
            } else { missing(sf, "selector") }
        }
        return errors.count == before ? sel : nil
    }
}
