import Foundation
import Hubble
import HubbleAPI
import SwiftProtobuf
import Testing

/// A flow at second `t` (since an arbitrary epoch) from `src` to `dst` namespace/pod, with a verdict.
func flow(_ t: Int64, _ verdict: Flow_Verdict = .forwarded, src: (String, String) = ("default", "client"),
          dst: (String, String) = ("prod", "backend"), port: UInt32 = 8080, srcID: UInt32 = 300, dstID: UInt32 = 400) -> Flow_Flow {
    var f = Flow_Flow()
    f.time = Google_Protobuf_Timestamp(seconds: 1_700_000_000 + t, nanos: 0)
    f.verdict = verdict
    f.source.namespace = src.0; f.source.podName = src.1; f.source.identity = srcID
    f.destination.namespace = dst.0; f.destination.podName = dst.1; f.destination.identity = dstID
    f.ip.source = "10.0.0.1"; f.ip.destination = "10.0.0.2"; f.ip.ipVersion = .ipv4
    var tcp = Flow_TCP(); tcp.sourcePort = 40000; tcp.destinationPort = port; tcp.flags.syn = true
    f.l4.protocol = .tcp(tcp)
    f.eventType.type = verdict == .dropped ? 1 : 5
    f.summary = "t\(t)"
    return f
}

func collect(_ store: FlowStore, _ request: Observer_GetFlowsRequest) async throws -> [Observer_GetFlowsResponse] {
    var out: [Observer_GetFlowsResponse] = []
    for try await r in try store.responses(for: request) { out.append(r) }
    return out
}

func summaries(_ rs: [Observer_GetFlowsResponse]) -> [String] { rs.map { $0.flow.summary } }

@Suite struct FlowStoreTests {
    @Test func lastNIsOldestFirstAndEndsTheStream() async throws {
        let store = FlowStore(capacity: 8, nodeName: "n1")
        store.append((0..<5).map { flow($0) })
        var req = Observer_GetFlowsRequest(); req.number = 3
        let rs = try await collect(store, req)
        #expect(summaries(rs) == ["t2", "t3", "t4"])
        #expect(rs.allSatisfy { $0.nodeName == "n1" && $0.time == $0.flow.time })
    }

    @Test func firstNFromTheOldestEnd() async throws {
        let store = FlowStore(capacity: 8, nodeName: "n1")
        store.append((0..<5).map { flow($0) })
        var req = Observer_GetFlowsRequest(); req.number = 2; req.first = true
        #expect(summaries(try await collect(store, req)) == ["t0", "t1"])
    }

    @Test func ringKeepsTheLastCapacityFlows() async throws {
        let store = FlowStore(capacity: 4, nodeName: "n1")
        store.append((0..<10).map { flow($0) })
        var req = Observer_GetFlowsRequest(); req.number = 100
        #expect(summaries(try await collect(store, req)) == ["t6", "t7", "t8", "t9"])
        #expect(store.status.numFlows == 4 && store.status.seenFlows == 10 && store.status.maxFlows == 4)
    }

    @Test func lastNCountsOnlyMatchingFlows() async throws {
        let store = FlowStore(capacity: 16, nodeName: "n1")
        store.append((0..<10).map { flow($0, $0 % 3 == 0 ? .dropped : .forwarded) })
        var req = Observer_GetFlowsRequest(); req.number = 2
        var f = Flow_FlowFilter(); f.verdict = [.dropped]
        req.whitelist = [f]
        #expect(summaries(try await collect(store, req)) == ["t6", "t9"])
        req.whitelist = []; req.blacklist = [f]; req.number = 3
        #expect(summaries(try await collect(store, req)) == ["t5", "t7", "t8"])
    }

    @Test func sinceAndUntil() async throws {
        let store = FlowStore(capacity: 16, nodeName: "n1")
        store.append((0..<10).map { flow($0) })
        var req = Observer_GetFlowsRequest()
        req.since = Google_Protobuf_Timestamp(seconds: 1_700_000_000 + 4, nanos: 0)
        req.until = Google_Protobuf_Timestamp(seconds: 1_700_000_000 + 6, nanos: 0)
        #expect(summaries(try await collect(store, req)) == ["t4", "t5", "t6"])
    }

