#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import GRPCNIOTransportHTTP2Posix

/// Maps a `HubbleTarget` onto grpc-swift's name resolution.
enum ClientTarget {
    static func resolvable(_ target: HubbleTarget) -> any ResolvableTarget {
        switch target {
        case .unixSocket(let path):
            // The hubble CLI sends ":authority: localhost" on unix sockets; do the same.
            return ResolvableTargets.UnixDomainSocket(address: .init(path: path), authority: "localhost")
        case .tcp(let host, let port):
            // Literals skip the resolver so "127.0.0.1" never turns into a DNS lookup.
            if isLiteral(host, family: AF_INET) { return ResolvableTargets.IPv4(addresses: [.init(host: host, port: port)]) }
            if isLiteral(host, family: AF_INET6) { return ResolvableTargets.IPv6(addresses: [.init(host: host, port: port)]) }
            return ResolvableTargets.DNS(host: host, port: port)
        }
    }

    private static func isLiteral(_ host: String, family: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(family, host, &buffer) == 1
    }
}
