import Foundation
import HubbleAPI
import SwiftProtobuf

/// Turns `observe` filter flags into whitelist/blacklist `FlowFilter`s exactly as the `hubble` CLI does
/// (reference §2.1, `--print-raw-filters`), so that `membrane observe` and `hubble observe` send the same
/// requests to the same server.
///
/// Flags are applied in command-line order: `--from-X` sets the source field and `--to-X` the destination
/// field of the filter; a flag for either side (`--pod`, `--namespace`, `--ip`, `--label`, `--identity`,
/// `--port`, `--fqdn`) makes two filters, one per side (OR); other flags (`--verdict`, `--type`, …) apply to
/// both. `--not` sends the next filter flag to the blacklist.
public struct ObserveFilterBuilder {
    /// A filter flag with its value, in command-line order.
    public struct Flag: Sendable, Hashable {
        public var name: String
        public var value: String
        public var negated: Bool
        public init(_ name: String, _ value: String, negated: Bool = false) { self.name = name; self.value = value; self.negated = negated }
    }

    /// One list (whitelist or blacklist): the source-side and destination-side filters.
    struct Side {
        var left = Flow_FlowFilter(), right = Flow_FlowFilter()
        var used = false
        var filters: [Flow_FlowFilter] { !used ? [] : left == right ? [left] : [left, right] }
        mutating func both(_ set: (inout Flow_FlowFilter) -> Void) { used = true; set(&left); set(&right) }
        mutating func split(_ source: (inout Flow_FlowFilter) -> Void, _ destination: (inout Flow_FlowFilter) -> Void) {
            used = true; source(&left); destination(&right)
        }
    }

    var white = Side(), black = Side()
    var namespaces: (white: [String], black: [String]) = ([], [])

    public init() {}

    /// Filter flag names this builder understands (without the leading dashes).
    public static let flagNames: Set<String> = [
        "verdict", "namespace", "from-namespace", "to-namespace", "pod", "from-pod", "to-pod", "identity", "from-identity",
        "to-identity", "port", "from-port", "to-port", "ip", "from-ip", "to-ip", "label", "from-label", "to-label", "fqdn",
        "from-fqdn", "to-fqdn", "service", "from-service", "to-service", "type", "protocol", "traffic-direction",
        "drop-reason-desc", "http-status", "http-method", "http-path", "http-url", "node-name", "uuid", "tcp-flags",
        "ip-version", "dns-query", "is-reply",
    ]

    /// Builds the filters for flags given in order.
    public static func filters(_ flags: [Flag]) throws -> (whitelist: [Flow_FlowFilter], blacklist: [Flow_FlowFilter]) {
        var b = ObserveFilterBuilder()
        // `--namespace` qualifies `--pod` values without a namespace, whatever their order.
        for f in flags where f.name == "namespace" {
            if f.negated { b.namespaces.black.append(f.value) } else { b.namespaces.white.append(f.value) }
        }
        let podsGiven = Set(flags.filter { $0.name.hasSuffix("pod") }.map(\.negated))
        for f in flags { try b.add(f, podsGiven: podsGiven) }
        return (b.white.filters, b.black.filters)
    }

    mutating func add(_ flag: Flag, podsGiven: Set<Bool>) throws {
        let v = flag.value
        let negated = flag.negated
        var side = negated ? black : white
        defer { if negated { black = side } else { white = side } }
        let ns = negated ? namespaces.black : namespaces.white
        func pod(_ value: String) -> [String] {
            value.contains("/") || ns.isEmpty ? [value] : ns.map { "\($0)/\(value)" }
        }
        switch flag.name {
        case "namespace":
            // With a --pod on the same list, the namespace only qualifies the pod names.
            if !podsGiven.contains(negated) { side.split({ $0.sourcePod.append("\(v)/") }, { $0.destinationPod.append("\(v)/") }) }
        case "from-namespace": side.both { $0.sourcePod.append("\(v)/") }
        case "to-namespace": side.both { $0.destinationPod.append("\(v)/") }
        case "pod": let p = pod(v); side.split({ $0.sourcePod += p }, { $0.destinationPod += p })
        case "from-pod": let p = pod(v); side.both { $0.sourcePod += p }
        case "to-pod": let p = pod(v); side.both { $0.destinationPod += p }
        case "service": side.split({ $0.sourceService.append(v) }, { $0.destinationService.append(v) })
        case "from-service": side.both { $0.sourceService.append(v) }
        case "to-service": side.both { $0.destinationService.append(v) }
        case "identity": let id = try Self.identity(v); side.split({ $0.sourceIdentity.append(id) }, { $0.destinationIdentity.append(id) })
        case "from-identity": let id = try Self.identity(v); side.both { $0.sourceIdentity.append(id) }
        case "to-identity": let id = try Self.identity(v); side.both { $0.destinationIdentity.append(id) }
        case "port": let p = try Self.port(v); side.split({ $0.sourcePort.append(p) }, { $0.destinationPort.append(p) })
        case "from-port": let p = try Self.port(v); side.both { $0.sourcePort.append(p) }
        case "to-port": let p = try Self.port(v); side.both { $0.destinationPort.append(p) }
        case "ip": side.split({ $0.sourceIp.append(v) }, { $0.destinationIp.append(v) })
        case "from-ip": side.both { $0.sourceIp.append(v) }
        case "to-ip": side.both { $0.destinationIp.append(v) }
        case "label": side.split({ $0.sourceLabel.append(v) }, { $0.destinationLabel.append(v) })
        case "from-label": side.both { $0.sourceLabel.append(v) }
        case "to-label": side.both { $0.destinationLabel.append(v) }
        case "fqdn": side.split({ $0.sourceFqdn.append(v) }, { $0.destinationFqdn.append(v) })
        case "from-fqdn": side.both { $0.sourceFqdn.append(v) }
        case "to-fqdn": side.both { $0.destinationFqdn.append(v) }
        case "verdict": let x = try Self.verdict(v); side.both { $0.verdict.append(x) }
        case "type": let x = try Self.eventType(v); side.both { $0.eventType.append(x) }
        case "protocol": side.both { $0.protocol.append(v.lowercased()) }
        case "traffic-direction": let x = try Self.direction(v); side.both { $0.trafficDirection.append(x) }
        case "drop-reason-desc": let x = try Self.dropReason(v); side.both { $0.dropReasonDesc.append(x) }
        case "http-status": side.both { $0.httpStatusCode.append(v) }
        case "http-method": side.both { $0.httpMethod.append(v) }
        case "http-path": side.both { $0.httpPath.append(v) }
        case "http-url": side.both { $0.httpURL.append(v) }
        case "dns-query": side.both { $0.dnsQuery.append(v) }
        case "node-name": side.both { $0.nodeName.append(v) }
        case "uuid": side.both { $0.uuid.append(v) }
        case "is-reply":
            guard let b = Bool(v.lowercased()) else { throw FilterError("--is-reply: expected true or false, got \(String(reflecting: v))") }
            side.both { $0.reply.append(b) }
        case "ip-version":
            let x: Flow_IPVersion
            switch v.lowercased() { case "4", "v4", "ipv4": x = .ipv4; case "6", "v6", "ipv6": x = .ipv6
            default: throw FilterError("--ip-version: expected 4 or 6, got \(String(reflecting: v))") }
            side.both { $0.ipVersion.append(x) }
        case "tcp-flags":
            var flags = Flow_TCPFlags()
            for name in v.split(separator: ",") {
                switch name.uppercased() {
                case "SYN": flags.syn = true; case "ACK": flags.ack = true; case "FIN": flags.fin = true; case "RST": flags.rst = true
                case "PSH": flags.psh = true; case "URG": flags.urg = true; case "ECE": flags.ece = true; case "CWR": flags.cwr = true
                case "NS": flags.ns = true
                default: throw FilterError("--tcp-flags: unknown flag \(String(reflecting: String(name)))")
                }
            }
            side.both { $0.tcpFlags.append(flags) }
        default:
            throw FilterError("unknown filter flag --\(flag.name)")
        }
    }

