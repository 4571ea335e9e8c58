import Foundation
import HubbleAPI
import PolicyAPI

/// A filter the server cannot evaluate (bad CIDR, port, regular expression, label selector, or a field
/// Membrane does not support). The server answers InvalidArgument with `description`.
public struct FilterError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Hubble's flow filter semantics (`pkg/hubble/filters`), compiled once per request:
/// a flow passes when the whitelist is empty or any whitelist filter matches, and no blacklist filter
/// matches. Within one `FlowFilter` every non-empty field must match; within one field any value may.
public struct FlowFilterSet: Sendable {
    typealias Predicate = @Sendable (Flow_Flow) -> Bool
    private let whitelist: [[Predicate]]
    private let blacklist: [[Predicate]]
    /// What the filters read beyond a flow's scalars: a `FlowBatch` builds only these parts to filter.
    public let parts: FlowParts

    public init(whitelist: [Flow_FlowFilter] = [], blacklist: [Flow_FlowFilter] = []) throws {
        let w = try whitelist.map(FlowFilterSet.compile), b = try blacklist.map(FlowFilterSet.compile)
        self.whitelist = w.map(\.predicates)
        self.blacklist = b.map(\.predicates)
        parts = (w + b).reduce(into: []) { $0.formUnion($1.parts) }
    }

    public var isEmpty: Bool { whitelist.isEmpty && blacklist.isEmpty }

    public func matches(_ flow: Flow_Flow) -> Bool {
        if !whitelist.isEmpty && !whitelist.contains(where: { f in f.allSatisfy { $0(flow) } }) { return false }
        return !blacklist.contains(where: { f in f.allSatisfy { $0(flow) } })
    }

    // MARK: Compilation

