import HubbleAPI

/// What the Hubble server needs from the agent. The server only speaks the wire protocol;
/// flow storage, filtering and the follow/number/since semantics live behind this protocol
/// so they can be tested without gRPC.
public protocol ObserverBackend: Sendable {
    /// The responses for one GetFlows call, serialized (`observer.GetFlowsResponse` bytes), already filtered and in
    /// order, in batches (each batch is written to the client at once: one write per batch, not per flow); the
    /// sequence ending ends the RPC with OK.
    /// Throwing `ObserverError.invalidArgument(msg)` maps to gRPC InvalidArgument. When the client cancels, the
    /// server stops iterating (the stream's onTermination fires).
    func getFlows(_ request: Observer_GetFlowsRequest) -> AsyncThrowingStream<[[UInt8]], any Error>
    func serverStatus() async -> Observer_ServerStatusResponse
    func namespaces() async -> [Observer_Namespace]
    func nodes() async -> [Observer_Node]
}

/// Errors a backend may throw that the server turns into specific gRPC status codes.
public enum ObserverError: Error { case invalidArgument(String) }
