@testable import Agent
import Datapath
import Foundation
import Hubble
import HubbleAPI
import MembraneTestSupport
import Policy
import PolicyAPI
import SwiftProtobuf
import Testing

/// Stored events become flows two ways: built as `Flow` messages (filters, `responses(for:)`) and written
/// straight to GetFlowsResponse bytes (the gRPC server). Both must say the same thing, byte for byte, for
/// every kind of event, and a filter must decide the same on the parts it asks a batch to build as on the
/// whole flow.
@Suite struct FlowEncodingTests {
    static let backend = ResourceRef(kind: .ciliumNetworkPolicy, namespace: "prod", name: "allow-client")
    static let deny = ResourceRef(kind: .ciliumClusterwideNetworkPolicy, namespace: nil, name: "deny-world")

    /// Two local endpoints (10 in prod, 11 in default), a remote identity with labels, two policies.
    static func context() -> (FlowContextSnapshot, [[OriginID]]) {
        var c = FlowContext()
        c.nodeName = "node-a"
        for (id, ns, pod, identity, ip) in [(UInt16(10), "prod", "backend-0", NumericIdentity(400), "10.200.0.10"),
                                            (11, "default", "client-7", 300, "10.200.0.11")] {
            var ep = Flow_Endpoint()
            ep.id = UInt32(id); ep.identity = identity; ep.namespace = ns; ep.podName = pod
            ep.labels = ["k8s:app=\(pod.split(separator: "-")[0])", "k8s:io.kubernetes.pod.namespace=\(ns)"]
            c.endpoints[id] = .init(endpoint: ep, interfaceName: "lxc\(id)")
            c.endpointsByIP[IPAddress(ip)!] = id
        }
        c.identityLabels[16_777_300] = ["cidr:192.0.2.0/24", "reserved:world"]
        c.identityLabels[2] = ["reserved:world"]
        let o0 = c.origins.intern(PolicyOrigin(ref: backend, rulePath: "spec.ingress[0]", uid: "u-1", revision: 3))
        let o1 = c.origins.intern(PolicyOrigin(ref: deny, rulePath: "specs[0].egressDeny[0]", revision: 5))
        let o2 = c.origins.intern(.derived("allow-localhost-ingress"))
        c.policyRevisions[backend] = 4
        c.defaultDenyBy[10] = [.ingress: [backend], .egress: []]
        return (FlowContextSnapshot(c), [[], [o0], [o0, o1], [o2]])
    }

    static func event(verdict: DatapathEvent.Verdict, reason: UInt16, endpoint: UInt16, egress: Bool, proto: UInt8, flags: UInt8,
                      prefix: UInt8?, wildcard: Bool = false, source: IPAddress, destination: IPAddress, ports: (UInt16, UInt16),
                      cookie: UInt32, peerIdentity: UInt32, time: UInt64) -> DatapathEvent {
        DatapathEvent(monotonicNs: time, kind: reason != 0 && prefix == nil ? .drop : .policyVerdict, verdict: verdict,
                      dropReason: reason, endpointID: endpoint, localIdentity: 400, peerIdentity: peerIdentity,
                      direction: egress ? .egress : .ingress, proto: proto, tcpFlags: flags, l4PrefixLength: prefix,
                      matchedPeer: prefix != nil && !wildcard, sourcePort: ports.0, destinationPort: ports.1,
                      source: source, destination: destination, cookie: cookie, ifindex: 7)
    }

    /// Random events over every field the flow depends on.
    static func events(_ n: Int, seed: UInt64) -> [DatapathEvent] {
        var rng = SplitMix64(seed: seed)
        let addresses = ["10.200.0.10", "10.200.0.11", "192.0.2.9", "10.9.9.9"].map { IPAddress($0)! }
        return (0..<n).map { i in
            let verdict = [DatapathEvent.Verdict.forwarded, .dropped, .audit, .reply].randomElement(using: &rng)!
            let reason = verdict == .forwarded || verdict == .reply ? 0 : [UInt16(133), 181, 180, 0].randomElement(using: &rng)!
            return event(verdict: verdict, reason: reason, endpoint: [UInt16(10), 11, 99].randomElement(using: &rng)!,
                         egress: Bool.random(using: &rng), proto: [UInt8(6), 17, 1, 58, 132, 47].randomElement(using: &rng)!,
                         flags: UInt8.random(in: 0...255, using: &rng), prefix: [nil, UInt8(0), 8, 24].randomElement(using: &rng)!, wildcard: Bool.random(using: &rng),
                         source: addresses.randomElement(using: &rng)!, destination: addresses.randomElement(using: &rng)!,
                         ports: (UInt16.random(in: 0...65535, using: &rng), [UInt16(0), 8, 80, 8080].randomElement(using: &rng)!),
                         cookie: [UInt32(0), 1, 2, 3, 99].randomElement(using: &rng)!,
                         peerIdentity: [UInt32(2), 300, 16_777_300, 12345].randomElement(using: &rng)!,
                         time: 1_000_000_000 * UInt64(i) + UInt64.random(in: 0..<1_000_000_000, using: &rng))
        }
    }

    static func batch(_ n: Int, seed: UInt64) -> EventFlows {
        let (snapshot, cookies) = context()
        var ids = FlowIDs()
        return EventFlows(events(n, seed: seed), snapshot: snapshot, cookies: cookies, wallClockOffsetNs: 1_700_000_000_000_000_000, ids: &ids)
    }

