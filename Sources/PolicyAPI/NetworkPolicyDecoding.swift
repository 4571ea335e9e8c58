import Yams

/// networking.k8s.io/v1 NetworkPolicy and cilium.io/v2alpha1 CiliumCIDRGroup, decoded strictly
/// with the Kubernetes API server's validation rules.
struct NetworkPolicyDecoder {
    let reader: DocumentReader
    private var r: DocumentReader { reader }

    func decode(_ node: Node) -> NetworkPolicy? {
        guard let f = r.fields(node, "", allowed: ["apiVersion", "kind", "metadata", "spec", "status"]) else { return nil }
        let before = r.errors.count
        let meta = r.objectMeta(f, kind: .networkPolicy, strict: true)
        guard let sn = f["spec"] else {
            r.fail("spec", node, "missing required field \"spec\"")
            return nil
        }
        guard let sf = r.fields(sn, "spec", allowed: ["podSelector", "ingress", "egress", "policyTypes"]) else { return nil }
        var podSelector: LabelSelector?
        if let n = sf["podSelector"] {
            podSelector = r.labelSelector(n, sf.path("podSelector"))
        } else {
            r.missing(sf, "podSelector", " (use podSelector: {} to select every pod in the namespace)")
        }
        let ingress = r.optionalList(sf, "ingress") { n, p in rule(n, p, peersKey: "from") }
        let egress = r.optionalList(sf, "egress") { n, p in rule(n, p, peersKey: "to") }
        let policyTypes = r.optionalList(sf, "policyTypes") { n, p in r.enumValue(n, p, [PolicyType.ingress, .egress]) }
        guard r.errors.count == before, let meta, let podSelector, let ref = r.resource else { return nil }
        return NetworkPolicy(ref: ref, meta: meta, podSelector: podSelector, ingress: ingress, egress: egress,
                             policyTypes: policyTypes)
    }

    func rule(_ node: Node, _ path: String, peersKey: String) -> NetworkPolicyRule? {
        guard let f = r.fields(node, path, allowed: [peersKey, "ports"]) else { return nil }
        let before = r.errors.count
        let peers = r.optionalList(f, peersKey, peer)
        let ports = r.optionalList(f, "ports", port)
        return r.errors.count == before ? NetworkPolicyRule(peers: peers, ports: ports) : nil
    }

    func peer(_ node: Node, _ path: String) -> NetworkPolicyPeer? {
        guard let f = r.fields(node, path, allowed: ["podSelector", "namespaceSelector", "ipBlock"]) else { return nil }
        let before = r.errors.count
        var peer = NetworkPolicyPeer()
        if f.has("ipBlock") && (f.has("podSelector") || f.has("namespaceSelector")) {
            r.fail(f.path("ipBlock"), f["ipBlock"], "ipBlock can not be combined with podSelector or namespaceSelector in one peer")
        }
        if !f.has("ipBlock") && !f.has("podSelector") && !f.has("namespaceSelector") {
            r.fail(path, node, "a peer needs one of podSelector, namespaceSelector or ipBlock")
        }
        if let n = f["podSelector"] { peer.podSelector = r.labelSelector(n, f.path("podSelector")) }
        if let n = f["namespaceSelector"] { peer.namespaceSelector = r.labelSelector(n, f.path("namespaceSelector")) }
        if let n = f["ipBlock"], let bf = r.fields(n, f.path("ipBlock"), allowed: ["cidr", "except"]) {
            var cidr: IPPrefix?
            if let c = bf["cidr"] { cidr = r.strictCIDR(c, bf.path("cidr")) } else { r.missing(bf, "cidr") }
            let except = r.exceptList(bf, cidr: cidr, strictSubset: true) ?? []
            if let cidr { peer.ipBlock = IPBlock(cidr: cidr, except: except) }
        }
        return r.errors.count == before ? peer : nil
    }

    func port(_ node: Node, _ path: String) -> NetworkPolicyPort? {
        guard let f = r.fields(node, path, allowed: ["protocol", "port", "endPort"]) else { return nil }
        let before = r.errors.count
        var result = NetworkPolicyPort()
        if let n = f["protocol"] {
            result.protocol = r.enumValue(n, f.path("protocol"), [L4Protocol.tcp, .udp, .sctp]) ?? .tcp
        }
        if let n = f["port"] { result.port = k8sPort(n, f.path("port")) }
        if let n = f["endPort"], let e = r.int(n, f.path("endPort")) {
            result.endPort = r.checkEndPort(e, port: result.port ?? .any, n, f.path("endPort"))
        }
        return r.errors.count == before ? result : nil
    }

    /// An IntOrString port: a number 1–65535, or an IANA service name (lowercase, as Kubernetes requires).
    func k8sPort(_ node: Node, _ path: String) -> PortSpec? {
        guard case .scalar(let s) = node else {
            r.fail(path, node, "expected a port number or name, found \(node.kindDescription)")
            return nil
        }
        if node.isPlainScalar, let v = ScalarSyntax.intValue(s.string) {
            guard v >= 1 && v <= 65535 else {
                r.fail(path, node, "port \(v) is out of range (1-65535)")
                return nil
            }
            return .number(UInt16(v))
        }
        guard PortSyntax.isServiceName(s.string, lowercaseOnly: true) else {
            r.fail(path, node, "invalid port name \"\(s.string)\": expected at most 15 lowercase letters, digits and '-', with at least one letter (or write the number unquoted)")
            return nil
        }
        return .named(s.string)
    }

    // MARK: CiliumCIDRGroup

    func decodeCIDRGroup(_ node: Node) -> CiliumCIDRGroup? {
        guard let f = r.fields(node, "", allowed: ["apiVersion", "kind", "metadata", "spec", "status"]) else { return nil }
        let before = r.errors.count
        let meta = r.objectMeta(f, kind: .ciliumCIDRGroup, strict: true)
        var cidrs: [IPPrefix] = []
        if let sn = f["spec"] {
            if let sf = r.fields(sn, "spec", allowed: ["externalCIDRs"]) {
                if let n = sf["externalCIDRs"] {
                    cidrs = r.list(n, sf.path("externalCIDRs"), r.strictCIDR) ?? []
                } else { r.missing(sf, "externalCIDRs") }
            }
        } else { r.fail("spec", node, "missing required field \"spec\"") }
        guard r.errors.count == before, let meta else { return nil }
        return CiliumCIDRGroup(meta: meta, externalCIDRs: cidrs)
    }
}
