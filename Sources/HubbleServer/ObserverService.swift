import GRPCCore
import HubbleAPI

/// `observer.Observer` as the hubble CLI uses it: a thin adapter from gRPC to `ObserverBackend`.
///
/// Agent and debug events are not produced by Membrane, so those RPCs answer UNIMPLEMENTED
/// (the CLI reports that cleanly), as does any method a client sends that is not listed here.
struct ObserverService: Observer_Observer.SimpleServiceProtocol {
    let backend: any ObserverBackend
    let shutdown: ShutdownSignal

    func getFlows(
        request: Observer_GetFlowsRequest,
        response: RPCWriter<Observer_GetFlowsResponse>,
        context: ServerContext
    ) async throws {
        // A wire-level rule of the real server (§2.3), checked here so every backend gets it.
        if request.first && request.follow {
            throw RPCError(code: .invalidArgument, message: "first cannot be specified with follow")
        }
        let flows = backend.getFlows(request)
        do {
            try await FlowStreamPump.run(flows, into: response, cancellation: context.cancellation, shutdown: shutdown)
        } catch let error as ObserverError {
            switch error {
            case .invalidArgument(let message): throw RPCError(code: .invalidArgument, message: message)
            }
        } catch let error as RPCError {
            throw error
        } catch is CancellationError {
            throw RPCError(code: .cancelled, message: "GetFlows cancelled")
        } catch {
            throw RPCError(code: .internalError, message: "GetFlows failed: \(error)")
        }
    }

    func getAgentEvents(
        request: Observer_GetAgentEventsRequest,
        response: RPCWriter<Observer_GetAgentEventsResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "agent events are not available from Membrane")
    }

    func getDebugEvents(
        request: Observer_GetDebugEventsRequest,
        response: RPCWriter<Observer_GetDebugEventsResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "debug events are not available from Membrane")
    }

    func getNodes(request: Observer_GetNodesRequest, context: ServerContext) async throws -> Observer_GetNodesResponse {
        var reply = Observer_GetNodesResponse()
        reply.nodes = await backend.nodes()
        return reply
    }

    func getNamespaces(request: Observer_GetNamespacesRequest, context: ServerContext) async throws -> Observer_GetNamespacesResponse {
        var reply = Observer_GetNamespacesResponse()
        reply.namespaces = await backend.namespaces()
        return reply
    }

    func serverStatus(request: Observer_ServerStatusRequest, context: ServerContext) async throws -> Observer_ServerStatusResponse {
        await backend.serverStatus()
    }
}
