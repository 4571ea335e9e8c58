/// Where a Hubble server is, parsed from the same strings the hubble CLI accepts for
/// `--server`, so `membrane observe --server X` and `hubble observe --server X` agree.
public enum HubbleTarget: Equatable, Sendable, CustomStringConvertible {
    case unixSocket(path: String)
    case tcp(host: String, port: Int)

    /// The hubble CLI's default server.
    public static let defaultPort = 4245

    /// Accepts "unix:///abs/path", "unix:/abs/path", "unix:relative", "host:port", "[v6]:port",
    /// and a bare host (port 4245). TLS ("tls://…") is not supported: Membrane serves h2c only.
    public init(parsing text: String) throws {
        if text.hasPrefix("unix:") {
            var rest = Substring(text.dropFirst("unix:".count))
            // "unix://" + absolute path: the authority is empty, keep the path's leading slash.
            if rest.hasPrefix("//") { rest = rest.dropFirst(2) }
            guard !rest.isEmpty else { throw HubbleTargetError.invalid(text, "missing socket path") }
            self = .unixSocket(path: String(rest))
            return
        }
        guard !text.contains("://") else { throw HubbleTargetError.invalid(text, "only unix: and host:port targets are supported (plaintext)") }

        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw HubbleTargetError.invalid(text, "unterminated IPv6 literal") }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if after.isEmpty { self = .tcp(host: host, port: Self.defaultPort); return }
            guard after.hasPrefix(":"), let port = Self.port(after.dropFirst()) else { throw HubbleTargetError.invalid(text, "bad port") }
            self = .tcp(host: host, port: port)
            return
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1 where !text.isEmpty:
            self = .tcp(host: text, port: Self.defaultPort)
        case 2 where !parts[0].isEmpty:
            guard let port = Self.port(parts[1]) else { throw HubbleTargetError.invalid(text, "bad port") }
            self = .tcp(host: String(parts[0]), port: port)
        default:
            throw HubbleTargetError.invalid(text, "expected host:port or unix:///path")
        }
    }

    public var description: String {
        switch self {
        case .unixSocket(let path): "unix://\(path)"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    private static func port(_ text: Substring) -> Int? {
        guard let port = Int(text), (1...65535).contains(port) else { return nil }
        return port
    }
}

public enum HubbleTargetError: Error, CustomStringConvertible {
    case invalid(String, String)

    public var description: String {
        switch self {
        case .invalid(let target, let why): "invalid Hubble server \"\(target)\": \(why)"
        }
    }
}
