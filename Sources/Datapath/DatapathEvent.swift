import Foundation
import Policy
import PolicyAPI

/// One record of the `events` ring buffer (`struct event` in bpf/membrane.h), decoded: what the datapath
/// decided about one packet. The agent turns these into flows.
public struct DatapathEvent: Sendable, Hashable {
    /// `EVENT_POLICY_VERDICT` or `EVENT_DROP`.
    public enum Kind: UInt8, Sendable { case policyVerdict = 1, drop = 2 }
    /// `VERDICT_*`.
    public enum Verdict: UInt8, Sendable { case forwarded = 0, dropped = 1, audit = 2, reply = 3 }

    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns); add `monotonicToWallOffset()` for the wall clock.
    public var monotonicNs: UInt64
    public var kind: Kind
    public var verdict: Verdict
    /// A Cilium drop reason (133, 181, …), or 0; for AUDIT the reason the packet would have been dropped.
    public var dropReason: UInt16
    public var endpointID: UInt16
    public var localIdentity: NumericIdentity
    public var peerIdentity: NumericIdentity
    /// The local endpoint's direction: ingress (to the endpoint) or egress (from it).
    public var direction: TrafficDirection
    public var proto: UInt8
    public var tcpFlags: UInt8
    /// The L4 prefix length of the policy entry that matched (0…24), nil when none matched.
    public var l4PrefixLength: UInt8?
    /// Whether the matched entry names the peer's identity (false: the any-peer entry matched).
    public var matchedPeer: Bool
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var source: IPAddress
    public var destination: IPAddress
    /// The policy entry's attribution cookie (see `BPFDatapath.origins(cookie:)`), 0 when none matched.
    public var cookie: UInt32
    public var ifindex: UInt32

    /// sizeof(struct event).
    public static let size = 72
    /// `l4_prefixlen` flag: the matched entry is the any-peer (wildcard) one.
    static let wildcardPeerFlag: UInt8 = 0x40

    /// An event as the datapath would report it (tests, benchmarks).
    public init(monotonicNs: UInt64, kind: Kind, verdict: Verdict, dropReason: UInt16 = 0, endpointID: UInt16,
                localIdentity: NumericIdentity, peerIdentity: NumericIdentity, direction: TrafficDirection, proto: UInt8,
                tcpFlags: UInt8 = 0, l4PrefixLength: UInt8? = nil, matchedPeer: Bool = false, sourcePort: UInt16 = 0,
                destinationPort: UInt16 = 0, source: IPAddress, destination: IPAddress, cookie: UInt32 = 0, ifindex: UInt32 = 0) {
        self.monotonicNs = monotonicNs; self.kind = kind; self.verdict = verdict; self.dropReason = dropReason
        self.endpointID = endpointID; self.localIdentity = localIdentity; self.peerIdentity = peerIdentity
        self.direction = direction; self.proto = proto; self.tcpFlags = tcpFlags; self.l4PrefixLength = l4PrefixLength
        self.matchedPeer = matchedPeer; self.sourcePort = sourcePort; self.destinationPort = destinationPort
        self.source = source; self.destination = destination; self.cookie = cookie; self.ifindex = ifindex
    }

    /// Decodes one record; nil when it is too short (a layout mismatch is not guessed around).
    public init?(bytes p: UnsafeRawBufferPointer) {
        guard p.count >= DatapathEvent.size,
              let kind = Kind(rawValue: p[8]), let verdict = Verdict(rawValue: p[9]),
              let direction = TrafficDirection(rawValue: p[24]) else { return nil }
        func u16(_ o: Int) -> UInt16 { UInt16(p[o]) | UInt16(p[o + 1]) << 8 }
        func be16(_ o: Int) -> UInt16 { UInt16(p[o]) << 8 | UInt16(p[o + 1]) }
        func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
        func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }
        monotonicNs = u64(0)
        self.kind = kind
        self.verdict = verdict
        dropReason = u16(10)
        endpointID = UInt16(truncatingIfNeeded: u32(12))
        localIdentity = u32(16)
        peerIdentity = u32(20)
        self.direction = direction
        proto = p[25]
        tcpFlags = p[26]
        let prefix = p[27]
        l4PrefixLength = prefix == 255 ? nil : prefix & ~DatapathEvent.wildcardPeerFlag
        matchedPeer = prefix != 255 && prefix & DatapathEvent.wildcardPeerFlag == 0
        sourcePort = be16(28)
        destinationPort = be16(30)
        source = DatapathEvent.address(p, 32)
        destination = DatapathEvent.address(p, 48)
        cookie = u32(64)
        ifindex = u32(68)
    }

    /// The inverse of `MapLayouts.address16`: ::ffff:a.b.c.d is IPv4.
    static func address(_ p: UnsafeRawBufferPointer, _ o: Int) -> IPAddress {
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<8 { high = high << 8 | UInt64(p[o + i]) }
        for i in 8..<16 { low = low << 8 | UInt64(p[o + i]) }
        if high == 0, low >> 32 == 0xffff { return IPAddress(ipv4: UInt32(truncatingIfNeeded: low)) }
        return IPAddress(ipv6: high, low)
    }

    /// CLOCK_REALTIME - CLOCK_MONOTONIC, in nanoseconds, read once by the consumer (a later wall-clock step
    /// shifts flow times, as it does in Cilium).
    public static func monotonicToWallOffset() -> Int64 {
        var mono = timespec(), real = timespec()
        clock_gettime(CLOCK_MONOTONIC, &mono)
        clock_gettime(CLOCK_REALTIME, &real)
        return (Int64(real.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(mono.tv_nsec)
    }
}