    @Test func firstWithFollowIsInvalid() throws {
        let store = FlowStore(capacity: 4, nodeName: "n1")
        var req = Observer_GetFlowsRequest(); req.first = true; req.follow = true
        #expect(throws: FilterError.self) { _ = try store.responses(for: req) }
    }

    @Test func invalidFilterIsRejected() throws {
        let store = FlowStore(capacity: 4, nodeName: "n1")
        var req = Observer_GetFlowsRequest()
        var f = Flow_FlowFilter(); f.sourceIp = ["10.0.0.0/33"]
        req.whitelist = [f]
        #expect(throws: FilterError.self) { _ = try store.responses(for: req) }
    }

    @Test func followWithoutNumberSendsOnlyNewFlowsAndStopsOnCancel() async throws {
        let store = FlowStore(capacity: 64, nodeName: "n1")
        store.append([flow(0), flow(1)])
        var req = Observer_GetFlowsRequest(); req.follow = true
        let stream = try store.responses(for: req)
        let task = Task { () -> [String] in
            var got: [String] = []
            for try await r in stream { got.append(r.flow.summary); if got.count == 3 { break } }
            return got
        }
        try await Task.sleep(for: .milliseconds(50))
        store.append([flow(2)])
        try await Task.sleep(for: .milliseconds(20))
        store.append([flow(3), flow(4)])
        #expect(try await task.value == ["t2", "t3", "t4"])

        // A follower waiting for flows ends when its task is cancelled.
        let waiting = Task { () -> Int in
            var n = 0
            for try await _ in try store.responses(for: req) { n += 1 }
            return n
        }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(try await waiting.value == 0)
    }

    @Test func followWithLastNSendsBacklogThenNew() async throws {
        let store = FlowStore(capacity: 64, nodeName: "n1")
        store.append((0..<5).map { flow($0) })
        var req = Observer_GetFlowsRequest(); req.follow = true; req.number = 2
        let stream = try store.responses(for: req)
        let task = Task { () -> [String] in
            var got: [String] = []
            for try await r in stream { got.append(r.flow.summary); if got.count == 3 { break } }
            return got
        }
        try await Task.sleep(for: .milliseconds(30))
        store.append([flow(5)])
        #expect(try await task.value == ["t3", "t4", "t5"])
    }

    @Test func slowFollowerIsToldHowManyFlowsItMissed() async throws {
        let store = FlowStore(capacity: 4, nodeName: "n1")
        var req = Observer_GetFlowsRequest(); req.follow = true
        let stream = try store.responses(for: req)
        var it = stream.makeAsyncIterator()
        store.append((0..<10).map { flow($0) })
        let first = try await it.next()
        #expect(first?.lostEvents.source == .hubbleRingBuffer)
        #expect(first?.lostEvents.numEventsLost == 6)
        #expect(try await it.next()?.flow.summary == "t6")
    }

    @Test func upstreamLossIsStoredInOrder() async throws {
        let store = FlowStore(capacity: 8, nodeName: "n1")
        store.append([flow(0)])
        store.recordLost(42, source: .perfEventRingBuffer)
        store.append([flow(1)])
        var req = Observer_GetFlowsRequest(); req.number = 10
        let rs = try await collect(store, req)
        #expect(rs.count == 3)
        #expect(rs[1].lostEvents.numEventsLost == 42 && rs[1].lostEvents.source == .perfEventRingBuffer)
        #expect(store.status.lostUpstream == 42)
    }

    @Test func oneMillionFlowsIntoTheStore() {
        let store = FlowStore(capacity: 4095, nodeName: "n1")
        let batch = (0..<1000).map { flow(Int64($0)) }
        for _ in 0..<1000 { store.append(batch) }
        #expect(store.status.seenFlows == 1_000_000)
        #expect(store.status.numFlows == 4095)
    }
}
