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

    /// `endpoints` key (u32 ifindex) and `struct endpoint_info` value.
    public static func endpointKey(ifindex: Int32) -> [UInt8] { le32(UInt32(bitPattern: ifindex)) }
    public static func endpointValue(id: UInt16, identity: NumericIdentity, audit: Bool) -> [UInt8] {
        le32(UInt32(id)) + le32(identity) + le32(audit ? endpointFlagAudit : 0) + le32(0)
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
