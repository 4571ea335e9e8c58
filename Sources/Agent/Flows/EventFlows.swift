import Datapath
import Hubble
import HubbleAPI
import Policy

/// One read of the datapath's event ring as stored flows: the decoded events, the context they were
/// observed in, and the flow numbers reserved for them. Flows are built (or written as response bytes)
/// only when a GetFlows reader gets to them; see `FlowBatch`.
final class EventFlows: FlowBatch {
    let events: [DatapathEvent]
    /// Each flow's event (index into `events`) and kind, in order.
    private let index: [(event: UInt32, kind: FlowKind)]
    let snapshot: FlowContextSnapshot
    let cookies: [[OriginID]]
    private let wallClockOffsetNs: Int64
    private let ids: FlowIDs.Number

    init(_ events: [DatapathEvent], snapshot: FlowContextSnapshot, cookies: [[OriginID]], wallClockOffsetNs: Int64, ids: inout FlowIDs) {
        var index: [(event: UInt32, kind: FlowKind)] = []
        index.reserveCapacity(events.count + events.count / 2)
        for (i, e) in events.enumerated() {
            let kinds = FlowKind.of(e)
            if kinds.policyVerdict { index.append((UInt32(i), .policyVerdict)) }
            if kinds.drop { index.append((UInt32(i), .drop)) }
        }
        self.events = events
        self.index = index
        self.snapshot = snapshot
        self.cookies = cookies
        self.wallClockOffsetNs = wallClockOffsetNs
        self.ids = ids.reserve(index.count)
    }

    var count: Int { index.count }
    var namespaces: [String] { snapshot.namespaces }

    func eventFlow(_ i: Int) -> EventFlow {
        let (event, kind) = index[i]
        return EventFlow(event: events[Int(event)], kind: kind, timeNs: timeNs(i))
    }

    func timeNs(_ i: Int) -> Int64 { Int64(bitPattern: events[Int(index[i].event)].monotonicNs) &+ wallClockOffsetNs }

    func number(_ i: Int) -> FlowIDs.Number { FlowIDs.Number(high: ids.high, low: ids.low &+ UInt64(i)) }

    func flow(_ i: Int, parts: FlowParts) -> Flow_Flow {
        FlowBuilder.flow(eventFlow(i), parts: parts, context: snapshot.context, cookies: cookies, uuid: { FlowIDs.uuid(number(i)) })
    }

    func encodedResponse(_ i: Int, nodeName: String) -> [UInt8] {
        FlowEncoder.response(eventFlow(i), snapshot: snapshot, cookies: cookies, uuid: number(i), nodeName: nodeName)
    }
}
