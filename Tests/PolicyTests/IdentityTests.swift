import MembraneTestSupport
import Testing
@testable import Policy
import PolicyAPI

@Suite struct IdentityTests {
    @Test(arguments: [
        (ReservedIdentity.host, 1, "host"), (.world, 2, "world"), (.unmanaged, 3, "unmanaged"), (.health, 4, "health"),
        (.`init`, 5, "init"), (.remoteNode, 6, "remote-node"), (.kubeAPIServer, 7, "kube-apiserver"),
        (.ingress, 8, "ingress"), (.worldIPv4, 9, "world-ipv4"), (.worldIPv6, 10, "world-ipv6"),
    ])
    func reservedNumbers(r: ReservedIdentity, number: Int, name: String) {
        #expect(r.rawValue == NumericIdentity(number))
        #expect(r.name == name)
        #expect(ReservedIdentity(name: name) == r)
        #expect(r.label == Label(source: "reserved", key: name))
        #expect(Identity.reserved(r).isReserved)
        #expect(Identity.reserved(r).scope == "reserved")
    }

    @Test func reservedLabels() {
        #expect(ReservedIdentity.kubeAPIServer.labels == LabelSet([reservedLabel("kube-apiserver"), reservedLabel("remote-node")]))
        for r in ReservedIdentity.allCases where r != .kubeAPIServer {
            #expect(r.labels == LabelSet([r.label]))
        }
        #expect(ReservedIdentity.allCases.count == 10)
        #expect(ReservedIdentity(name: "none") == nil)
    }

    @Test func allocatorKnowsReserved() {
        let a = IdentityAllocator()
        for r in ReservedIdentity.allCases {
            #expect(a.lookup(r.rawValue)?.labels == r.labels)
            #expect(a.lookup(labels: r.labels) == r.rawValue)
        }
        #expect(a.lookup(0) == nil)
    }

    @Test func allocatingReservedLabelsGivesReservedNumber() {
        var a = IdentityAllocator()
        let (id, isNew) = a.allocate(LabelSet([reservedLabel("host")]), local: false)
        #expect(id.id == 1)
        #expect(!isNew)
        // Reserved identities are never released.
        let released = a.release(1)
        #expect(!released)
        #expect(a.lookup(1) != nil)
    }

    @Test func clusterAndLocalRanges() {
        var a = IdentityAllocator()
        for i in 0..<200 {
            let c = a.allocate(LabelSet([k8s("app", "a\(i)")]), local: false).identity
            #expect(c.id >= 256 && c.id <= 65535, "\(c)")
            #expect(c.scope == "cluster")
            #expect(!c.isLocal && !c.isReserved)
            let l = a.allocate(LabelSet([Label(source: "cidr", key: "10.0.\(i).0/24"), reservedLabel("world")]), local: true).identity
            #expect(l.id >= 16_777_216 && l.id <= 33_554_431, "\(l)")
            #expect(l.isLocal)
            #expect(l.scope == "node-local")
        }
        #expect(Set(a.all.map(\.id)).count == 410)
    }

    @Test func sameLabelsSameNumber() {
        var a = IdentityAllocator()
        let x = a.allocate(LabelSet([k8s("app", "x"), k8s("tier", "db")]), local: false)
        let y = a.allocate(LabelSet([k8s("tier", "db"), k8s("app", "x")]), local: false)
        #expect(x.isNew)
        #expect(!y.isNew)
        #expect(x.identity.id == y.identity.id)
    }

    /// Numbers depend only on the set of label sets, not on allocation order, and two allocators agree.
    @Test func deterministicAcrossOrdersAndAllocators() {
        let sets = (0..<60).map { i in LabelSet([k8s("app", "svc\(i % 12)"), k8s("tier", "t\(i / 12)")]) }
        // Order independence only holds without probing collisions: check home slots are not adjacent.
        let span = UInt64(IdentityRange.maximumCluster - IdentityRange.minimumCluster + 1)
        let homes = sets.map { IdentityAllocator.stableHash($0) % span }.sorted()
        let collisionFree = zip(homes, homes.dropFirst()).allSatisfy { $1 - $0 > UInt64(sets.count) }
        var reference = IdentityAllocator()
        let expected = sets.map { reference.allocate($0, local: false).identity.id }
        var rng = SplitMix64(seed: 42)
        for _ in 0..<10 {
            var other = IdentityAllocator()
            let shuffled = sets.shuffled(using: &rng)
            for s in shuffled { _ = other.allocate(s, local: false) }
            if collisionFree {
                #expect(sets.map { other.lookup(labels: $0)! } == expected)
            }
            // Same order always agrees, collision or not.
            var same = IdentityAllocator()
            let sameIDs = sets.map { same.allocate($0, local: false).identity.id }
            #expect(sameIDs == expected)
        }
        #expect(Set(expected).count == sets.count)
    }

    @Test func stableHashIsFixed() {
        // FNV-1a over canonical text: must not vary between runs (Swift's Hasher would).
        let s = LabelSet([k8s("app", "x")])
        #expect(IdentityAllocator.stableHash(s) == IdentityAllocator.stableHash(LabelSet([k8s("app", "x")])))
        var a = IdentityAllocator(); var b = IdentityAllocator()
        let x = a.allocate(s, local: false).identity.id, y = b.allocate(s, local: false).identity.id
        #expect(x == y)
    }

    @Test func probingOnCollision() {
        var a = IdentityAllocator()
        // Allocate enough sets that some collide on home slot; all numbers must still be distinct and in range.
        var seen = Set<NumericIdentity>()
        for i in 0..<3000 {
            let id = a.allocate(LabelSet([k8s("n", "\(i)")]), local: false).identity.id
            #expect(seen.insert(id).inserted)
            #expect(id >= 256 && id <= 65535)
        }
    }

    @Test func referenceCounting() {
        var a = IdentityAllocator()
        let labels = LabelSet([k8s("app", "x")])
        let id = a.allocate(labels, local: false).identity.id
        _ = a.allocate(labels, local: false)
        _ = a.allocate(labels, local: false)
        let r1 = a.release(id), r2 = a.release(id)
        #expect(!r1 && !r2)
        #expect(a.lookup(id) != nil)
        let r3 = a.release(id)
        #expect(r3)
        #expect(a.lookup(id) == nil)
        #expect(a.lookup(labels: labels) == nil)
        let r4 = a.release(id)
        #expect(!r4, "a released identity has no references left")
        // Re-allocation gives the same number back (its home slot is free again).
        let again = a.allocate(labels, local: false)
        #expect(again.isNew)
        #expect(again.identity.id == id)
    }

    @Test func releaseUnknownIsNoOp() {
        var a = IdentityAllocator()
        let r1 = a.release(12345), r2 = a.release(2)
        #expect(!r1 && !r2)
        #expect(a.lookup(2) != nil)
    }
}
