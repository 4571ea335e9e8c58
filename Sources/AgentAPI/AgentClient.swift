import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small blocking HTTP/1.1 client over the agent's unix socket (URLSession has no unix sockets on Linux).
public struct AgentClient: Sendable {
    public var socketPath: String

    public init(socketPath: String? = nil) {
        self.socketPath = socketPath ?? ProcessInfo.processInfo.environment[AgentAPI.socketEnvironment] ?? AgentAPI.defaultSocket
    }

    public struct Failure: Error, CustomStringConvertible {
        public var status: Int
        public var message: String
        public var description: String { status == 0 ? message : "agent: \(message) (HTTP \(status))" }
    }

    /// Sends a request; returns the body of a 2xx answer, throws `Failure` otherwise.
    public func request(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json") throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(status: 0, message: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw Failure(status: 0, message: "socket path too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in pathBytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            throw Failure(status: 0, message: "cannot reach the agent at \(socketPath): \(String(cString: strerror(errno))) (is membrane-agent running? set --socket or \(AgentAPI.socketEnvironment))")
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: membrane\r\nConnection: close\r\n"
        if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" } else { head += "Content-Length: 0\r\n" }
        head += "\r\n"
        var out = Data(head.utf8)
        if let body { out.append(body) }
        try out.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw Failure(status: 0, message: "send: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
        var response = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        guard let split = response.range(of: Data("\r\n\r\n".utf8)) else { throw Failure(status: 0, message: "malformed answer from the agent") }
        let headText = String(decoding: response[..<split.lowerBound], as: UTF8.self)
        let status = Int(headText.split(separator: " ").dropFirst().first ?? "") ?? 0
        var payload = Data(response[split.upperBound...])
        if headText.lowercased().contains("transfer-encoding: chunked") { payload = AgentClient.dechunk(payload) }
        guard (200..<300).contains(status) else {
            let message = (try? JSONDecoder().decode(ErrorJSON.self, from: payload).error) ?? String(decoding: payload, as: UTF8.self)
            throw Failure(status: status, message: message)
        }
        return payload
    }

    public func get<T: Decodable>(_ path: String, as type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: request("GET", path))
    }

    public func send<B: Encodable, T: Decodable>(_ method: String, _ path: String, _ body: B, as type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: request(method, path, body: JSONEncoder().encode(body)))
    }

    static func dechunk(_ data: Data) -> Data {
        var out = Data()
        var rest = data[...]
        while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
            let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self), radix: 16) ?? 0
            if size == 0 { break }
            let start = lineEnd.upperBound
            guard rest.distance(from: start, to: rest.endIndex) >= size else { break }
            let end = rest.index(start, offsetBy: size)
            out.append(rest[start..<end])
            rest = rest[min(rest.index(end, offsetBy: 2, limitedBy: rest.endIndex) ?? rest.endIndex, rest.endIndex)...]
        }
        return out
    }
}
