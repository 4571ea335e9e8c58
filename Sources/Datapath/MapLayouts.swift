import Policy
import PolicyAPI

/// Encoders for the maps of bpf/membrane.h other than the policy maps (whose key and value are
/// `PolicyMapKey.encoded` and `PolicyEntry.encoded(for:cookie:)` in the Policy module).
public enum MapLayouts {
    /// `struct ipcache_key`: u32 prefixlen (host order) | u8 addr[16]; IPv4 as ::ffff:a.b.c.d, prefixlen 96 + len.
    public static func ipcacheKey(_ prefix: IPPrefix) -> [UInt8] {
        let length = UInt32(prefix.isIPv4 ? 96 + prefix.length : prefix.length)
        return le32(length) + address16(prefix.address)
    }

    /// `struct ipcache_value`: u32 identity | u32 flags.
    public static func ipcacheValue(identity: NumericIdentity) -> [UInt8] { le32(identity) + le32(0) }

    public static func address16(_ a: IPAddress) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        if a.isIPv4 {
            out[10] = 0xff; out[11] = 0xff
            let v = UInt32(truncatingIfNeeded: a.low)
            out[12] = UInt8(v >> 24); out[13] = UInt8(v >> 16 & 0xff); out[14] = UInt8(v >> 8 & 0xff); out[15] = UInt8(v & 0xff)
        } else {
            for i in 0..<8 { out[i] = UInt8(truncatingIfNeeded: a.high >> UInt64(56 - 8 * i)) }
            for i in 0..<8 { out[8 + i] = UInt8(truncatingIfNeeded: a.low >> UInt64(56 - 8 * i)) }
        }
        return out
    }

    public static let endpointFlagAudit: UInt32 = 1

    /// `endpoints` key (u32 ifindex) and `struct endpoint_info` value: u32 endpoint id | u32 identity |
    /// u32 flags | u32 policy revision.
    public static func endpointKey(ifindex: Int32) -> [UInt8] { le32(UInt32(bitPattern: ifindex)) }
    public static func endpointValue(id: UInt16, identity: NumericIdentity, audit: Bool, policyRevision: UInt32 = 0) -> [UInt8] {
        le32(UInt32(id)) + le32(identity) + le32(audit ? endpointFlagAudit : 0) + le32(policyRevision)
    }

    /// `revisions` slots (`REVISION_IPCACHE`, `REVISION_COUNTER`).
    public static let revisionIPCache: UInt32 = 0
    public static let revisionCounter: UInt32 = 1

    public static let directionIngress: UInt8 = 0
    public static let directionEgress: UInt8 = 1
    public static let ctFlagClosing: UInt8 = 1
    public static let ctFlagAudit: UInt8 = 2
    public static let ctLifetimeClosing: UInt32 = 10

    /// `struct ct_key` (conntrack_v2): u8 local[16] | u8 remote[16] | be16 local port | be16 remote port |
    /// u8 protocol | u8 pad[3] | u32 endpoint id. Addresses as in `address16`, ports as on the wire.
    public static func conntrackKey(local: [UInt8], remote: [UInt8], localPort: [UInt8], remotePort: [UInt8],
                                    protocol: UInt8, endpoint: UInt32) -> [UInt8] {
        precondition(local.count == 16 && remote.count == 16 && localPort.count == 2 && remotePort.count == 2)
        return local + remote + localPort + remotePort + [`protocol`, 0, 0, 0] + le32(endpoint)
    }

    public static func conntrackKey(local: IPAddress, localPort: UInt16, remote: IPAddress, remotePort: UInt16,
                                    protocol: UInt8, endpoint: UInt16) -> [UInt8] {
        conntrackKey(local: address16(local), remote: address16(remote), localPort: be16(localPort), remotePort: be16(remotePort),
                     protocol: `protocol`, endpoint: UInt32(endpoint))
    }

    /// `struct ct_value`: u64 last seen (ns, coarse monotonic) | u32 lifetime (s) | u32 policy revision |
    /// u32 ipcache revision | u8 direction | u8 flags | u16 pad.
    public static func conntrackValue(lastSeen: [UInt8], lifetime: UInt32, policyRevision: UInt32, ipcacheRevision: UInt32,
                                      direction: UInt8, flags: UInt8) -> [UInt8] {
        precondition(lastSeen.count == 8)
        return lastSeen + le32(lifetime) + le32(policyRevision) + le32(ipcacheRevision) + [direction, flags, 0, 0]
    }

    /// A decoded `struct ct_value`.
    public struct ConntrackValue: Equatable, Sendable {
        public var lastSeenNs: UInt64, lifetime: UInt32, policyRevision: UInt32, ipcacheRevision: UInt32
        public var direction: UInt8, flags: UInt8
        public init?(_ b: [UInt8]) {
            guard b.count == 24 else { return nil }
            lastSeenNs = UInt64(MapLayouts.readLE32(b, at: 0)) | UInt64(MapLayouts.readLE32(b, at: 4)) << 32
            lifetime = MapLayouts.readLE32(b, at: 8)
            policyRevision = MapLayouts.readLE32(b, at: 12)
            ipcacheRevision = MapLayouts.readLE32(b, at: 16)
            direction = b[20]; flags = b[21]
        }
    }

    /// `policy_maps` key: the endpoint ID.
    public static func endpointID(_ id: UInt16) -> [UInt8] { le32(UInt32(id)) }

    /// `counters` slot: direction * 256 + reason (0 forwarded, 1 reply, 2 audit, else a drop reason).
    public static func counterSlot(direction: TrafficDirection, reason: UInt8) -> [UInt8] {
        le32(UInt32(direction.rawValue) * 256 + UInt32(reason))
    }

    public static func le32(_ v: UInt32) -> [UInt8] {
        [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)]
    }

    public static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }

    public static func readLE32(_ b: [UInt8], at i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
}

/// Drop reasons and counter slots, with Cilium's numbers.
public enum DropReason: UInt8, Sendable, CaseIterable {
    case policyDenied = 133
    case unknownSender = 172
    case proxyUnavailable = 180
    case policyDeny = 181

    public var name: String {
        switch self {
        case .policyDenied: "POLICY_DENIED"; case .unknownSender: "UNKNOWN_SENDER"
        case .proxyUnavailable: "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL"; case .policyDeny: "POLICY_DENY"
        }
    }
}