    // MARK: Values

    static let reservedIdentities = ["unknown": 0, "host": 1, "world": 2, "unmanaged": 3, "health": 4, "init": 5,
                                     "remote-node": 6, "kube-apiserver": 7, "ingress": 8, "world-ipv4": 9, "world-ipv6": 10]

    /// A number or a reserved identity name (`world`, `host`, `reserved:world`).
    public static func identity(_ v: String) throws -> UInt32 {
        if let n = UInt32(v) { return n }
        let name = v.hasPrefix("reserved:") ? String(v.dropFirst("reserved:".count)) : v
        guard let n = reservedIdentities[name] else {
            throw FilterError("invalid identity \(String(reflecting: v)): a number or one of \(reservedIdentities.keys.sorted().joined(separator: ", "))")
        }
        return UInt32(n)
    }

    static func port(_ v: String) throws -> String {
        guard UInt16(v) != nil else { throw FilterError("invalid port \(String(reflecting: v))") }
        return v
    }

    static func verdict(_ v: String) throws -> Flow_Verdict {
        switch v.uppercased() {
        case "FORWARDED": .forwarded; case "DROPPED": .dropped; case "ERROR": .error; case "AUDIT": .audit
        case "REDIRECTED": .redirected; case "TRACED": .traced; case "TRANSLATED": .translated
        default: throw FilterError("invalid verdict \(String(reflecting: v)): FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED or TRANSLATED")
        }
    }

    static func direction(_ v: String) throws -> Flow_TrafficDirection {
        switch v.lowercased() {
        case "ingress": .ingress; case "egress": .egress
        default: throw FilterError("invalid traffic direction \(String(reflecting: v)): ingress or egress")
        }
    }

    /// A DropReason enum name (`POLICY_DENIED`), parsed by the protobuf JSON decoder so every name in the .proto works.
    static func dropReason(_ v: String) throws -> Flow_DropReason {
        let name = v.uppercased()
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
              let f = try? Flow_FlowFilter(jsonString: "{\"drop_reason_desc\":[\"\(name)\"]}"), let r = f.dropReasonDesc.first else {
            throw FilterError("invalid drop reason \(String(reflecting: v)) (e.g. POLICY_DENIED, POLICY_DENY)")
        }
        return r
    }

    static let eventTypes: [String: Int32] = ["drop": 1, "debug": 2, "capture": 3, "trace": 4, "policy-verdict": 5,
                                              "trace-sock": 7, "l7": 129, "agent": 130]

    /// `drop`, `policy-verdict`, `trace:to-endpoint`, a number, …
    static func eventType(_ v: String) throws -> Flow_EventTypeFilter {
        let parts = v.split(separator: ":", maxSplits: 1).map(String.init)
        var f = Flow_EventTypeFilter()
        guard let type = eventTypes[parts[0]] ?? Int32(parts[0]) else {
            throw FilterError("invalid event type \(String(reflecting: v)): one of \(eventTypes.keys.sorted().joined(separator: ", "))")
        }
        f.type = type
        if parts.count == 2 {
            let sub: Int32?
            if type == 4, let i = FlowPrinter.observationPoints.firstIndex(of: parts[1]) { sub = Int32(i) }
            else { sub = Int32(parts[1]) }
            guard let sub else { throw FilterError("invalid event sub-type in \(String(reflecting: v))") }
            f.matchSubType = true
            f.subType = sub
        }
        return f
    }
}
