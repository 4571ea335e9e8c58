import Datapath
import Foundation
import Hubble
import HubbleAPI
import Policy
import PolicyAPI
import SwiftProtobuf

/// Which of an event's flows: a policy decision gives a policy-verdict flow (event type 5) and, when the packet
/// was dropped, also a drop flow (event type 1, sub-type = reason).
enum FlowKind: UInt8, Sendable {
    case policyVerdict, drop

    /// The flows an event gives, in order (at most two).
    static func of(_ e: DatapathEvent) -> (policyVerdict: Bool, drop: Bool) {
        let isPolicyDecision: Bool
        switch e.dropReason {
        case 133, 180, 181: isPolicyDecision = true     // default deny, L7 redirect without a proxy, explicit deny
        default: isPolicyDecision = e.kind == .policyVerdict
        }
        return (isPolicyDecision, e.verdict == .dropped)
    }
}

/// One flow's facts, resolved from its event and the agent's context the way Cilium's parser fills a flow
/// (reference §6). `FlowBuilder` turns them into a `Flow` message and `FlowEncoder` straight into its bytes,
/// so the two cannot disagree on what a flow says.
struct EventFlow {
    let event: DatapathEvent
    let kind: FlowKind
    let timeNs: Int64

    /// Where the deciding policies come from: the matched entry's cookie, or for a default deny the policies
    /// that put the endpoint into default deny for that direction.
    enum Policies { case none, cookie(UInt32), defaultDeny(endpoint: UInt16, TrafficDirection) }

    var egress: Bool { event.direction == .egress }
    var allowed: Bool { event.verdict == .forwarded }

    var verdict: Flow_Verdict {
        switch event.verdict {
        case .forwarded: .forwarded
        case .audit: .audit
        case .dropped, .reply: .dropped
        }
    }

    /// The drop reason a dropped packet reports (0 otherwise).
    var dropReason: UInt32 { event.verdict == .dropped ? UInt32(event.dropReason) : 0 }

    var eventType: (type: Int32, subType: Int32) { kind == .drop ? (1, Int32(event.dropReason)) : (5, 0) }

    /// Hubble's policy_match_type from the matched entry: peer-specific or any peer, by its L4 prefix
    /// (0 = any protocol, 8 = a protocol, more = ports). Drop flows carry none.
    var policyMatchType: UInt32 {
        guard kind == .policyVerdict, let prefix = event.l4PrefixLength else { return 0 }
        switch (event.matchedPeer, prefix) {
        case (true, 0): return 1        // L3-Only
        case (true, 8): return 5        // L3-Proto
        case (true, _): return 2        // L3-L4
        case (false, 0): return 4       // all
        case (false, 8): return 6       // Proto-Only
        case (false, _): return 3       // L4-Only
        }
    }

    var policies: Policies {
        if allowed { return .cookie(event.cookie) }
        guard event.dropReason != 0 else { return .none }
        return event.dropReason == 133 ? .defaultDeny(endpoint: event.endpointID, event.direction) : .cookie(event.cookie)
    }

    /// The peer's address: which endpoint the flow names on the other side.
    var peerIP: IPAddress { egress ? event.destination : event.source }
}

/// Builds the `Flow` messages of datapath events (reference §6), with only the parts a reader asked for.
enum FlowBuilder {
    static func flow(_ x: EventFlow, parts: FlowParts, context c: FlowContext, cookies: [[OriginID]], uuid: () -> String) -> Flow_Flow {
        let e = x.event
        var f = Flow_Flow()
        f.time = Google_Protobuf_Timestamp(seconds: x.timeNs / 1_000_000_000, nanos: Int32(x.timeNs % 1_000_000_000))
        f.verdict = x.verdict
        if x.dropReason != 0 {
            f.dropReason = x.dropReason
            f.dropReasonDesc = Flow_DropReason(rawValue: Int(x.dropReason)) ?? .unknown
        }
        f.type = .l3L4
        f.nodeName = c.nodeName
        f.eventType = eventType(x.eventType.type, x.eventType.subType)
        f.trafficDirection = x.egress ? .egress : .ingress
        f.policyMatchType = x.policyMatchType
        if x.allowed { f.isReply = Google_Protobuf_BoolValue(false) }

        if parts.contains(.ip) { f.ip = ip(e) }
        if parts.contains(.l4) { f.l4 = layer4(e) }
        if parts.contains(.endpoints) {
            let (local, peer) = (c.localEndpoint(e), c.peerEndpoint(x.peerIP, identity: e.peerIdentity))
            f.source = x.egress ? local : peer
            f.destination = x.egress ? peer : local
        }
        if parts.contains(.interface), let ep = c.endpoints[e.endpointID] {
            var iface = Flow_NetworkInterface()
            iface.index = e.ifindex
            iface.name = ep.interfaceName
            f.interface = iface
        }
        if parts.contains(.uuid) { f.uuid = uuid() }
        if parts.contains(.attribution) {
            let policies = c.policies(x.policies, cookies: cookies)
            switch (x.allowed, x.egress) {
            case (true, true): f.egressAllowedBy = policies
            case (true, false): f.ingressAllowedBy = policies
            case (false, true): f.egressDeniedBy = policies
            case (false, false): f.ingressDeniedBy = policies
            }
            f.summary = summary(e)
        }
        return f
    }

