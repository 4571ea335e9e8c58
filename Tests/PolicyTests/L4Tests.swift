import MembraneTestSupport
import Testing
@testable import Policy
import PolicyAPI

@Suite struct L4Tests {
    static let T = IPProtocol.tcp

    @Test func rangeDecomposition8000to9000() {
        let r = L4Prefix.range(proto: Self.T, 8000, 9000)
        // 8000-8063, 8064-8191, 8192-8703, 8704-8959, 8960-8991, 8992-8999, 9000
        #expect(r.compactMap(\.portRange) == [8000...8063, 8064...8191, 8192...8703, 8704...8959, 8960...8991, 8992...8999, 9000...9000])
        #expect(r.map(\.length) == [18, 17, 15, 16, 19, 21, 24])
        #expect(r.allSatisfy { $0.proto == Self.T })
    }

    @Test func rangeOneToMax() {
        let r = L4Prefix.range(proto: Self.T, 1, 65535)
        #expect(r.count == 16)
        #expect(r.first == .port(Self.T, 1))
        #expect(r.last?.portRange == 32768...65535)
        #expect(r.last?.length == 9)
    }

    @Test func rangeWholeProtocolIsOneProtoPrefix() {
        #expect(L4Prefix.range(proto: Self.T, 0, 65535) == [.proto(Self.T)])
        #expect(L4Prefix.proto(Self.T).length == 8)
        #expect(L4Prefix.proto(Self.T).portRange == nil)
        #expect(L4Prefix.range(proto: IPProtocol.udp, 0, 32767) == [L4Prefix(proto: IPProtocol.udp, port: 0, length: 9)])
    }

    @Test(arguments: [0, 1, 80, 443, 8080, 65535] as [UInt16])
    func singlePort(p: UInt16) {
        #expect(L4Prefix.range(proto: Self.T, p, p) == [.port(Self.T, p)])
        #expect(L4Prefix.port(Self.T, p).length == 24)
        #expect(L4Prefix.port(Self.T, p).portRange == p...p)
    }

    static let ranges: [(UInt16, UInt16)] = [(8000, 9000), (1, 65535), (0, 65535), (80, 80), (1024, 2047), (1023, 1025),
                                             (3, 17), (0, 1), (65534, 65535), (12345, 54321), (32767, 32768)]

    /// Every port is matched by exactly one of the range's prefixes iff it lies in the range; blocks are maximal.
    @Test(arguments: ranges)
    func rangeExhaustive(first: UInt16, last: UInt16) {
        let r = L4Prefix.range(proto: Self.T, first, last)
        #expect(r.count <= 30)
        for port in 0...UInt32(65535) {
            let p = UInt16(port)
            let hits = r.filter { $0.matches(proto: Self.T, port: p) }.count
            #expect(hits == ((first...last).contains(p) ? 1 : 0), "port \(p)")
            if hits != ((first...last).contains(p) ? 1 : 0) { return }
        }
        // No protocol bleed.
        #expect(!r.contains { $0.matches(proto: IPProtocol.udp, port: first) })
        // Minimality: no two prefixes merge into an aligned block of the range (each block is maximal).
        for x in r where x.length > 8 {
            let parent = L4Prefix(proto: Self.T, port: x.port, length: x.length - 1)
            let pr = parent.portRange ?? 0...65535
            #expect(!(pr.lowerBound >= first && pr.upperBound <= last), "\(x) is not maximal")
        }
    }

    @Test func containment() {
        let all = L4Prefix.all
        let tcp = L4Prefix.proto(Self.T)
        let block = L4Prefix(proto: Self.T, port: 8192, length: 15) // 8192-8703
        let p80 = L4Prefix.port(Self.T, 80)
        #expect(all.contains(tcp) && all.contains(block) && all.contains(p80) && all.contains(all))
        #expect(tcp.contains(block) && tcp.contains(p80))
        #expect(!tcp.contains(all))
        #expect(block.contains(.port(Self.T, 8192)) && block.contains(.port(Self.T, 8703)))
        #expect(!block.contains(.port(Self.T, 8704)) && !block.contains(.port(Self.T, 8191)))
        #expect(!block.contains(tcp))
        #expect(!L4Prefix.proto(IPProtocol.udp).contains(p80))
        #expect(!p80.contains(.port(Self.T, 81)))
        #expect(p80.contains(p80))
        #expect(all.matches(proto: IPProtocol.icmp, port: 8))
        #expect(!tcp.matches(proto: IPProtocol.icmp, port: 8))
    }

