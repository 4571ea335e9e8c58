import PolicyAPI
import Policy

/// The question `membrane policy trace` answers: would this connection pass, and why?
public struct TraceRequest: Sendable {
    public var from: String
    public var to: String
    public var port: UInt16?
    /// `TCP`, `UDP`, `SCTP`, `ICMP` (ICMPv6 for IPv6 peers).
    public var proto: String = "TCP"
    public var icmpType: UInt8?
    public var l7: L7Request?
    /// `NAME=IP` lookups the source made through the cluster DNS just before connecting.
    public var dns: [(name: String, address: IPAddress)] = []

    public init(from: String, to: String, port: UInt16? = nil, proto: String = "TCP", icmpType: UInt8? = nil,
                l7: L7Request? = nil, dns: [(name: String, address: IPAddress)] = []) {
        self.from = from; self.to = to; self.port = port; self.proto = proto; self.icmpType = icmpType
        self.l7 = l7; self.dns = dns
    }
}

public struct TraceError: Error, CustomStringConvertible {
    public var description: String
}

/// One side of a traced connection.
public struct TracePeer: Encodable, Sendable {
    public var input: String
    public var kind: String
    public var name: String?
    public var ip: String?
    public var identity: NumericIdentity
    public var labels: [String]
    public var endpointID: UInt16?
    public var node: String?
    /// For a Service clusterIP destination: the Service it was translated from.
    public var translatedFrom: String?
}

public struct PolicyName: Encodable, Hashable, Sendable, Comparable {
    public var kind: String
    public var namespace: String?
    public var name: String
    public init(_ ref: ResourceRef) { kind = ref.kind.rawValue; namespace = ref.namespace; name = ref.name }
    public var display: String { "\(kind) \(namespace.map { "\($0)/" } ?? "")\(name)" }
    public static func < (a: Self, b: Self) -> Bool { a.display < b.display }
}

/// The policy map entry a lookup matched.
public struct MatchedEntry: Encodable, Sendable {
    public var key: String
    public var peerIdentity: NumericIdentity
    public var ports: String
    public var decision: String
    public var proxyPort: UInt16?
    public var rules: [String]
}

public struct DirectionTrace: Encodable, Sendable {
    public var verdict: String
    public var enforced: Bool
    public var policies: [PolicyName]
    public var entry: MatchedEntry?
    public var explanation: String
    public var dropReason: String?
}

public struct L7Trace: Encodable, Sendable {
    public var parser: String
    public var direction: String
    public var verdict: String
    public var request: String?
    public var policies: [PolicyName]
    public var explanation: String
}

public struct TraceResult: Encodable, Sendable {
    public var verdict: String
    public var dropReason: String?
    public var source: TracePeer
    public var destination: TracePeer
    public var proto: String
    public var port: UInt16?
    public var egress: DirectionTrace
    public var ingress: DirectionTrace
    public var l7: L7Trace?
    public var dnsLearned: [String]
}

/// Traces a connection through the source's egress policy and the destination's ingress policy,
/// after service translation, with the same lookup the datapath uses.
public struct PolicyTracer {
    public var cluster: ClusterModel

    public init(cluster: ClusterModel) { self.cluster = cluster }

    enum Side {
        case endpoint(EndpointInfo)
        case outside(IPAddress)
    }

    struct Resolved {
        var side: Side
        var ip: IPAddress?
        var service: String?
        var node: String?
    }

    func resolve(_ text: String, isDestination: Bool, port: inout UInt16?) throws -> Resolved {
        if let ip = IPAddress(text) {
            if let ref = cluster.pod(owning: ip), let id = cluster.endpointByPod[ref], let e = cluster.endpoints[id] {
                return Resolved(side: .endpoint(e), ip: ip, node: e.nodeName)
            }
            if let node = cluster.node(owning: ip), let id = cluster.hostEndpointByNode[node], let e = cluster.endpoints[id] {
                return Resolved(side: .endpoint(e), ip: ip, node: node)
            }
            if isDestination, let svcRef = cluster.service(withClusterIP: ip) {
                return try translate(service: svcRef, port: &port)
            }
            return Resolved(side: .outside(ip), ip: ip)
        }
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else {
            throw TraceError(description: "\"\(text)\": expected namespace/pod or an IP address")
        }
        if let e = cluster.endpoint(namespace: parts[0], pod: parts[1]) {
            let pod = cluster.pods[ResourceRef(kind: .pod, namespace: parts[0], name: parts[1])]
            return Resolved(side: .endpoint(e), ip: pod?.podIPs.first ?? e.addresses.first, node: e.nodeName)
        }
        if isDestination, cluster.services[ResourceRef(kind: .service, namespace: parts[0], name: parts[1])] != nil {
            return try translate(service: ResourceRef(kind: .service, namespace: parts[0], name: parts[1]), port: &port)
        }
        throw TraceError(description: "\"\(text)\": no pod \(text) in the manifests (pods need status.podIP or hostNetwork)")
    }