    static func compile(_ f: Flow_FlowFilter) throws -> (predicates: [Predicate], parts: FlowParts) {
        var p: [Predicate] = [], parts: FlowParts = []
        func add(_ part: FlowParts = [], _ predicate: @escaping Predicate) { p.append(predicate); parts.formUnion(part) }

        if !f.uuid.isEmpty { let v = Set(f.uuid); add(.uuid) { v.contains($0.uuid) } }
        if !f.sourceIp.isEmpty { let m = try ipMatcher(f.sourceIp); add(.ip) { m($0.ip.source) } }
        if !f.destinationIp.isEmpty { let m = try ipMatcher(f.destinationIp); add(.ip) { m($0.ip.destination) } }
        if !f.sourceIpXlated.isEmpty { let m = try ipMatcher(f.sourceIpXlated); add(.ip) { m($0.ip.sourceXlated) } }
        if !f.sourcePod.isEmpty { let m = podMatcher(f.sourcePod); add(.endpoints) { m($0.source) } }
        if !f.destinationPod.isEmpty { let m = podMatcher(f.destinationPod); add(.endpoints) { m($0.destination) } }
        if !f.sourceService.isEmpty { let m = serviceMatcher(f.sourceService); add { m($0.sourceService) } }
        if !f.destinationService.isEmpty { let m = serviceMatcher(f.destinationService); add { m($0.destinationService) } }
        if !f.sourceFqdn.isEmpty { let m = try fqdnMatcher(f.sourceFqdn); add { m($0.sourceNames) } }
        if !f.destinationFqdn.isEmpty { let m = try fqdnMatcher(f.destinationFqdn); add { m($0.destinationNames) } }
        if !f.sourceLabel.isEmpty { let m = try labelMatcher(f.sourceLabel); add(.endpoints) { $0.hasSource && m($0.source.labels) } }
        if !f.destinationLabel.isEmpty { let m = try labelMatcher(f.destinationLabel); add(.endpoints) { $0.hasDestination && m($0.destination.labels) } }
        if !f.sourceWorkload.isEmpty { let w = f.sourceWorkload; add(.endpoints) { workloadMatches(w, $0.source.workloads) } }
        if !f.destinationWorkload.isEmpty { let w = f.destinationWorkload; add(.endpoints) { workloadMatches(w, $0.destination.workloads) } }
        if !f.sourceClusterName.isEmpty { let v = Set(f.sourceClusterName); add(.endpoints) { v.contains($0.source.clusterName) } }
        if !f.destinationClusterName.isEmpty { let v = Set(f.destinationClusterName); add(.endpoints) { v.contains($0.destination.clusterName) } }
        if !f.trafficDirection.isEmpty { let v = Set(f.trafficDirection); add { v.contains($0.trafficDirection) } }
        if !f.verdict.isEmpty { let v = Set(f.verdict); add { v.contains($0.verdict) } }
        if !f.dropReasonDesc.isEmpty { let v = Set(f.dropReasonDesc); add { v.contains($0.dropReasonDesc) } }
        if !f.interface.isEmpty {
            let v = f.interface
            add(.interface) { flow in flow.hasInterface && v.contains { ($0.index == 0 || $0.index == flow.interface.index) && ($0.name.isEmpty || $0.name == flow.interface.name) } }
        }
        if !f.eventType.isEmpty {
            let v = f.eventType
            add { flow in
                flow.hasEventType && v.contains { ($0.type == 0 || $0.type == flow.eventType.type) && (!$0.matchSubType || $0.subType == flow.eventType.subType) }
            }
        }
        if !f.httpStatusCode.isEmpty { let m = try statusMatcher(f.httpStatusCode); add { $0.l7.http.code != 0 && m($0.l7.http.code) } }
        if !f.protocol.isEmpty { let m = try protocolMatcher(f.protocol); add(.l4, m) }
        if !f.sourcePort.isEmpty { let v = try ports(f.sourcePort); add(.l4) { $0.l4Ports.map { v.contains($0.source) } ?? false } }
        if !f.destinationPort.isEmpty { let v = try ports(f.destinationPort); add(.l4) { $0.l4Ports.map { v.contains($0.destination) } ?? false } }
        if !f.reply.isEmpty { let v = Set(f.reply); add { $0.hasIsReply && v.contains($0.isReply.value) } }
        if !f.dnsQuery.isEmpty { let r = try regexes(f.dnsQuery, "dns_query"); add { $0.l7.dns.query.isEmpty ? false : anyMatch(r, $0.l7.dns.query) } }
        if !f.sourceIdentity.isEmpty { let v = Set(f.sourceIdentity); add(.endpoints) { v.contains($0.source.identity) } }
        if !f.destinationIdentity.isEmpty { let v = Set(f.destinationIdentity); add(.endpoints) { v.contains($0.destination.identity) } }
        if !f.httpMethod.isEmpty { let v = Set(f.httpMethod.map { $0.uppercased() }); add { v.contains($0.l7.http.method.uppercased()) } }
        if !f.httpPath.isEmpty {
            let r = try regexes(f.httpPath, "http_path")
            add { flow in
                guard !flow.l7.http.url.isEmpty else { return false }
                return anyMatch(r, URLComponents(string: flow.l7.http.url)?.path ?? flow.l7.http.url)
            }
        }
        if !f.httpURL.isEmpty { let r = try regexes(f.httpURL, "http_url"); add { $0.l7.http.url.isEmpty ? false : anyMatch(r, $0.l7.http.url) } }
        if !f.httpHeader.isEmpty {
            let v = f.httpHeader
            add { flow in flow.l7.http.headers.contains { h in v.contains { $0.key == h.key && $0.value == h.value } } }
        }
        if !f.tcpFlags.isEmpty {
            let v = f.tcpFlags
            add(.l4) { flow in
                guard case .tcp(let tcp)? = flow.l4.protocol else { return false }
                return v.contains { want in tcpFlagsContain(tcp.flags, want) }
            }
        }
        if !f.nodeName.isEmpty { let m = try nodeMatcher(f.nodeName); add { m($0.nodeName) } }
        if !f.nodeLabels.isEmpty { let m = try labelMatcher(f.nodeLabels); add { m($0.nodeLabels) } }
        if !f.ipVersion.isEmpty { let v = Set(f.ipVersion); add(.ip) { $0.hasIp && v.contains($0.ip.ipVersion) } }
        if !f.traceID.isEmpty { let v = Set(f.traceID); add { v.contains($0.traceContext.parent.traceID) } }
        if !f.ipTraceID.isEmpty { let v = Set(f.ipTraceID); add { $0.ipTraceID.traceID != 0 && v.contains($0.ipTraceID.traceID) } }
        if !f.encrypted.isEmpty { let v = Set(f.encrypted); add(.ip) { v.contains($0.ip.encrypted) } }
        if !f.experimental.celExpression.isEmpty {
            throw FilterError("experimental.cel_expression filters are not supported by Membrane")
        }
        return (p, parts)
    }

