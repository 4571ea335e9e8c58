import Yams

/// Namespaces, Pods, Nodes, Services and Endpoints — the cluster state policies are evaluated against.
///
/// These usually come from `kubectl get -o yaml`, which prints many fields Membrane does not read,
/// so unknown fields are ignored; the fields that are read are type-checked.
struct ClusterObjectDecoder {
    let reader: DocumentReader
    let kind: ResourceKind
    private var r: DocumentReader { reader }

    func decode(_ node: Node) -> ResourceBody? {
        guard let f = r.fields(node, "", allowed: ["metadata", "spec", "status", "subsets"], unknown: .ignore) else { return nil }
        let before = r.errors.count
        guard let meta = r.objectMeta(f, kind: kind, strict: false) else { return nil }
        let body: ResourceBody?
        switch kind {
        case .namespace: body = .namespace(NamespaceObject(meta: meta))
        case .pod: body = pod(f, meta).map(ResourceBody.pod)
        case .node: body = nodeObject(f, meta).map(ResourceBody.node)
        case .service: body = service(f, meta).map(ResourceBody.service)
        case .endpoints: body = endpoints(f, meta).map(ResourceBody.endpoints)
        default: body = nil
        }
        return r.errors.count == before ? body : nil
    }

    private func lenient(_ f: Fields, _ key: String, _ allowed: [String]) -> Fields? {
        guard let n = f[key] else { return nil }
        return r.fields(n, f.path(key), allowed: allowed, unknown: .ignore)
    }

    private func ip(_ node: Node, _ path: String) -> IPAddress? {
        guard let s = r.string(node, path) else { return nil }
        guard let a = IPAddress(s) else {
            r.fail(path, node, "invalid IP address \"\(s)\"")
            return nil
        }
        return a
    }

    private func portNumber(_ node: Node, _ path: String, allowZero: Bool = false) -> UInt16? {
        guard let v = r.int(node, path) else { return nil }
        guard v >= (allowZero ? 0 : 1) && v <= 65535 else {
            r.fail(path, node, "port \(v) is out of range (1-65535)")
            return nil
        }
        return UInt16(v)
    }

    private func proto(_ f: Fields) -> L4Protocol {
        guard let n = f["protocol"] else { return .tcp }
        return r.enumValue(n, f.path("protocol"), [L4Protocol.tcp, .udp, .sctp]) ?? .tcp
    }

    // MARK: Pod

    func pod(_ f: Fields, _ meta: ObjectMeta) -> PodObject? {
        var pod = PodObject(meta: meta)
        if let spec = lenient(f, "spec", ["nodeName", "serviceAccountName", "serviceAccount", "hostNetwork", "containers"]) {
            pod.nodeName = r.optionalString(spec, "nodeName")
            if let sa = r.optionalString(spec, "serviceAccountName") ?? r.optionalString(spec, "serviceAccount"), !sa.isEmpty {
                pod.serviceAccountName = sa
            }
            pod.hostNetwork = r.optionalBool(spec, "hostNetwork") ?? false
            let containers = r.optionalList(spec, "containers") { n, p -> [ContainerPort]? in
                guard let cf = r.fields(n, p, allowed: ["ports"], unknown: .ignore) else { return nil }
                return r.optionalList(cf, "ports") { pn, pp -> ContainerPort? in
                    guard let pf = r.fields(pn, pp, allowed: ["name", "containerPort", "protocol"], unknown: .ignore) else { return nil }
                    let name = r.optionalString(pf, "name")
                    guard let cp = pf["containerPort"] else { r.missing(pf, "containerPort"); return nil }
                    guard let port = portNumber(cp, pf.path("containerPort")) else { return nil }
                    return ContainerPort(name: name, containerPort: port, protocol: proto(pf))
                } ?? []
            }
            pod.containerPorts = (containers ?? []).flatMap { $0 }
        }
        if let status = lenient(f, "status", ["podIP", "podIPs"]) {
            var ips: [IPAddress] = []
            if let list = r.optionalList(status, "podIPs", { n, p -> IPAddress? in
                guard let pf = r.fields(n, p, allowed: ["ip"], unknown: .ignore) else { return nil }
                guard let ipn = pf["ip"] else { r.missing(pf, "ip"); return nil }
                return ip(ipn, pf.path("ip"))
            }) { ips = list }
            if let n = status["podIP"], let a = ip(n, status.path("podIP")), !ips.contains(a) { ips.insert(a, at: 0) }
            pod.podIPs = ips
        }
        return pod
    }