    /// Service translation before policy: the first backend (sorted by name), its target port.
    func translate(service ref: ResourceRef, port: inout UInt16?) throws -> Resolved {
        let svc = cluster.services[ref]!
        let svcPort = port.flatMap { p in svc.ports.first { $0.port == p } } ?? (port == nil ? svc.ports.first : nil)
        if let selector = svc.selector {
            let backends = cluster.pods.keys.sorted().filter { r in
                r.namespace == ref.namespace && selector.allSatisfy { cluster.pods[r]!.meta.labels[$0.key] == $0.value }
            }
            guard let b = backends.first, let e = cluster.endpoint(namespace: b.namespace!, pod: b.name) else {
                throw TraceError(description: "Service \(ref.qualifiedName) has no backend pods")
            }
            let pod = cluster.pods[b]!
            if let sp = svcPort {
                switch sp.targetPort {
                case .number(let n): port = n
                case .named(let name): port = pod.containerPorts.first { $0.name == name }?.containerPort ?? port
                case .any: port = sp.port
                }
            }
            return Resolved(side: .endpoint(e), ip: pod.podIPs.first, service: ref.qualifiedName, node: e.nodeName)
        }
        let eps = cluster.endpointsObjects[ResourceRef(kind: .endpoints, namespace: ref.namespace, name: ref.name)]
        guard let ip = eps?.addresses.first else { throw TraceError(description: "Service \(ref.qualifiedName) has no endpoints") }
        if let sp = svcPort, case .number(let n) = sp.targetPort { port = n }
        if let podRef = cluster.pod(owning: ip), let id = cluster.endpointByPod[podRef], let e = cluster.endpoints[id] {
            return Resolved(side: .endpoint(e), ip: ip, service: ref.qualifiedName, node: e.nodeName)
        }
        return Resolved(side: .outside(ip), ip: ip, service: ref.qualifiedName)
    }