    @Test func encodedResponsesAreTheBuiltFlowsSerialized() throws {
        let b = Self.batch(2000, seed: 42)
        let store = FlowStore(nodeName: "fallback")
        #expect(b.count > 2000)   // drops give two flows
        for i in 0..<b.count {
            let built = store.response(flow: b.flow(i, parts: .all))
            let encoded = b.encodedResponse(i, nodeName: "fallback")
            if encoded != (try built.serializedBytes()) {
                let decoded = try Observer_GetFlowsResponse(serializedBytes: encoded)
                Issue.record("flow \(i) (\(b.eventFlow(i).event)): encoded differs\nbuilt:   \(built)\ndecoded: \(decoded)")
                return
            }
        }
    }

    @Test func flowsSayWhatTheEventSays() throws {
        let (snapshot, cookies) = Self.context()
        var ids = FlowIDs()
        // Ingress to backend-0 from client-7, denied by default deny: a policy-verdict flow and a drop flow.
        let e = Self.event(verdict: .dropped, reason: 133, endpoint: 10, egress: false, proto: 6, flags: 0x02, prefix: nil,
                           source: IPAddress("10.200.0.11")!, destination: IPAddress("10.200.0.10")!, ports: (40000, 8080), cookie: 0,
                           peerIdentity: 300, time: 5)
        let b = EventFlows([e], snapshot: snapshot, cookies: cookies, wallClockOffsetNs: 0, ids: &ids)
        #expect(b.count == 2)
        let (verdict, drop) = (b.flow(0, parts: .all), b.flow(1, parts: .all))
        #expect(verdict.eventType.type == 5 && drop.eventType.type == 1 && drop.eventType.subType == 133)
        #expect(verdict.verdict == .dropped && verdict.dropReasonDesc == .policyDenied)
        #expect(verdict.source.podName == "client-7" && verdict.destination.podName == "backend-0")
        #expect(verdict.ingressDeniedBy.map(\.name) == ["allow-client"] && verdict.ingressDeniedBy[0].revision == 4)
        #expect(verdict.summary == "TCP Flags: SYN" && verdict.interface.name == "lxc10" && verdict.nodeName == "node-a")
        #expect(!verdict.hasIsReply)
        // UUIDs: distinct per flow, the same on every read.
        #expect(verdict.uuid != drop.uuid && verdict.uuid == b.flow(0, parts: .all).uuid && verdict.uuid.count == 36)
        #expect(UUID(uuidString: verdict.uuid) != nil)
    }

    /// A filter reads only what its `parts` name: on a partly built flow it decides as on the whole one.
    @Test func filtersDecideTheSameOnThePartsTheyAskFor() throws {
        let b = Self.batch(600, seed: 7)
        var filters: [Flow_FlowFilter] = []
        func add(_ make: (inout Flow_FlowFilter) -> Void) { var f = Flow_FlowFilter(); make(&f); filters.append(f) }
        add { $0.verdict = [.dropped] }
        add { $0.sourceIp = ["10.200.0.0/24"] }
        add { $0.destinationIp = ["192.0.2.9"]; $0.ipVersion = [.ipv4] }
        add { $0.sourcePod = ["default/client"] }
        add { $0.destinationLabel = ["k8s:app=backend"] }
        add { $0.sourceIdentity = [300, 2] }
        add { $0.destinationPort = ["8080"]; $0.protocol = ["tcp"] }
        add { $0.tcpFlags = [{ var t = Flow_TCPFlags(); t.syn = true; return t }()] }
        add { $0.interface = [{ var i = Flow_NetworkInterface(); i.name = "lxc10"; return i }()] }
        add { $0.eventType = [{ var t = Flow_EventTypeFilter(); t.type = 1; return t }()] }
        add { $0.reply = [false] }
        add { $0.trafficDirection = [.egress]; $0.dropReasonDesc = [.policyDeny] }
        add { $0.nodeName = ["node-*"] }
        var matched = 0
        for f in filters {
            for set in [try FlowFilterSet(whitelist: [f]), try FlowFilterSet(blacklist: [f])] {
                for i in 0..<b.count {
                    let whole = set.matches(b.flow(i, parts: .all))
                    #expect(set.matches(b.flow(i, parts: set.parts)) == whole, "filter \(f) on flow \(i)")
                    if whole { matched += 1 }
                }
            }
        }
        #expect(matched > 0 && matched < filters.count * 2 * b.count)
    }

    /// The store's two outputs agree: messages (`membrane observe` in-process, tests) and bytes (gRPC).
    @Test func storeStreamsTheSameFlowsAsMessagesAndBytes() async throws {
        let store = FlowStore(capacity: 300, nodeName: "fallback")
        store.append(Self.batch(200, seed: 3))
        var request = Observer_GetFlowsRequest()
        request.number = 120
        var f = Flow_FlowFilter(); f.verdict = [.forwarded, .audit]
        request.blacklist = [f]
        var messages: [Observer_GetFlowsResponse] = [], bytes: [Observer_GetFlowsResponse] = []
        for try await r in try store.responses(for: request) { messages.append(r) }
        for try await batch in try store.encodedResponseBatches(for: request) {
            bytes += try batch.map { try Observer_GetFlowsResponse(serializedBytes: $0) }
        }
        #expect(messages.count == 120)
        #expect(messages == bytes)
        #expect(messages.allSatisfy { $0.flow.verdict == .dropped })
        #expect(store.namespacesSeen == ["default", "prod"])
    }
}
