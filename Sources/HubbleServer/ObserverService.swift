import GRPCCore
import GRPCProtobuf
import HubbleAPI
import SwiftProtobuf

/// `observer.Observer` as the hubble CLI uses it: a thin adapter from gRPC to `ObserverBackend`.
///
/// Registered by hand rather than through the generated service protocol for one reason: GetFlows sends
/// responses the backend has already serialized (`EncodedMessageSerializer`), so that a flow can go from the
/// datapath's event to the wire without a protobuf message in between. The other methods use the generated
/// descriptors and protobuf coders. Agent and debug events are not produced by Membrane: those RPCs answer
/// UNIMPLEMENTED (the CLI reports that cleanly), as does any method not registered here.
struct ObserverService: RegistrableRPCService {
    let backend: any ObserverBackend
    let shutdown: ShutdownSignal

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Observer_Observer.Method.GetFlows.descriptor,
            deserializer: ProtobufDeserializer<Observer_GetFlowsRequest>(),
            serializer: EncodedMessageSerializer(),
            handler: { request, context in
                let message = try await request.messages.first { _ in true } ?? Observer_GetFlowsRequest()
                return StreamingServerResponse { writer in
                    try await getFlows(message, into: writer, context: context)
                    return [:]
                }
            })
        unary(Observer_Observer.Method.GetNodes.descriptor, &router) { (_: Observer_GetNodesRequest) in
            var reply = Observer_GetNodesResponse()
            reply.nodes = await backend.nodes()
            return reply
        }
        unary(Observer_Observer.Method.GetNamespaces.descriptor, &router) { (_: Observer_GetNamespacesRequest) in
            var reply = Observer_GetNamespacesResponse()
            reply.namespaces = await backend.namespaces()
            return reply
        }
        unary(Observer_Observer.Method.ServerStatus.descriptor, &router) { (_: Observer_ServerStatusRequest) in
            await backend.serverStatus()
        }
        unimplemented(Observer_Observer.Method.GetAgentEvents.descriptor, Observer_GetAgentEventsRequest.self, &router,
                      "agent events are not available from Membrane")
        unimplemented(Observer_Observer.Method.GetDebugEvents.descriptor, Observer_GetDebugEventsRequest.self, &router,
                      "debug events are not available from Membrane")
    }

    func getFlows(_ request: Observer_GetFlowsRequest, into writer: RPCWriter<[UInt8]>, context: ServerContext) async throws {
        // A wire-level rule of the real server (§2.3), checked here so every backend gets it.
        if request.first && request.follow {
            throw RPCError(code: .invalidArgument, message: "first cannot be specified with follow")
        }
        let flows = backend.getFlows(request)
        do {
            try await FlowStreamPump.run(flows, into: writer, cancellation: context.cancellation, shutdown: shutdown)
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

    private func unary<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable, Transport: ServerTransport>(
        _ method: MethodDescriptor, _ router: inout RPCRouter<Transport>,
        _ body: @escaping @Sendable (Request) async throws -> Response
    ) {
        router.registerHandler(
            forMethod: method, deserializer: ProtobufDeserializer<Request>(), serializer: ProtobufSerializer<Response>(),
            handler: { request, _ in
                let message = try await request.messages.first { _ in true } ?? Request()
                let reply = try await body(message)
                return StreamingServerResponse(single: ServerResponse(message: reply))
            })
    }

    private func unimplemented<Request: SwiftProtobuf.Message & Sendable, Transport: ServerTransport>(
        _ method: MethodDescriptor, _ type: Request.Type, _ router: inout RPCRouter<Transport>, _ message: String
    ) {
        router.registerHandler(
            forMethod: method, deserializer: ProtobufDeserializer<Request>(), serializer: EncodedMessageSerializer(),
            handler: { _, _ in throw RPCError(code: .unimplemented, message: message) })
    }
}

/// Writes messages that are already serialized protobuf bytes as they are.
struct EncodedMessageSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
}
