import GRPCCore
import GRPCNIOTransportHTTP2Posix
import HubbleAPI
import ServiceLifecycle

/// Membrane's Hubble-compatible flow server: `observer.Observer` and `grpc.health.v1.Health`
/// over plaintext HTTP/2 (h2c, what the hubble CLI speaks by default) on a unix-domain
/// socket, a TCP address, or both.
///
/// One gRPC server per listener, sharing the same services: grpc-swift's server owns exactly
/// one transport. `run()` may be called once; it returns after graceful shutdown (follow
/// streams are ended with OK) or when its task is cancelled.
public final class HubbleServer: Service, Sendable {
    private let unixSocketPath: String?
    private let unixServer: GRPCServer<HTTP2ServerTransport.Posix>?
    private let tcpServer: GRPCServer<HTTP2ServerTransport.Posix>?
    private let shutdown = ShutdownSignal()

    /// - Parameters:
    ///   - unixSocketPath: where to listen on a unix socket (a stale socket file there is removed first).
    ///   - tcpAddress: IPv4/IPv6 literal or host name and port; port 0 picks a free port (see `tcpPort()`).
    public init(backend: any ObserverBackend, unixSocketPath: String?, tcpAddress: (host: String, port: Int)?) {
        let services: [any RegistrableRPCService] = [
            ObserverService(backend: backend, shutdown: shutdown),
            HealthService(shutdown: shutdown),
        ]
        self.unixSocketPath = unixSocketPath
        self.unixServer = unixSocketPath.map { path in
            GRPCServer(
                transport: HTTP2ServerTransport.Posix(address: .unixDomainSocket(path: path), transportSecurity: .plaintext),
                services: services)
        }
        self.tcpServer = tcpAddress.map { address in
            GRPCServer(
                transport: HTTP2ServerTransport.Posix(address: ListenAddress.tcp(host: address.host, port: address.port), transportSecurity: .plaintext),
                services: services)
        }
    }

    public func run() async throws {
        let servers = [unixServer, tcpServer].compactMap { $0 }
        guard !servers.isEmpty else { throw HubbleServerError.noListener }
        // The socket file is left behind on exit (a restarted agent may already own the path);
        // the next start removes it.
        if let unixSocketPath { try UnixSocketFile.prepare(path: unixSocketPath) }

        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for server in servers {
                    group.addTask { try await server.serve() }
                }
            }
        } onGracefulShutdown: {
            self.beginGracefulShutdown()
        }
    }

    /// Stops accepting RPCs, reports NOT_SERVING, and ends open GetFlows streams with OK.
    public func beginGracefulShutdown() {
        shutdown.fire()
        unixServer?.beginGracefulShutdown()
        tcpServer?.beginGracefulShutdown()
    }

    /// The bound TCP port (useful with port 0); waits until the listener is bound, nil without TCP.
    public func tcpPort() async throws -> Int? {
        guard let tcpServer else { return nil }
        let address = try await tcpServer.transport.listeningAddress
        return address.ipv4?.port ?? address.ipv6?.port
    }

    /// Waits until the unix socket is bound and returns its path; nil without a unix listener.
    public func unixSocketListening() async throws -> String? {
        guard let unixServer else { return nil }
        return try await unixServer.transport.listeningAddress.unixDomainSocket?.path
    }
}

public enum HubbleServerError: Error, CustomStringConvertible {
    case noListener
    case socketPathOccupied(String)

    public var description: String {
        switch self {
        case .noListener: "Hubble server needs a unix socket path or a TCP address"
        case .socketPathOccupied(let path): "\(path) exists and is not a socket; refusing to replace it"
        }
    }
}