    public mutating func trace(_ req: TraceRequest) throws -> TraceResult {
        var port = req.port
        let src = try resolve(req.from, isDestination: false, port: &port)
        let dst = try resolve(req.to, isDestination: true, port: &port)
        let isV6 = (dst.ip.map { !$0.isIPv4 } ?? false) || (src.ip.map { !$0.isIPv4 } ?? false)
        let protoName = req.proto.uppercased()
        guard var proto = IPProtocol.parse(protoName), proto != 0 else {
            throw TraceError(description: "--protocol \(req.proto): expected TCP, UDP, SCTP or ICMP")
        }
        if proto == IPProtocol.icmp && isV6 { proto = IPProtocol.icmpv6 }
        let isICMP = proto == IPProtocol.icmp || proto == IPProtocol.icmpv6
        let l4Port: UInt16 = isICMP ? UInt16(req.icmpType ?? (isV6 ? 128 : 8)) : (port ?? 0)
        if !isICMP && port == nil { throw TraceError(description: "--port is required for \(protoName)") }

        // DNS lookups made through the proxy label the answers with FQDN identities.
        var learned: [IPAddress: NumericIdentity] = [:]
        var dnsNotes: [String] = []
        if case .endpoint(let srcEP) = src.side {
            for (name, address) in req.dns {
                let (ok, why) = dnsLookupSeenByProxy(source: srcEP, name: name)
                if !ok {
                    dnsNotes.append("\(name) → \(address): not learned (\(why))")
                } else if let id = cluster.learnDNS(name: name, address: address) {
                    learned[address] = id.id
                    dnsNotes.append("\(name) → \(address): identity \(id.id) (\(why))")
                } else {
                    dnsNotes.append("\(name) → \(address): not learned (no toFQDNs selector in any policy matches the name)")
                }
            }
        }

        let srcNode = src.node ?? dst.node ?? cluster.nodes.keys.sorted().first ?? ""
        let dstNode = dst.node ?? src.node ?? cluster.nodes.keys.sorted().first ?? ""
        let srcView = IPCache(cluster: cluster, node: srcNode, learned: learned)
        let dstView = IPCache(cluster: cluster, node: dstNode, learned: learned)

        func identity(of r: Resolved, seenFrom view: IPCache) -> NumericIdentity {
            if case .endpoint(let e) = r.side, !e.isHost { return e.identity.id }
            if let ip = r.ip { return view.lookup(ip).identity }
            if case .endpoint(let e) = r.side { return e.identity.id }
            return ReservedIdentity.world.rawValue
        }
        let dstIdentity = identity(of: dst, seenFrom: srcView)
        let srcIdentity = identity(of: src, seenFrom: dstView)

        var egress = DirectionTrace(verdict: "FORWARDED", enforced: false, policies: [], entry: nil,
                                    explanation: "the source is not a local endpoint: no egress policy applies", dropReason: nil)
        var ingress = DirectionTrace(verdict: "FORWARDED", enforced: false, policies: [], entry: nil,
                                     explanation: "the destination is not a local endpoint: no ingress policy applies", dropReason: nil)
        var redirect: (PolicyEntry, TrafficDirection)?
        if case .endpoint(let e) = src.side {
            let (t, r) = evaluate(endpoint: e, direction: .egress, peer: dstIdentity, proto: proto, port: l4Port)
            egress = t; if let r { redirect = (r, .egress) }
        }
        if case .endpoint(let e) = dst.side {
            let (t, r) = evaluate(endpoint: e, direction: .ingress, peer: srcIdentity, proto: proto, port: l4Port)
            ingress = t; if redirect == nil, let r { redirect = (r, .ingress) }
        }

        var l7: L7Trace?
        if let (entry, dir) = redirect, let policy = entry.l7 {
            if let request = req.l7 {
                let v = L7Evaluator.evaluate(policy, request)
                l7 = L7Trace(parser: policy.parser.rawValue, direction: dir.upper, verdict: v.allowed ? "FORWARDED" : "DROPPED",
                             request: request.description, policies: policyNames(v.allowedBy), explanation: v.reason)
            } else {
                l7 = L7Trace(parser: policy.parser.rawValue, direction: dir.upper, verdict: "REDIRECTED", request: nil,
                             policies: policyNames(policy.ruleSets.map(\.origin) + policy.allowAllBy),
                             explanation: "redirected to the \(policy.parser.rawValue) proxy on port \(policy.parser.proxyPort(dir)); give a request (--http-*, --kafka-*, --dns-query) to see its L7 verdict")
            }
        }

        var verdict = "FORWARDED"
        var dropReason: String?
        for t in [egress, ingress] where t.verdict == "DROPPED" && verdict != "DROPPED" {
            verdict = "DROPPED"; dropReason = t.dropReason
        }
        if verdict != "DROPPED", l7?.verdict == "DROPPED" { verdict = "DROPPED" }
        if verdict == "FORWARDED", egress.verdict == "AUDIT" || ingress.verdict == "AUDIT" { verdict = "AUDIT" }

        return TraceResult(verdict: verdict, dropReason: dropReason,
                           source: describe(src, input: req.from, identity: srcIdentity),
                           destination: describe(dst, input: req.to, identity: dstIdentity),
                           proto: IPProtocol.name(proto), port: isICMP ? nil : port,
                           egress: egress, ingress: ingress, l7: l7, dnsLearned: dnsNotes)
    }

    /// Whether the source's lookup of `name` went through the DNS proxy and its DNS rules allowed it.
    func dnsLookupSeenByProxy(source: EndpointInfo, name: String) -> (Bool, String) {
        guard let map = cluster.engine.mapState(source.id) else { return (false, "no policy for the source") }
        let dnsServers = cluster.pods.keys.sorted().filter { ref in
            cluster.services.contains { svcRef, svc in
                svcRef.name == "kube-dns" && svcRef.namespace == "kube-system" && svc.selector.map { sel in
                    ref.namespace == "kube-system" && sel.allSatisfy { cluster.pods[ref]!.meta.labels[$0.key] == $0.value }
                } == true
            } || (ref.namespace == "kube-system" && cluster.pods[ref]!.meta.labels["k8s-app"] == "kube-dns")
        }
        for ref in dnsServers {
            guard let id = cluster.endpointByPod[ref], let dns = cluster.endpoints[id] else { continue }
            for proto in [IPProtocol.udp, IPProtocol.tcp] {
                guard let (_, entry) = map.lookup(direction: .egress, identity: dns.identity.id, proto: proto, port: 53),
                      !entry.isDeny, let l7 = entry.l7, l7.parser == .dns else { continue }
                let v = L7Evaluator.evaluate(l7, .dns(query: name))
                if v.allowed { return (true, "the DNS proxy saw the lookup and its rules allow the name") }
                return (false, "the DNS proxy refused the lookup: \(v.reason)")
            }
        }
        return (false, "the source's policy does not send DNS to the DNS proxy")
    }