    static func ipMatcher(_ values: [String]) throws -> @Sendable (String) -> Bool {
        var exact = Set<String>(), prefixes: [IPPrefix] = []
        for v in values {
            if v.contains("/") {
                guard let p = IPPrefix(v) else { throw FilterError("invalid IP prefix \(String(reflecting: v))") }
                prefixes.append(p)
            } else {
                guard let a = IPAddress(v) else { throw FilterError("invalid IP address \(String(reflecting: v))") }
                exact.insert(a.description)
            }
        }
        let (e, p) = (exact, prefixes)
        return { ip in
            guard !ip.isEmpty else { return false }
            if e.contains(ip) { return true }
            guard !p.isEmpty, let a = IPAddress(ip) else { return false }
            return p.contains { $0.contains(a) }
        }
    }

    /// `ns/podprefix`; `ns/` = any pod of ns; no slash = namespace `default`.
    static func podMatcher(_ values: [String]) -> @Sendable (Flow_Endpoint) -> Bool {
        let specs = values.map(namespaceAndPrefix)
        return { ep in
            guard !(ep.namespace.isEmpty && ep.podName.isEmpty) else { return false }
            return specs.contains { ep.namespace == $0.namespace && ep.podName.hasPrefix($0.prefix) }
        }
    }

    static func serviceMatcher(_ values: [String]) -> @Sendable (Flow_Service) -> Bool {
        let specs = values.map(namespaceAndPrefix)
        return { svc in
            guard !(svc.namespace.isEmpty && svc.name.isEmpty) else { return false }
            return specs.contains { svc.namespace == $0.namespace && svc.name.hasPrefix($0.prefix) }
        }
    }

    static func namespaceAndPrefix(_ v: String) -> (namespace: String, prefix: String) {
        guard let slash = v.firstIndex(of: "/") else { return ("default", v) }
        return (String(v[..<slash]), String(v[v.index(after: slash)...]))
    }