    // MARK: Node

    func nodeObject(_ f: Fields, _ meta: ObjectMeta) -> NodeObject? {
        var node = NodeObject(meta: meta)
        if let status = lenient(f, "status", ["addresses"]) {
            let addrs = r.optionalList(status, "addresses") { n, p -> IPAddress? in
                guard let af = r.fields(n, p, allowed: ["type", "address"], unknown: .ignore) else { return nil }
                let type = r.optionalString(af, "type")
                guard type == "InternalIP" || type == "ExternalIP" else { return nil }
                guard let an = af["address"] else { r.missing(af, "address"); return nil }
                return ip(an, af.path("address"))
            }
            node.addresses = addrs ?? []
        }
        return node
    }

    // MARK: Service

    func service(_ f: Fields, _ meta: ObjectMeta) -> ServiceObject? {
        var svc = ServiceObject(meta: meta)
        guard let spec = lenient(f, "spec", ["selector", "clusterIP", "clusterIPs", "ports"]) else { return svc }
        if let n = spec["selector"] { svc.selector = r.stringMap(n, spec.path("selector")) }
        var ips: [IPAddress] = []
        let headless: (String) -> Bool = { $0.isEmpty || $0 == "None" }
        if let list = r.optionalList(spec, "clusterIPs", { n, p -> IPAddress? in
            guard let s = r.string(n, p) else { return nil }
            return headless(s) ? nil : ip(n, p)
        }) { ips = list }
        if let n = spec["clusterIP"], let s = r.string(n, spec.path("clusterIP")), !headless(s),
           let a = ip(n, spec.path("clusterIP")), !ips.contains(a) {
            ips.insert(a, at: 0)
        }
        svc.clusterIPs = ips
        svc.ports = r.optionalList(spec, "ports") { n, p -> ServicePort? in
            guard let pf = r.fields(n, p, allowed: ["name", "port", "targetPort", "protocol"], unknown: .ignore) else { return nil }
            let name = r.optionalString(pf, "name")
            guard let pn = pf["port"] else { r.missing(pf, "port"); return nil }
            guard let port = portNumber(pn, pf.path("port")) else { return nil }
            var target: PortSpec?
            if let tn = pf["targetPort"] {
                if tn.isPlainScalar, let text = tn.scalarText, ScalarSyntax.intValue(text) != nil {
                    if let v = portNumber(tn, pf.path("targetPort"), allowZero: true) { target = v == 0 ? nil : .number(v) }
                } else if let s = r.string(tn, pf.path("targetPort")) {
                    if let v = UInt16(s), v > 0 { target = .number(v) }
                    else if PortSyntax.isServiceName(s) { target = .named(s) }
                    else { r.fail(pf.path("targetPort"), tn, "invalid targetPort \"\(s)\": expected a port number or name") }
                }
            }
            return ServicePort(name: name, port: port, targetPort: target, protocol: proto(pf))
        } ?? []
        return svc
    }

    // MARK: Endpoints

    func endpoints(_ f: Fields, _ meta: ObjectMeta) -> EndpointsObject? {
        var ep = EndpointsObject(meta: meta)
        let subsets = r.optionalList(f, "subsets") { n, p -> (addresses: [IPAddress], ports: [EndpointsObject.Port])? in
            guard let sf = r.fields(n, p, allowed: ["addresses", "ports"], unknown: .ignore) else { return nil }
            let addrs = r.optionalList(sf, "addresses") { an, ap -> IPAddress? in
                guard let af = r.fields(an, ap, allowed: ["ip"], unknown: .ignore) else { return nil }
                guard let ipn = af["ip"] else { r.missing(af, "ip"); return nil }
                return ip(ipn, af.path("ip"))
            } ?? []
            let ports = r.optionalList(sf, "ports") { pn, pp -> EndpointsObject.Port? in
                guard let pf = r.fields(pn, pp, allowed: ["name", "port", "protocol"], unknown: .ignore) else { return nil }
                let name = r.optionalString(pf, "name")
                guard let portNode = pf["port"] else { r.missing(pf, "port"); return nil }
                guard let port = portNumber(portNode, pf.path("port")) else { return nil }
                return EndpointsObject.Port(name: name, port: port, protocol: proto(pf))
            } ?? []
            return (addrs, ports)
        } ?? []
        for s in subsets {
            for a in s.addresses where !ep.addresses.contains(a) { ep.addresses.append(a) }
            for p in s.ports where !ep.ports.contains(p) { ep.ports.append(p) }
        }
        return ep
    }
}