    func policyNames(_ origins: [OriginID]) -> [PolicyName] {
        Array(Set(origins.compactMap { cluster.engine.origins[$0].ref }.map(PolicyName.init))).sorted()
    }

    func evaluate(endpoint e: EndpointInfo, direction: TrafficDirection, peer: NumericIdentity, proto: UInt8, port: UInt16)
        -> (DirectionTrace, PolicyEntry?) {
        let engine = cluster.engine
        guard let map = engine.mapState(e.id), let posture = engine.posture(e.id, direction) else {
            return (DirectionTrace(verdict: "FORWARDED", enforced: false, policies: [], entry: nil, explanation: "no policy computed", dropReason: nil), nil)
        }
        let audit = engine.settings.auditMode
        let dirName = direction == .ingress ? "ingress" : "egress"
        if !posture.enforced {
            return (DirectionTrace(verdict: "FORWARDED", enforced: false, policies: [], entry: nil,
                                   explanation: "\(dirName) policy is not enforced: \(posture.reason ?? "")", dropReason: nil), nil)
        }
        guard let (key, entry) = map.lookup(direction: direction, identity: peer, proto: proto, port: port) else {
            let by = posture.defaultDenyBy.map(PolicyName.init)
            let why = by.isEmpty ? (posture.reason ?? "default deny") : "default deny set by " + by.map(\.display).joined(separator: ", ")
            return (DirectionTrace(verdict: audit ? "AUDIT" : "DROPPED", enforced: true, policies: by, entry: nil,
                                   explanation: "no map entry allows identity \(peer) on \(IPProtocol.name(proto))/\(port): \(why)" + (audit ? " (audit mode: forwarded)" : ""),
                                   dropReason: audit ? nil : "POLICY_DENIED"), nil)
        }
        let rules = entry.origins.map { engine.origins[$0].description }
        let matched = MatchedEntry(key: key.description, peerIdentity: key.identity, ports: key.l4.description,
                                   decision: entry.isDeny ? "deny" : (entry.isRedirect ? "redirect" : "allow"),
                                   proxyPort: entry.isRedirect ? entry.proxyPort(direction) : nil, rules: rules)
        let names = policyNames(entry.origins)
        if entry.isDeny {
            return (DirectionTrace(verdict: audit ? "AUDIT" : "DROPPED", enforced: true, policies: names, entry: matched,
                                   explanation: "explicit deny by \(rules.joined(separator: ", "))" + (audit ? " (audit mode: forwarded)" : ""),
                                   dropReason: audit ? nil : "POLICY_DENY"), nil)
        }
        var explanation = "allowed by \(rules.joined(separator: ", "))"
        if entry.isRedirect { explanation += "; redirected to the \(entry.l7!.parser.rawValue) proxy" }
        if entry.authRequired { explanation += "; mutual authentication required" }
        return (DirectionTrace(verdict: "FORWARDED", enforced: true, policies: names, entry: matched,
                               explanation: explanation, dropReason: nil), entry.isRedirect ? entry : nil)
    }

    func describe(_ r: Resolved, input: String, identity: NumericIdentity) -> TracePeer {
        let labels = cluster.engine.identity(identity)?.labels.labels.map(\.description) ?? []
        switch r.side {
        case .endpoint(let e):
            return TracePeer(input: input, kind: e.isHost ? "host" : "pod", name: e.isHost ? e.nodeName : "\(e.namespace!)/\(e.podName!)",
                             ip: r.ip?.description, identity: identity,
                             labels: e.isHost ? e.identity.labels.labels.map(\.description) : labels,
                             endpointID: e.id, node: e.nodeName, translatedFrom: r.service)
        case .outside(let ip):
            let kind = identity >= IdentityRange.minimumLocal ? "cidr" : (ReservedIdentity(rawValue: identity)?.name ?? "world")
            return TracePeer(input: input, kind: kind, name: nil, ip: ip.description, identity: identity, labels: labels,
                             endpointID: nil, node: r.node, translatedFrom: r.service)
        }
    }
}
