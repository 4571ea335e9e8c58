import GRPCNIOTransportHTTP2Posix

/// Turns the (host, port) the agent is configured with into a transport address.
enum ListenAddress {
    /// An IPv6 literal (it contains ':'; brackets allowed) binds IPv6, anything else IPv4,
    /// because the transport binds literals, not names; "localhost" is mapped to 127.0.0.1.
    static func tcp(host: String, port: Int) -> SocketAddress {
        var host = host
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.contains(":") { return .ipv6(host: host, port: port) }
        if host.isEmpty || host == "localhost" { host = host.isEmpty ? "0.0.0.0" : "127.0.0.1" }
        return .ipv4(host: host, port: port)
    }
}