    @Test func normalizesHostBits() {
        let a = L4Prefix(proto: Self.T, port: 8195, length: 15)
        #expect(a.port == 8192)
        #expect(a == L4Prefix(proto: Self.T, port: 8192, length: 15))
        let z = L4Prefix(proto: Self.T, port: 80, length: 0)
        #expect(z == .all)
        #expect(L4Prefix(proto: Self.T, port: 80, length: 8) == .proto(Self.T))
    }

    @Test func descriptions() {
        #expect(L4Prefix.all.description == "ANY")
        #expect(L4Prefix.proto(Self.T).description == "ANY/TCP")
        #expect(L4Prefix.port(IPProtocol.udp, 53).description == "53/UDP")
        #expect(L4Prefix(proto: Self.T, port: 8192, length: 15).description == "8192-8703/TCP")
    }

    @Test func protocolNames() {
        #expect(IPProtocol.parse("tcp") == 6)
        #expect(IPProtocol.parse("ICMPv6") == 58)
        #expect(IPProtocol.parse("132") == 132)
        #expect(IPProtocol.parse("bogus") == nil)
        #expect(IPProtocol.name(17) == "UDP")
    }

    // MARK: Policy map key layout

    @Test func keyByteLayout() {
        let k = PolicyMapKey(direction: .egress, identity: 0x0102_0304, l4: .port(Self.T, 0x1F90))
        #expect(k.encoded == [64, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 1, 6, 0x1F, 0x90])
        let all = PolicyMapKey(direction: .ingress, identity: 0, l4: .all)
        #expect(all.encoded == [40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        let proto = PolicyMapKey(direction: .ingress, identity: 16_777_217, l4: .proto(IPProtocol.udp))
        #expect(proto.encoded == [48, 0, 0, 0, 0x01, 0x00, 0x00, 0x01, 0, 17, 0, 0])
        let range = PolicyMapKey(direction: .ingress, identity: 7, l4: L4Prefix(proto: Self.T, port: 8192, length: 15))
        #expect(range.encoded == [55, 0, 0, 0, 7, 0, 0, 0, 0, 6, 0x20, 0x00])
        #expect(PolicyMapKey.encodedSize == 12)
    }

    @Test func keyRoundTrip() {
        var rng = SplitMix64(seed: 5)
        for _ in 0..<2000 {
            let len = UInt8(rng.int(0..<25))
            let k = PolicyMapKey(direction: rng.chance(0.5) ? .ingress : .egress, identity: UInt32(truncatingIfNeeded: rng.next()),
                                 l4: L4Prefix(proto: rng.pick([0, 1, 6, 17, 58, 132]), port: UInt16(truncatingIfNeeded: rng.next()), length: len))
            let bytes = k.encoded
            #expect(bytes.count == 12)
            #expect(PolicyMapKey(encoded: bytes) == k)
        }
    }

    @Test func keyDecodeRejectsMalformed() {
        #expect(PolicyMapKey(encoded: [64, 0, 0, 0]) == nil)
        #expect(PolicyMapKey(encoded: [64, 0, 0, 0, 0, 0, 0, 0, 2, 6, 0, 80]) == nil, "direction 2")
        #expect(PolicyMapKey(encoded: [39, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 80]) == nil)
        #expect(PolicyMapKey(encoded: [65, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 80]) == nil)
    }

    @Test func entryByteLayout() {
        let redirect = PolicyEntry(isDeny: false, l7: L7Policy(parser: .http, ruleSets: [], allowAllBy: [], conflictingParsers: []),
                                   authRequired: true, origins: [])
        let http = PolicyMapKey(direction: .ingress, identity: 300, l4: .port(IPProtocol.tcp, 80))
        #expect(redirect.encoded(for: http, cookie: 0x0A0B_0C0D) == [0x27, 0x60, 2, 1, 24, 0, 0, 0, 0x0D, 0x0C, 0x0B, 0x0A])
        let deny = PolicyEntry(isDeny: true, l7: nil, authRequired: false, origins: [])
        let all = PolicyMapKey(direction: .egress, identity: 0, l4: .all)
        #expect(deny.encoded(for: all, cookie: 1) == [0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0])
        #expect(deny.encoded(for: all, cookie: 1).count == PolicyEntry.encodedSize)
        #expect(L7Parser.dns.proxyPort(.egress) == 10053)
    }
}
