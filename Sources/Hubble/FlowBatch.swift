import HubbleAPI

/// Flows the store keeps as their source reported them and builds only when read.
///
/// Building a protobuf `Flow` costs microseconds (every nested message and string is its own
/// allocation), which would cap the datapath's event rate into the store far below a million per second.
/// Most stored flows are overwritten before anyone reads them, so the datapath appends its decoded events
/// as a batch and the store builds a flow, or writes its response bytes, only for a reader.
///
/// A batch is immutable once appended (readers on other threads call it concurrently).
public protocol FlowBatch: AnyObject, Sendable {
    /// Flows in the batch (an event can give more than one flow).
    var count: Int { get }
    /// The flow's time in nanoseconds since the epoch (what `since`/`until` compare).
    func timeNs(_ index: Int) -> Int64
    /// The flow with at least `parts` filled in; the always-present scalars (time, verdict, drop reason,
    /// type, event type, direction, match type, is_reply, node name) are there whatever `parts` says.
    func flow(_ index: Int, parts: FlowParts) -> Flow_Flow
    /// The serialized `observer.GetFlowsResponse` carrying the flow: the same bytes as serializing
    /// `FlowStore.response(flow: flow(index, parts: .all))`, written without building the message.
    func encodedResponse(_ index: Int, nodeName: String) -> [UInt8]
    /// Namespaces of the endpoints the batch's flows can name (for GetNamespaces).
    var namespaces: [String] { get }
}

/// The parts of a flow beyond its scalars, so that a filter makes a batch build only what it reads.
public struct FlowParts: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `IP`: addresses, version.
    public static let ip = FlowParts(rawValue: 1 << 0)
    /// `l4`: protocol, ports, TCP flags.
    public static let l4 = FlowParts(rawValue: 1 << 1)
    /// `source` and `destination`: endpoint ID, identity, namespace, pod, labels.
    public static let endpoints = FlowParts(rawValue: 1 << 2)
    /// `interface`.
    public static let interface = FlowParts(rawValue: 1 << 3)
    /// `uuid`.
    public static let uuid = FlowParts(rawValue: 1 << 4)
    /// `*_allowed_by`, `*_denied_by`, `Summary`: read by printers, never by filters.
    public static let attribution = FlowParts(rawValue: 1 << 5)

    public static let all: FlowParts = [.ip, .l4, .endpoints, .interface, .uuid, .attribution]
}
