/// An IPv4 or IPv6 address held as 128 bits, IPv4 in the low 32 bits.
///
/// Value type so that the ipcache, CIDR selectors and the trace input all
/// compare addresses the same way, without Foundation's string round trips.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var isIPv4: Bool
    public var high: UInt64
    public var low: UInt64

    public init(ipv4 value: UInt32) {
        isIPv4 = true; high = 0; low = UInt64(value)
    }

    public init(ipv6 high: UInt64, _ low: UInt64) {
        isIPv4 = false; self.high = high; self.low = low
    }

    /// The width of the address family in bits (32 or 128).
    public var bitWidth: Int { isIPv4 ? 32 : 128 }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` compression and an embedded IPv4 tail).
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        if s.contains(":") {
            guard let v = IPAddress.parseIPv6(s) else { return nil }
            self = v
        } else {
            guard let v = IPAddress.parseIPv4(s) else { return nil }
            self.init(ipv4: v)
        }
    }

    static func parseIPv4(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let n = UInt32(p), n <= 255 else { return nil }
            if p.count > 1 && p.first == "0" { return nil } // no octal-looking octets
            value = value << 8 | n
        }
        return value
    }

    static func splitOnDoubleColon(_ s: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var chars = Array(s)[...]
        while let c = chars.first {
            if c == ":" && chars.dropFirst().first == ":" {
                parts.append(current); current = ""; chars = chars.dropFirst(2)
            } else { current.append(c); chars = chars.dropFirst() }
        }
        parts.append(current)
        return parts
    }

    static func parseIPv6(_ s: String) -> IPAddress? {
        var groups: [UInt16] = []
        var tailV4: UInt32?
        let halves = IPAddress.splitOnDoubleColon(s)
        guard halves.count <= 2 else { return nil }
        func parseGroups(_ part: String, allowV4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, item) in items.enumerated() {
                if allowV4Tail && i == items.count - 1 && item.contains(".") {
                    guard let v4 = parseIPv4(String(item)) else { return nil }
                    tailV4 = v4
                    out.append(UInt16(v4 >> 16)); out.append(UInt16(v4 & 0xffff))
                    continue
                }
                guard !item.isEmpty, item.count <= 4, let g = UInt16(item, radix: 16) else { return nil }
                out.append(g)
            }
            return out
        }
        if halves.count == 2 {
            guard let a = parseGroups(halves[0], allowV4Tail: false),
                  let b = parseGroups(halves[1], allowV4Tail: true), a.count + b.count <= 7 else { return nil }
            groups = a + Array(repeating: 0, count: 8 - a.count - b.count) + b
        } else {
            guard let a = parseGroups(halves[0], allowV4Tail: true), a.count == 8 else { return nil }
            groups = a
        }
        _ = tailV4
        var hi: UInt64 = 0, lo: UInt64 = 0
        for i in 0..<4 { hi = hi << 16 | UInt64(groups[i]) }
        for i in 4..<8 { lo = lo << 16 | UInt64(groups[i]) }
        return IPAddress(ipv6: hi, lo)
    }

    public var description: String {
        if isIPv4 {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
        }
        var groups: [UInt16] = []
        for i in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: high >> UInt64(i))) }
        for i in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: low >> UInt64(i))) }
        // Longest run of zero groups (length ≥ 2) is compressed, as RFC 5952 says.
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLen { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        let hex = groups.map { String($0, radix: 16) }
        if bestLen < 2 { return hex.joined(separator: ":") }
        let left = hex[0..<bestStart].joined(separator: ":")
        let right = hex[(bestStart + bestLen)...].joined(separator: ":")
        return left + "::" + right
    }

    /// Bit `index` counted from the most significant bit of the family's width.
    @inlinable public func bit(_ index: Int) -> Bool {
        let offset = (isIPv4 ? 96 : 0) + index
        if offset < 64 { return (high >> UInt64(63 - offset)) & 1 == 1 }
        return (low >> UInt64(127 - offset)) & 1 == 1
    }

    /// The address with every bit after the first `length` bits cleared.
    public func masked(to length: Int) -> IPAddress {
        let total = isIPv4 ? 96 + length : length
        var r = self
        if total >= 128 { return r }
        if total <= 0 { r.high = 0; r.low = 0; return r }
        if total <= 64 {
            r.high = total == 64 ? high : high & ~(UInt64.max >> UInt64(total))
            r.low = 0
        } else {
            let l = total - 64
            r.low = low & ~(UInt64.max >> UInt64(l))
        }
        return r
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        if a.isIPv4 != b.isIPv4 { return a.isIPv4 }
        return (a.high, a.low) < (b.high, b.low)
    }
}

/// An IP prefix (`10.0.0.0/8`, `2001:db8::/32`) in canonical, masked form.
public struct IPPrefix: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init(address: IPAddress, length: Int) {
        precondition(length >= 0 && length <= address.bitWidth)
        self.address = address.masked(to: length)
        self.length = length
    }

    /// Parses `ADDR/LEN`. With `strict`, host bits must be zero (Cilium accepts them; we report them
    /// through `hostBitsSet`). A bare address is a host prefix (/32 or /128).
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        if let slash = s.firstIndex(of: "/") {
            guard let addr = IPAddress(s[s.startIndex..<slash]) else { return nil }
            let lenText = s[s.index(after: slash)...]
            guard !lenText.isEmpty, lenText.allSatisfy({ $0.isASCII && $0.isNumber }), lenText.count <= 3,
                  let len = Int(lenText), len <= addr.bitWidth else { return nil }
            self.init(address: addr, length: len)
        } else {
            guard let addr = IPAddress(s) else { return nil }
            self.init(address: addr, length: addr.bitWidth)
        }
    }

    public var isIPv4: Bool { address.isIPv4 }

    public func contains(_ ip: IPAddress) -> Bool {
        ip.isIPv4 == address.isIPv4 && ip.masked(to: length) == address
    }

    /// True when `other` lies entirely inside this prefix (equal prefixes contain each other).
    public func contains(_ other: IPPrefix) -> Bool {
        other.isIPv4 == isIPv4 && other.length >= length && contains(other.address)
    }

    public var description: String { "\(address)/\(length)" }

    public static func < (a: IPPrefix, b: IPPrefix) -> Bool {
        if a.address != b.address { return a.address < b.address }
        return a.length < b.length
    }
}