    static func eventType(_ type: Int32, _ sub: Int32) -> Flow_CiliumEventType {
        var t = Flow_CiliumEventType()
        t.type = type
        t.subType = sub
        return t
    }

    static func ip(_ e: DatapathEvent) -> Flow_IP {
        var ip = Flow_IP()
        ip.source = e.source.description
        ip.destination = e.destination.description
        ip.ipVersion = e.source.isIPv4 ? .ipv4 : .ipv6
        return ip
    }

    static func layer4(_ e: DatapathEvent) -> Flow_Layer4 {
        var l4 = Flow_Layer4()
        switch e.proto {
        case 6:
            var t = Flow_TCP()
            t.sourcePort = UInt32(e.sourcePort); t.destinationPort = UInt32(e.destinationPort)
            t.flags = tcpFlags(e.tcpFlags)
            l4.protocol = .tcp(t)
        case 17:
            var u = Flow_UDP()
            u.sourcePort = UInt32(e.sourcePort); u.destinationPort = UInt32(e.destinationPort)
            l4.protocol = .udp(u)
        case 132:
            var s = Flow_SCTP()
            s.sourcePort = UInt32(e.sourcePort); s.destinationPort = UInt32(e.destinationPort)
            l4.protocol = .sctp(s)
        case 1:
            var i = Flow_ICMPv4()
            i.type = UInt32(e.destinationPort)   // the datapath carries the ICMP type in the port field
            l4.protocol = .icmpv4(i)
        case 58:
            var i = Flow_ICMPv6()
            i.type = UInt32(e.destinationPort)
            l4.protocol = .icmpv6(i)
        default:
            break
        }
        return l4
    }

    static func tcpFlags(_ b: UInt8) -> Flow_TCPFlags {
        var t = Flow_TCPFlags()
        t.fin = b & 0x01 != 0; t.syn = b & 0x02 != 0; t.rst = b & 0x04 != 0; t.psh = b & 0x08 != 0
        t.ack = b & 0x10 != 0; t.urg = b & 0x20 != 0; t.ece = b & 0x40 != 0; t.cwr = b & 0x80 != 0
        return t
    }

    /// `TCP Flags: SYN, ACK` (Hubble's order), `UDP`, `ICMPv4 EchoRequest`.
    static func summary(_ e: DatapathEvent) -> String {
        switch e.proto {
        case 6: return tcpSummaries[Int(e.tcpFlags)]
        case 17: return "UDP"
        case 132: return "SCTP"
        case 1: return "ICMPv4 " + (icmpv4Names[UInt8(truncatingIfNeeded: e.destinationPort)] ?? "Type\(e.destinationPort)")
        case 58: return "ICMPv6 " + (icmpv6Names[UInt8(truncatingIfNeeded: e.destinationPort)] ?? "Type\(e.destinationPort)")
        default: return "IP protocol \(e.proto)"
        }
    }

    /// The TCP summary of each flags byte, made once.
    static let tcpSummaries: [String] = (0..<256).map { flags in
        let names: [(Int, String)] = [(0x02, "SYN"), (0x10, "ACK"), (0x04, "RST"), (0x01, "FIN"), (0x08, "PSH"),
                                      (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR")]
        return "TCP Flags: " + names.filter { flags & $0.0 != 0 }.map(\.1).joined(separator: ", ")
    }

    static let icmpv4Names: [UInt8: String] = [0: "EchoReply", 3: "DestinationUnreachable", 5: "Redirect", 8: "EchoRequest",
                                                11: "TimeExceeded", 12: "ParameterProblem", 13: "TimestampRequest", 14: "TimestampReply"]
    static let icmpv6Names: [UInt8: String] = [1: "DestinationUnreachable", 2: "PacketTooBig", 3: "TimeExceeded", 4: "ParameterProblem",
                                                128: "EchoRequest", 129: "EchoReply", 133: "RouterSolicitation", 134: "RouterAdvertisement",
                                                135: "NeighborSolicitation", 136: "NeighborAdvertisement"]
}

/// Flow UUIDs: random per agent run, then sequential — unique like Hubble's, without a random draw per flow.
/// A batch reserves a range and derives each flow's UUID from its number, so every read of a stored flow
/// shows the same UUID.
struct FlowIDs {
    struct Number: Sendable { var high, low: UInt64 }
    private let high: UInt64 = .random(in: 0...UInt64.max)
    private var counter: UInt64 = .random(in: 0...UInt64.max)
    private static let hex = Array("0123456789abcdef".utf8)

    /// The first of `count` consecutive flow numbers.
    mutating func reserve(_ count: Int) -> Number {
        defer { counter &+= UInt64(count) }
        return Number(high: high, low: counter)
    }

    static func uuid(_ n: Number) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(36)
        writeUUID(n, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The 36 characters of the number's UUID (version 4 and variant bits set, as in a random UUID).
    static func writeUUID(_ n: Number, into bytes: inout [UInt8]) {
        let h = (n.high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000
        let l = (n.low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000
        var i = 0
        for value in [h, l] {
            for nibble in (0..<16).reversed() {
                if i == 8 || i == 12 || i == 16 || i == 20 { bytes.append(UInt8(ascii: "-")) }
                bytes.append(hex[Int(value >> UInt64(nibble * 4) & 0xf)])
                i += 1
            }
        }
    }
}
