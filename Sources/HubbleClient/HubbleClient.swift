import GRPCCore
import GRPCNIOTransportHTTP2Posix
import HubbleAPI

/// A small client for Membrane's (or any) Hubble server, used by `membrane observe`.
///
/// Each call opens its own h2c connection and closes it afterwards: the CLI makes one or two
/// calls per run, so a long-lived connection would only add lifecycle to manage. Failed RPCs
/// throw `HubbleClientError`; a refused connection shows up as `.unavailable`.
public struct HubbleClient: Sendable {
    public let target: HubbleTarget
    /// Deadline for unary calls; the hubble CLI's `--request-timeout` default is 12 s.
    public var requestTimeout: Duration

    public init(target: HubbleTarget, requestTimeout: Duration = .seconds(12)) {
        self.target = target
        self.requestTimeout = requestTimeout
    }

    /// - Parameter server: "unix:///path", "unix:/path" or "host:port" (see `HubbleTarget`).
    public init(server: String, requestTimeout: Duration = .seconds(12)) throws {
        self.init(target: try HubbleTarget(parsing: server), requestTimeout: requestTimeout)
    }

    /// Streams `GetFlows`, calling `onResponse` for each response in order. Returns when the
    /// server ends the stream; cancelling the calling task cancels the RPC (as Ctrl-C does in hubble).
    public func getFlows(
        _ request: Observer_GetFlowsRequest,
        onResponse: @escaping @Sendable (Observer_GetFlowsResponse) async throws -> Void
    ) async throws {
        try await withObserver { observer in
            try await observer.getFlows(request) { response in
                for try await message in response.messages {
                    try await onResponse(message)
                }
            }
        }
    }

    public func serverStatus() async throws -> Observer_ServerStatusResponse {
        try await withObserver { observer in
            try await observer.serverStatus(Observer_ServerStatusRequest(), options: unaryOptions)
        }
    }

    public func namespaces() async throws -> [Observer_Namespace] {
        try await withObserver { observer in
            try await observer.getNamespaces(Observer_GetNamespacesRequest(), options: unaryOptions).namespaces
        }
    }

    public func nodes() async throws -> [Observer_Node] {
        try await withObserver { observer in
            try await observer.getNodes(Observer_GetNodesRequest(), options: unaryOptions).nodes
        }
    }

    /// `grpc.health.v1.Health/Check`; `hubble status` asks for "hubble.server.Observer".
    public func healthCheck(service: String = "hubble.server.Observer") async throws -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = service
        return try await withConnection { client in
            try await Grpc_Health_V1_Health.Client(wrapping: client).check(request, options: unaryOptions).status
        }
    }

    private var unaryOptions: CallOptions {
        var options = CallOptions.defaults
        options.timeout = requestTimeout
        return options
    }

    private func withObserver<Result: Sendable>(
        _ body: (Observer_Observer.Client<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        try await withConnection { client in try await body(Observer_Observer.Client(wrapping: client)) }
    }

    private func withConnection<Result: Sendable>(
        _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        do {
            let transport = try HTTP2ClientTransport.Posix(target: ClientTarget.resolvable(target), transportSecurity: .plaintext)
            return try await withGRPCClient(transport: transport) { client in try await body(client) }
        } catch let error as RPCError {
            throw HubbleClientError(error)
        } catch let error as RuntimeError {
            throw HubbleClientError(code: .unavailable, message: error.description)
        }
    }
}
