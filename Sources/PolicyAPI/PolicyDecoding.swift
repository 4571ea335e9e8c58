import Yams

/// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy: strict decoding of `spec`/`specs` and of
/// every rule, with Cilium's validation (pkg/policy/api rule_validation.go) applied on the way.
struct CiliumPolicyDecoder {
    let reader: DocumentReader
    let kind: ResourceKind

    private var r: DocumentReader { reader }
    private var clusterwide: Bool { kind == .ciliumClusterwideNetworkPolicy }

    func decode(_ node: Node) -> CiliumPolicy? {
        guard let f = r.fields(node, "", allowed: ["apiVersion", "kind", "metadata", "spec", "specs", "status"]) else { return nil }
        let before = r.errors.count
        let meta = r.objectMeta(f, kind: kind, strict: true)
        var specs: [PolicySpec] = []
        if let n = f["spec"], let s = spec(n, "spec") { specs.append(s) }
        if let n = f["specs"] {
            let list = r.list(n, "specs") { sn, sp in spec(sn, sp) } ?? []
            specs.append(contentsOf: list)
        }
        if !f.has("spec") && !f.has("specs") {
            r.fail("spec", node, "missing required field \"spec\" (or \"specs\")")
        } else if !f.has("spec"), case .sequence(let seq)? = f["specs"], seq.isEmpty {
            r.fail("specs", f["specs"], "specs is empty and there is no spec: the policy has no rules")
        }
        guard r.errors.count == before, let meta, let ref = r.resource else { return nil }
        return CiliumPolicy(ref: ref, meta: meta, specs: specs)
    }

    // MARK: Spec

    static let specFields = ["endpointSelector", "nodeSelector", "ingress", "ingressDeny", "egress", "egressDeny",
                             "enableDefaultDeny", "description", "labels"]

    func spec(_ node: Node, _ path: String) -> PolicySpec? {
        guard let f = r.fields(node, path, allowed: Self.specFields) else { return nil }
        let before = r.errors.count
        var spec = PolicySpec(path: path)
        let hasES = f.has("endpointSelector"), hasNS = f.has("nodeSelector")
        if hasES && hasNS {
            r.fail(path, node, "endpointSelector and nodeSelector are mutually exclusive; set exactly one")
        } else if !hasES && !hasNS {
            r.fail(path, node, clusterwide ? "one of endpointSelector or nodeSelector is required"
                                           : "missing required field \"endpointSelector\"")
        }
        if let n = f["endpointSelector"] { spec.endpointSelector = r.labelSelector(n, f.path("endpointSelector")) }
        if let n = f["nodeSelector"] {
            if clusterwide {
                spec.nodeSelector = r.labelSelector(n, f.path("nodeSelector"))
            } else {
                r.fail(f.path("nodeSelector"), f.entries.first { $0.key == "nodeSelector" }?.keyNode,
                       "nodeSelector is only allowed in CiliumClusterwideNetworkPolicy; a CiliumNetworkPolicy selects endpoints with endpointSelector")
            }
        }
        let host = hasNS && !hasES
        spec.ingress = rules(f, "ingress", RuleContext(direction: .ingress, deny: false, hostPolicy: host))
        spec.ingressDeny = rules(f, "ingressDeny", RuleContext(direction: .ingress, deny: true, hostPolicy: host))
        spec.egress = rules(f, "egress", RuleContext(direction: .egress, deny: false, hostPolicy: host))
        spec.egressDeny = rules(f, "egressDeny", RuleContext(direction: .egress, deny: true, hostPolicy: host))
        if let n = f["enableDefaultDeny"], let df = r.fields(n, f.path("enableDefaultDeny"), allowed: ["ingress", "egress"]) {
            spec.enableDefaultDeny = DefaultDenyConfig(ingress: r.optionalBool(df, "ingress"), egress: r.optionalBool(df, "egress"))
        }
        spec.description = r.optionalString(f, "description")
        spec.labels = r.optionalList(f, "labels", ruleLabel) ?? []
        return r.errors.count == before ? spec : nil
    }

    private func rules(_ f: Fields, _ key: String, _ ctx: RuleContext) -> [PolicyRule]? {
        r.optionalList(f, key) { n, p in rule(n, p, ctx) }
    }

