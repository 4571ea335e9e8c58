import Datapath
import HubbleAPI
import Policy
import PolicyAPI
import SwiftProtobuf

/// Writes an event's flow as a serialized `observer.GetFlowsResponse`, without building the message.
///
/// Produces the same bytes as SwiftProtobuf serializing `FlowBuilder`'s flow (fields in field-number order,
/// proto3 defaults left out, set sub-messages written even when empty); the endpoints and policies, which
/// repeat across flows, come serialized from the context snapshot's cache. This is what lets GetFlows send
/// a stored event faster than building and serializing its `Flow` would (`membrane-bench observe`).
enum FlowEncoder {
    static func response(_ x: EventFlow, snapshot: FlowContextSnapshot, cookies: [[OriginID]], uuid: FlowIDs.Number,
                         nodeName fallback: String) -> [UInt8] {
        let c = snapshot.context
        let e = x.event
        var f = ProtoWriter()
        f.bytes.reserveCapacity(512)
        f.message(1) { $0.timestamp(x.timeNs) }
        f.uint(2, UInt64(x.verdict.rawValue))
        f.uint(3, UInt64(x.dropReason))
        f.message(5) { ip in
            if e.source.isIPv4 && e.destination.isIPv4 {
                ip.ipv4(1, UInt32(truncatingIfNeeded: e.source.low))
                ip.ipv4(2, UInt32(truncatingIfNeeded: e.destination.low))
            } else {
                ip.string(1, e.source.description)
                ip.string(2, e.destination.description)
            }
            ip.uint(3, UInt64(e.source.isIPv4 ? Flow_IPVersion.ipv4.rawValue : Flow_IPVersion.ipv6.rawValue))
        }
        f.message(6) { layer4(&$0, e) }
        let local = localEndpoint(e, snapshot)
        let peer = peerEndpoint(x, snapshot)
        f.lengthDelimited(8, x.egress ? local : peer)
        f.lengthDelimited(9, x.egress ? peer : local)
        f.uint(10, UInt64(Flow_FlowType.l3L4.rawValue))
        f.string(11, c.nodeName)
        f.message(19) { t in
            t.int32(1, x.eventType.type)
            t.int32(2, x.eventType.subType)
        }
        f.uint(22, UInt64((x.egress ? Flow_TrafficDirection.egress : .ingress).rawValue))
        f.uint(23, UInt64(x.policyMatchType))
        if x.dropReason != 0 { f.uint(25, UInt64((Flow_DropReason(rawValue: Int(x.dropReason)) ?? .unknown).rawValue)) }
        if x.allowed { f.message(26) { _ in } }            // BoolValue(false): present, empty
        if let ep = c.endpoints[e.endpointID] {
            f.message(28) { i in
                i.uint(1, UInt64(e.ifindex))
                i.string(2, ep.interfaceName)
            }
        }
        f.message(34) { FlowIDs.writeUUID(uuid, into: &$0.bytes) }
        let field = x.allowed ? (x.egress ? 21001 : 21002) : (x.egress ? 21004 : 21005)
        f.bytes += policies(x.policies, field: field, snapshot, cookies)
        f.string(100000, FlowBuilder.summary(e))

        var r = ProtoWriter()
        r.bytes.reserveCapacity(f.bytes.count + 64)
        r.lengthDelimited(1, f.bytes)
        r.string(1000, c.nodeName.isEmpty ? fallback : c.nodeName)
        r.message(1001) { $0.timestamp(x.timeNs) }
        return r.bytes
    }

    private static func layer4(_ w: inout ProtoWriter, _ e: DatapathEvent) {
        switch e.proto {
        case 6:
            w.message(1) { t in
                t.uint(1, UInt64(e.sourcePort)); t.uint(2, UInt64(e.destinationPort))
                t.message(3) { flags in
                    // TCPFlags fields 1…8: FIN SYN RST PSH ACK URG ECE CWR, i.e. the header's bits in order.
                    for bit in 0..<8 where e.tcpFlags & (1 << bit) != 0 { flags.uint(bit + 1, 1) }
                }
            }
        case 17, 132:
            w.message(e.proto == 17 ? 2 : 5) { u in u.uint(1, UInt64(e.sourcePort)); u.uint(2, UInt64(e.destinationPort)) }
        case 1, 58:
            // The datapath carries the ICMP type in the port field.
            w.message(e.proto == 1 ? 3 : 4) { i in i.uint(1, UInt64(e.destinationPort)) }
        default:
            break
        }
    }

