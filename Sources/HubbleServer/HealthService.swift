import GRPCCore
import HubbleAPI

/// `grpc.health.v1.Health`, because `hubble status` refuses to continue unless Check says
/// SERVING for "hubble.server.Observer".
struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    /// "" is the whole server (standard gRPC health convention); the other is what the CLI asks.
    static let knownServices: Set<String> = ["", "hubble.server.Observer"]

    let shutdown: ShutdownSignal

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard Self.knownServices.contains(request.service) else {
            // Standard gRPC health semantics: Check on an unknown service is NOT_FOUND.
            throw RPCError(code: .notFound, message: "unknown service \(request.service)")
        }
        var reply = Grpc_Health_V1_HealthCheckResponse()
        reply.status = shutdown.isFired ? .notServing : .serving
        return reply
    }

    /// Not offered: the CLI never watches, and an open Watch stream would hold up graceful shutdown.
    func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "Health/Watch is not supported; use Check")
    }
}
