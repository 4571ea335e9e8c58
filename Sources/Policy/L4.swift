import PolicyAPI

/// Traffic direction of a policy map entry, relative to the endpoint that enforces it.
public enum TrafficDirection: UInt8, Hashable, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case ingress = 0, egress = 1
    public var description: String { self == .ingress ? "Ingress" : "Egress" }
    public var upper: String { self == .ingress ? "INGRESS" : "EGRESS" }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// IANA protocol numbers the policy language can name.
public enum IPProtocol {
    public static let any: UInt8 = 0
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let icmpv6: UInt8 = 58
    public static let sctp: UInt8 = 132

    public static func name(_ p: UInt8) -> String {
        switch p {
        case any: "ANY"; case icmp: "ICMP"; case tcp: "TCP"; case udp: "UDP"; case icmpv6: "ICMPv6"; case sctp: "SCTP"
        default: String(p)
        }
    }

    public static func parse(_ s: String) -> UInt8? {
        switch s.uppercased() {
        case "ANY": any; case "ICMP": icmp; case "TCP": tcp; case "UDP": udp; case "ICMPV6": icmpv6; case "SCTP": sctp
        default: UInt8(s)
        }
    }
}

/// The L4 part of a policy map key: a prefix over the 24 bits `protocol(8) | port(16)`.
///
/// Length 0 matches every protocol and port (an L3-only rule), 8 matches every port of one protocol,
/// 24 one port; lengths in between are port ranges split into aligned power-of-two blocks, exactly as
/// the datapath's LPM trie sees them. ICMP rules use the ICMP type as the port.
public struct L4Prefix: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let proto: UInt8
    public let port: UInt16
    /// 0…24.
    public let length: UInt8

    public init(proto: UInt8, port: UInt16, length: UInt8) {
        precondition(length <= 24)
        if length == 0 { self.proto = 0; self.port = 0; self.length = 0; return }
        self.proto = proto
        let portBits = Int(length) - 8
        self.port = portBits <= 0 ? 0 : (portBits >= 16 ? port : port & ~(UInt16.max >> UInt16(portBits)))
        self.length = length
    }

    public static let all = L4Prefix(proto: 0, port: 0, length: 0)
    public static func proto(_ p: UInt8) -> L4Prefix { L4Prefix(proto: p, port: 0, length: 8) }
    public static func port(_ p: UInt8, _ port: UInt16) -> L4Prefix { L4Prefix(proto: p, port: port, length: 24) }

    var bits: UInt32 { UInt32(proto) << 16 | UInt32(port) }

    /// True when every packet in `other` is also in `self`.
    public func contains(_ other: L4Prefix) -> Bool {
        guard other.length >= length else { return false }
        if length == 0 { return true }
        let shift = 24 - UInt32(length)
        return bits >> shift == other.bits >> shift
    }

    /// True for a concrete (protocol, port).
    @inlinable public func matches(proto p: UInt8, port q: UInt16) -> Bool {
        contains(L4Prefix(proto: p, port: q, length: 24))
    }

    /// The port range this prefix covers (for display).
    public var portRange: ClosedRange<UInt16>? {
        guard length >= 8 else { return nil }
        let portBits = Int(length) - 8
        if portBits == 0 { return nil }
        let span = portBits >= 16 ? 0 : (UInt16.max >> UInt16(portBits))
        return port...(port | span)
    }

    public var description: String {
        if length == 0 { return "ANY" }
        let p = IPProtocol.name(proto)
        guard let r = portRange else { return "ANY/\(p)" }
        return r.lowerBound == r.upperBound ? "\(r.lowerBound)/\(p)" : "\(r.lowerBound)-\(r.upperBound)/\(p)"
    }

    public static func < (a: L4Prefix, b: L4Prefix) -> Bool { (a.bits, a.length) < (b.bits, b.length) }

    /// Splits `first...last` into the fewest aligned prefixes (at most 2 × 16 − 2), as Cilium does for ranges.
    public static func range(proto: UInt8, _ first: UInt16, _ last: UInt16) -> [L4Prefix] {
        if first == 0 && last == UInt16.max { return [.proto(proto)] }
        var out: [L4Prefix] = []
        var start = UInt32(first)
        let end = UInt32(last)
        while start <= end {
            // Largest block aligned at `start` that fits in the range.
            var size: UInt32 = 1
            while size < 65536 && start % (size * 2) == 0 && start + size * 2 - 1 <= end { size *= 2 }
            let bitsUsed = UInt8(truncatingIfNeeded: size.trailingZeroBitCount)
            out.append(L4Prefix(proto: proto, port: UInt16(start), length: 24 - bitsUsed))
            start += size
        }
        return out
    }
}