    private static func localEndpoint(_ e: DatapathEvent, _ s: FlowContextSnapshot) -> [UInt8] {
        s.fragment(.local(e.endpointID), cacheable: s.context.endpoints[e.endpointID] != nil) {
            serialized(s.context.localEndpoint(e))
        }
    }

    private static func peerEndpoint(_ x: EventFlow, _ s: FlowContextSnapshot) -> [UInt8] {
        let key: FlowContextSnapshot.Fragment
        if let id = s.context.endpointsByIP[x.peerIP], s.context.endpoints[id] != nil { key = .local(id) } else { key = .peerIdentity(x.event.peerIdentity) }
        return s.fragment(key) { serialized(s.context.peerEndpoint(x.peerIP, identity: x.event.peerIdentity)) }
    }

    /// The repeated Policy field, each element tagged with `field`.
    private static func policies(_ source: EventFlow.Policies, field: Int, _ s: FlowContextSnapshot, _ cookies: [[OriginID]]) -> [UInt8] {
        let key: FlowContextSnapshot.Fragment, cacheable: Bool
        switch source {
        case .none: return []
        case .cookie(let c): (key, cacheable) = (.cookie(c, field: field), Int(c) < cookies.count)
        case .defaultDeny(let id, let d): (key, cacheable) = (.defaultDeny(id, d, field: field), true)
        }
        return s.fragment(key, cacheable: cacheable) {
            var w = ProtoWriter()
            for p in s.context.policies(source, cookies: cookies) { w.lengthDelimited(field, serialized(p)) }
            return w.bytes
        }
    }

    private static func serialized(_ m: some SwiftProtobuf.Message) -> [UInt8] {
        // Serializing a message this module built cannot fail (no required fields, no Any).
        (try? m.serializedBytes()) ?? []
    }
}

/// The protobuf wire format, as far as flows need it.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// A varint field (uint32/uint64/enum/bool), left out when 0 as proto3 does.
    mutating func uint(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, 0); varint(value)
    }

    mutating func int32(_ field: Int, _ value: Int32) { uint(field, UInt64(bitPattern: Int64(value))) }

    mutating func string(_ field: Int, _ value: String) {
        guard !value.isEmpty else { return }
        var s = value
        s.withUTF8 { lengthDelimited(field, $0) }
    }

    mutating func lengthDelimited(_ field: Int, _ body: [UInt8]) {
        tag(field, 2); varint(UInt64(body.count)); bytes.append(contentsOf: body)
    }

    mutating func lengthDelimited(_ field: Int, _ body: UnsafeBufferPointer<UInt8>) {
        tag(field, 2); varint(UInt64(body.count)); bytes.append(contentsOf: body)
    }

    /// A sub-message, written even when its body is empty (it is set). The body is written in place after a
    /// one-byte length, which is widened afterwards in the rare case the body is 128 bytes or more.
    mutating func message(_ field: Int, _ body: (inout ProtoWriter) -> Void) {
        tag(field, 2)
        let at = bytes.count
        bytes.append(0)
        body(&self)
        let length = bytes.count - at - 1
        if length < 0x80 {
            bytes[at] = UInt8(length)
        } else {
            var prefix = ProtoWriter()
            prefix.varint(UInt64(length))
            bytes.replaceSubrange(at...at, with: prefix.bytes)
        }
    }

    /// An IPv4 address in dotted form, written without making a String.
    mutating func ipv4(_ field: Int, _ a: UInt32) {
        message(field) { w in
            for shift in stride(from: 24, through: 0, by: -8) {
                let octet = UInt8(truncatingIfNeeded: a >> UInt32(shift))
                if octet >= 100 { w.bytes.append(0x30 + octet / 100) }
                if octet >= 10 { w.bytes.append(0x30 + octet / 10 % 10) }
                w.bytes.append(0x30 + octet % 10)
                if shift > 0 { w.bytes.append(UInt8(ascii: ".")) }
            }
        }
    }

    /// google.protobuf.Timestamp from nanoseconds since the epoch.
    mutating func timestamp(_ ns: Int64) {
        let seconds = ns / 1_000_000_000, nanos = Int32(ns % 1_000_000_000)
        uint(1, UInt64(bitPattern: seconds))
        int32(2, nanos)
    }
}