    func ruleLabel(_ node: Node, _ path: String) -> RuleLabel? {
        guard let f = r.fields(node, path, allowed: ["key", "value", "source"]) else { return nil }
        let before = r.errors.count
        let key = r.requiredString(f, "key")
        if let key, key.isEmpty { r.fail(f.path("key"), f["key"], "label key must not be empty") }
        let value = r.optionalString(f, "value") ?? ""
        let source = r.optionalString(f, "source") ?? "unspec"
        guard r.errors.count == before, let key else { return nil }
        return RuleLabel(source: source.isEmpty ? "unspec" : source, key: key, value: value)
    }

    // MARK: Rules

    private static let ingressPeers = ["fromEndpoints", "fromRequires", "fromCIDR", "fromCIDRSet", "fromEntities", "fromNodes"]
    private static let egressPeers = ["toEndpoints", "toRequires", "toCIDR", "toCIDRSet", "toEntities", "toNodes", "toFQDNs", "toServices"]

    /// One element of ingress / ingressDeny / egress / egressDeny.
    func rule(_ node: Node, _ path: String, _ ctx: RuleContext) -> PolicyRule? {
        let ingress = ctx.direction == .ingress
        let from = ingress ? "from" : "to"
        var allowed = ingress ? Self.ingressPeers : Self.egressPeers
        allowed += ["toPorts", "icmps"]
        var unsupported = [from + "Groups": "\(from)Groups (cloud provider groups) is not supported by Membrane"]
        if ctx.deny {
            allowed.removeAll { $0 == "toFQDNs" }
            unsupported["authentication"] = "authentication is not allowed in deny rules"
            if !ingress { unsupported["toFQDNs"] = "toFQDNs is not allowed in egressDeny rules (Cilium only supports FQDN selectors in egress allow rules)" }
        } else {
            allowed.append("authentication")
        }
        guard let f = r.fields(node, path, allowed: allowed, unsupported: unsupported) else { return nil }
        let before = r.errors.count
        var rule = PolicyRule()
        rule.endpoints = r.optionalList(f, from + "Endpoints", r.labelSelector)
        rule.requires = r.optionalList(f, from + "Requires", r.labelSelector)
        rule.nodes = r.optionalList(f, from + "Nodes", r.labelSelector)
        rule.cidr = r.optionalList(f, from + "CIDR", r.cidr)
        rule.cidrSet = r.optionalList(f, from + "CIDRSet", r.cidrRule)
        rule.entities = r.optionalList(f, from + "Entities", r.entity)
        if !ingress {
            rule.fqdns = r.optionalList(f, "toFQDNs", r.fqdnSelector)
            rule.services = r.optionalList(f, "toServices", r.serviceSelector)
        }
        rule.toPorts = r.optionalList(f, "toPorts") { n, p in r.portRule(n, p, ctx) }
        rule.icmps = r.optionalList(f, "icmps", r.icmpRule)
        if let n = f["authentication"], let af = r.fields(n, f.path("authentication"), allowed: ["mode"]) {
            if let m = af["mode"] {
                rule.authentication = r.enumValue(m, af.path("mode"), AuthenticationMode.allCases)
            } else { r.missing(af, "mode") }
        }
        checkCombinations(f, path, node, ctx)
        return r.errors.count == before ? rule : nil
    }

    /// Cilium allows one kind of L3 peer per rule (`fromRequires`/`toRequires` excepted, they only
    /// narrow the others), and `icmps` only without `toPorts`.
    private func checkCombinations(_ f: Fields, _ path: String, _ node: Node, _ ctx: RuleContext) {
        let peers = (ctx.direction == .ingress ? Self.ingressPeers : Self.egressPeers).filter { !$0.hasSuffix("Requires") }
        let present = f.entries.filter { e in
            guard peers.contains(e.key) else { return false }
            if case .sequence(let s) = e.value { return !s.isEmpty }
            return false
        }
        if present.count > 1 {
            let names = present.map(\.key)
            let detail: String
            if names.contains("toFQDNs") {
                detail = "combining toFQDNs with other L3 selectors is not supported"
            } else if names.contains("toServices") {
                detail = "combining toServices with other L3 selectors is not supported"
            } else {
                detail = "combining \(names[0]) and \(names[1]) in one rule is not supported"
            }
            r.fail(path, present[1].keyNode, "\(detail) (found \(names.joined(separator: ", "))); Cilium allows one kind of peer selector per rule, use separate rules")
        }
        if let tp = f["toPorts"], let ic = f["icmps"], case .sequence(let a) = tp, case .sequence(let b) = ic, !a.isEmpty, !b.isEmpty {
            r.fail(path, ic, "a rule can not have both toPorts and icmps; define a separate rule for the ICMP types")
        }
    }
}