    /// FQDN patterns: `*` matches any run of name characters (not crossing into other names);
    /// a trailing dot is ignored and the comparison is case-insensitive.
    static func fqdnMatcher(_ values: [String]) throws -> @Sendable ([String]) -> Bool {
        let patterns = try values.map { v -> NSRegularExpression in
            let name = v.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-.*_".contains($0) }) else {
                throw FilterError("invalid FQDN pattern \(String(reflecting: v))")
            }
            let body = NSRegularExpression.escapedPattern(for: name).replacingOccurrences(of: "\\*", with: "[-a-z0-9_.]*")
            return try NSRegularExpression(pattern: "^" + body + "$")
        }
        let box = RegexBox(patterns)
        return { names in
            names.contains { n in
                let name = n.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
                return box.regexes.contains { $0.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil }
            }
        }
    }

    static func labelMatcher(_ values: [String]) throws -> @Sendable ([String]) -> Bool {
        let selectors = try values.map { v in
            do { return try LabelSelectorFilter(parsing: v) } catch { throw FilterError("invalid label selector: \(error)") }
        }
        return { labels in selectors.contains { $0.matches(labels) } }
    }

    static func workloadMatches(_ wanted: [Flow_Workload], _ have: [Flow_Workload]) -> Bool {
        have.contains { w in wanted.contains { ($0.name.isEmpty || $0.name == w.name) && ($0.kind.isEmpty || $0.kind == w.kind) } }
    }

    /// `200` exact, `4+` any code of that class (400–499), as Hubble accepts.
    static func statusMatcher(_ values: [String]) throws -> @Sendable (UInt32) -> Bool {
        let specs = try values.map { v -> (UInt32, Bool) in
            if v.hasSuffix("+"), let d = UInt32(v.dropLast()), d >= 1, d <= 5 { return (d, true) }
            guard let code = UInt32(v), (100...599).contains(code) else { throw FilterError("invalid HTTP status code \(String(reflecting: v))") }
            return (code, false)
        }
        return { code in specs.contains { $0.1 ? code / 100 == $0.0 : code == $0.0 } }
    }

    static func protocolMatcher(_ values: [String]) throws -> FlowFilterSet.Predicate {
        let known: Set = ["tcp", "udp", "sctp", "icmp", "icmpv4", "icmpv6", "vrrp", "igmp", "dns", "http", "kafka"]
        let wanted = Set(values.map { $0.lowercased() })
        if let bad = wanted.subtracting(known).sorted().first { throw FilterError("unknown protocol \(String(reflecting: bad))") }
        return { flow in
            var names: [String] = []
            switch flow.l4.protocol {
            case .tcp?: names = ["tcp"]
            case .udp?: names = ["udp"]
            case .sctp?: names = ["sctp"]
            case .icmpv4?: names = ["icmp", "icmpv4"]
            case .icmpv6?: names = ["icmp", "icmpv6"]
            case .vrrp?: names = ["vrrp"]
            case .igmp?: names = ["igmp"]
            case nil: break
            }
            switch flow.l7.record {
            case .dns?: names.append("dns")
            case .http?: names.append("http")
            case .kafka?: names.append("kafka")
            case nil: break
            }
            return names.contains(where: wanted.contains)
        }
    }

    static func ports(_ values: [String]) throws -> Set<UInt32> {
        Set(try values.map { v in
            guard let p = UInt16(v) else { throw FilterError("invalid port \(String(reflecting: v))") }
            return UInt32(p)
        })
    }

    static func regexes(_ values: [String], _ field: String) throws -> RegexBox {
        RegexBox(try values.map { v in
            do { return try NSRegularExpression(pattern: v) } catch { throw FilterError("invalid \(field) regular expression \(String(reflecting: v))") }
        })
    }

    static func anyMatch(_ box: RegexBox, _ s: String) -> Bool {
        box.regexes.contains { $0.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil }
    }

    /// Node name patterns `cluster/node` or `node`, with `*` globs.
    static func nodeMatcher(_ values: [String]) throws -> @Sendable (String) -> Bool {
        let box = RegexBox(try values.map { v in
            let node = v.split(separator: "/", maxSplits: 1).last.map(String.init) ?? v
            let body = NSRegularExpression.escapedPattern(for: node).replacingOccurrences(of: "\\*", with: ".*")
            return try NSRegularExpression(pattern: "^" + body + "$")
        })
        return { name in anyMatch(box, name) }
    }

    static func tcpFlagsContain(_ have: Flow_TCPFlags, _ want: Flow_TCPFlags) -> Bool {
        (!want.syn || have.syn) && (!want.ack || have.ack) && (!want.fin || have.fin) && (!want.rst || have.rst)
            && (!want.psh || have.psh) && (!want.urg || have.urg) && (!want.ece || have.ece) && (!want.cwr || have.cwr)
            && (!want.ns || have.ns)
    }
}

/// NSRegularExpression is immutable and thread-safe once built, but not declared Sendable.
final class RegexBox: @unchecked Sendable {
    let regexes: [NSRegularExpression]
    init(_ regexes: [NSRegularExpression]) { self.regexes = regexes }
}

extension Flow_Flow {
    /// TCP, UDP or SCTP ports; nil for other protocols (ICMP never matches a port filter).
    var l4Ports: (source: UInt32, destination: UInt32)? {
        switch l4.protocol {
        case .tcp(let t)?: (t.sourcePort, t.destinationPort)
        case .udp(let u)?: (u.sourcePort, u.destinationPort)
        case .sctp(let s)?: (s.sourcePort, s.destinationPort)
        default: nil
        }
    }
}
