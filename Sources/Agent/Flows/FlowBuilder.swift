import Datapath
import Foundation
import HubbleAPI
import Policy
import PolicyAPI
import SwiftProtobuf

/// Turns datapath events into Hubble flows, filled the way Cilium's parser fills them (reference §6):
/// a policy decision becomes a policy-verdict flow (event type 5) and, when the packet was dropped, also a
/// drop flow (event type 1, sub-type = reason), both naming the policies that decided. A default-deny drop
/// names the policies that put the endpoint into default deny for that direction.
struct FlowBuilder {
    let wallClockOffsetNs: Int64
    private var uuids = UUIDSequence()

    init(wallClockOffsetNs: Int64 = DatapathEvent.monotonicToWallOffset()) {
        self.wallClockOffsetNs = wallClockOffsetNs
    }

    mutating func flows(_ e: DatapathEvent, context c: FlowContext, cookies: [[OriginID]], into out: inout [Flow_Flow]) {
        var f = Flow_Flow()
        let ns = Int64(bitPattern: e.monotonicNs) &+ wallClockOffsetNs
        f.time = Google_Protobuf_Timestamp(seconds: ns / 1_000_000_000, nanos: Int32(ns % 1_000_000_000))
        f.nodeName = c.nodeName
        f.type = .l3L4
        f.ip = FlowBuilder.ip(e)
        f.l4 = FlowBuilder.layer4(e)
        f.summary = FlowBuilder.summary(e)

        let egress = e.direction == .egress
        let known = c.endpoints[e.endpointID]
        var local = known?.endpoint ?? Flow_Endpoint()
        if known == nil {
            local.id = UInt32(e.endpointID)
            local.identity = e.localIdentity
        }
        let peerIP = egress ? e.destination : e.source
        var peer: Flow_Endpoint
        if let id = c.endpointsByIP[peerIP], let ep = c.endpoints[id] {
            peer = ep.endpoint
        } else {
            peer = Flow_Endpoint()
            peer.identity = e.peerIdentity
            peer.labels = c.identityLabels[e.peerIdentity] ?? []
        }
        f.source = egress ? local : peer
        f.destination = egress ? peer : local
        f.trafficDirection = egress ? .egress : .ingress
        if let ep = known {
            var iface = Flow_NetworkInterface()
            iface.index = e.ifindex
            iface.name = ep.interfaceName
            f.interface = iface
        }

        // Attribution: the entry's policies; for a default deny, the policies that selected the endpoint.
        let decided = Int(e.cookie) < cookies.count ? c.policies(cookies[Int(e.cookie)]) : []
        let reason = UInt32(e.dropReason)
        let allowed = e.verdict == .forwarded
        if allowed {
            if egress { f.egressAllowedBy = decided } else { f.ingressAllowedBy = decided }
        } else if reason != 0 {
            let denied = reason == 133 ? c.policies(c.defaultDenyBy[e.endpointID]?[e.direction] ?? []) : decided
            if egress { f.egressDeniedBy = denied } else { f.ingressDeniedBy = denied }
        }
        f.policyMatchType = FlowBuilder.matchType(e)

        switch e.verdict {
        case .forwarded: f.verdict = .forwarded
        case .audit: f.verdict = .audit
        case .dropped, .reply: f.verdict = .dropped
        }
        if e.verdict == .dropped, reason != 0 {
            f.dropReason = reason
            f.dropReasonDesc = Flow_DropReason(rawValue: Int(reason)) ?? .unknown
        }
        if allowed { f.isReply = Google_Protobuf_BoolValue(false) }

        let isPolicyDecision: Bool
        switch reason {
        case 133, 180, 181: isPolicyDecision = true     // default deny, L7 redirect without a proxy, explicit deny
        default: isPolicyDecision = e.kind == .policyVerdict
        }
        if isPolicyDecision {
            var v = f
            v.eventType = FlowBuilder.eventType(5, 0)
            v.uuid = uuids.next()
            out.append(v)
        }
        if e.verdict == .dropped {
            var d = f
            d.eventType = FlowBuilder.eventType(1, Int32(reason))
            d.policyMatchType = 0
            d.uuid = uuids.next()
            out.append(d)
        }
    }

    static func eventType(_ type: Int32, _ sub: Int32) -> Flow_CiliumEventType {
        var t = Flow_CiliumEventType()
        t.type = type
        t.subType = sub
        return t
    }

    /// Hubble's policy_match_type from the matched entry: peer-specific or any peer, by its L4 prefix
    /// (0 = any protocol, 8 = a protocol, more = ports).
    static func matchType(_ e: DatapathEvent) -> UInt32 {
        guard let prefix = e.l4PrefixLength else { return 0 }
        switch (e.matchedPeer, prefix) {
        case (true, 0): return 1        // L3-Only
        case (true, 8): return 5        // L3-Proto
        case (true, _): return 2        // L3-L4
        case (false, 0): return 4       // all
        case (false, 8): return 6       // Proto-Only
        case (false, _): return 3       // L4-Only
        }
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
        case 6:
            let names: [(UInt8, String)] = [(0x02, "SYN"), (0x10, "ACK"), (0x04, "RST"), (0x01, "FIN"), (0x08, "PSH"),
                                            (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR")]
            return "TCP Flags: " + names.filter { e.tcpFlags & $0.0 != 0 }.map(\.1).joined(separator: ", ")
        case 17: return "UDP"
        case 132: return "SCTP"
        case 1: return "ICMPv4 " + (icmpv4Names[UInt8(truncatingIfNeeded: e.destinationPort)] ?? "Type\(e.destinationPort)")
        case 58: return "ICMPv6 " + (icmpv6Names[UInt8(truncatingIfNeeded: e.destinationPort)] ?? "Type\(e.destinationPort)")
        default: return "IP protocol \(e.proto)"
        }
    }

    static let icmpv4Names: [UInt8: String] = [0: "EchoReply", 3: "DestinationUnreachable", 5: "Redirect", 8: "EchoRequest",
                                                11: "TimeExceeded", 12: "ParameterProblem", 13: "TimestampRequest", 14: "TimestampReply"]
    static let icmpv6Names: [UInt8: String] = [1: "DestinationUnreachable", 2: "PacketTooBig", 3: "TimeExceeded", 4: "ParameterProblem",
                                                128: "EchoRequest", 129: "EchoReply", 133: "RouterSolicitation", 134: "RouterAdvertisement",
                                                135: "NeighborSolicitation", 136: "NeighborAdvertisement"]
}

/// Flow UUIDs: random per agent run, then sequential — unique like Hubble's, without a random draw per flow.
struct UUIDSequence {
    private let high: UInt64 = .random(in: 0...UInt64.max)
    private var counter: UInt64 = .random(in: 0...UInt64.max)
    private static let hex = Array("0123456789abcdef".utf8)

    mutating func next() -> String {
        counter &+= 1
        // Version 4 and variant bits set, as in a random UUID.
        let h = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000
        let l = (counter & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000
        var bytes = [UInt8](repeating: UInt8(ascii: "-"), count: 36)
        var i = 0
        for value in [h, l] {
            for nibble in (0..<16).reversed() {
                if i == 8 || i == 13 || i == 18 || i == 23 { i += 1 }
                bytes[i] = UUIDSequence.hex[Int(value >> UInt64(nibble * 4) & 0xf)]
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
