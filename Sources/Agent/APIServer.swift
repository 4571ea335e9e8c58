import AgentAPI
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import PolicyAPI
import ServiceLifecycle

/// Routes an API request to the agent. Blocking work runs on a thread pool, never on the event loop.
struct APIRouter: Sendable {
    let agent: Agent

    func handle(method: HTTPMethod, uri: String, body: Data) -> (HTTPResponseStatus, Data) {
        let path = uri.split(separator: "?").first.map(String.init) ?? uri
        let query = APIRouter.query(uri)
        var parts = path.split(separator: "/").map { $0.removingPercentEncoding ?? String($0) }
        guard parts.first == "v1" else { return failure(.notFound, "unknown path \(path)") }
        parts.removeFirst()
        do {
            switch (method, parts.first ?? "") {
            case (.GET, "status"): return try ok(agent.status())
            case (.GET, "identities"): return try ok(agent.listIdentities())
            case (.GET, "endpoints") where parts.count == 1:
                if let cid = query["containerID"] {
                    return try ok(agent.endpoints(containerID: cid, verify: query["verify"] == "true" || query["verify"] == "1"))
                }
                return try ok(agent.listEndpoints())
            case (.DELETE, "endpoints") where parts.count == 1:
                guard let cid = query["containerID"] else { return failure(.badRequest, "DELETE /v1/endpoints needs ?containerID=") }
                try agent.deleteEndpoints(containerID: cid)
                return (.noContent, Data())
            case (.POST, "endpoints") where parts.count == 1:
                return try ok(agent.createEndpoint(JSONDecoder().decode(CreateEndpointRequest.self, from: body)), status: .created)
            case (.PATCH, "endpoints") where parts.count >= 3 && parts.last == "labels":
                let selector = parts[1..<(parts.count - 1)].joined(separator: "/")
                return try ok(agent.setLabels(selector, labels: JSONDecoder().decode(LabelsRequest.self, from: body).labels))
            case (.GET, "endpoints"): return try ok(agent.endpoint(parts.dropFirst().joined(separator: "/")))
            case (.DELETE, "endpoints"):
                try agent.deleteEndpoint(parts.dropFirst().joined(separator: "/"))
                return (.noContent, Data())
            case (.GET, "policies"): return try ok(agent.listPolicies())
            case (.PUT, "policies"), (.POST, "policies"):
                return try ok(agent.applyPolicies(yaml: String(decoding: body, as: UTF8.self)))
            case (.DELETE, "policies") where parts.count == 4:
                guard let kind = ResourceKind(rawValue: parts[1]) else { return failure(.badRequest, "unknown kind \(parts[1])") }
                try agent.deletePolicy(ResourceRef(kind: kind, namespace: parts[2] == "-" ? nil : parts[2], name: parts[3]))
                return (.noContent, Data())
            case (.GET, "bpf") where parts.count >= 3 && parts[1] == "policy":
                return try ok(agent.bpfPolicy(parts.dropFirst(2).joined(separator: "/")))
            default:
                return failure(.notFound, "no route for \(method) \(path)")
            }
        } catch let e as AgentError {
            return failure(HTTPResponseStatus(statusCode: e.status), e.description)
        } catch let e as DecodingError {
            return failure(.badRequest, "malformed request body: \(e)")
        } catch {
            return failure(.internalServerError, "\(error)")
        }
    }

    /// The query parameters of a request URI (percent-decoded; `+` is not a space here).
    static func query(_ uri: String) -> [String: String] {
        guard let q = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return [:] }
        var out: [String: String] = [:]
        for item in q.split(separator: "&") {
            let kv = item.split(separator: "=", maxSplits: 1).map { $0.removingPercentEncoding ?? String($0) }
            out[kv[0]] = kv.count == 2 ? kv[1] : ""
        }
        return out
    }

    func ok<T: Encodable>(_ value: T, status: HTTPResponseStatus = .ok) throws -> (HTTPResponseStatus, Data) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (status, try enc.encode(value))
    }

    func failure(_ status: HTTPResponseStatus, _ message: String) -> (HTTPResponseStatus, Data) {
        (status, (try? JSONEncoder().encode(ErrorJSON(error: message))) ?? Data())
    }
}

final class APIHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let router: APIRouter
    let pool: NIOThreadPool
    private var head: HTTPRequestHead?
    private var body = Data()

    init(router: APIRouter, pool: NIOThreadPool) { self.router = router; self.pool = pool }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h; body = Data()
        case .body(var b): body.append(contentsOf: b.readBytes(length: b.readableBytes) ?? [])
        case .end:
            guard let head else { return }
            let (router, method, uri, body) = (self.router, head.method, head.uri, self.body)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let keepAlive = head.isKeepAlive
            pool.runIfActive(eventLoop: context.eventLoop) { router.handle(method: method, uri: uri, body: body) }
                .whenComplete { result in
                    let context = bound.value
                    let (status, payload) = (try? result.get()) ?? (.internalServerError, Data())
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: "application/json")
                    headers.add(name: "Content-Length", value: String(payload.count))
                    headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
                    context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                    var buffer = context.channel.allocator.buffer(capacity: payload.count)
                    buffer.writeBytes(payload)
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                        if !keepAlive { bound.value.close(promise: nil) }
                    }
                }
        }
    }
}

/// The REST API on a unix socket, as a service of the agent's service group.
public struct APIServer: Service {
    let agent: Agent
    let socketPath: String
    let logger: Logger

    public init(agent: Agent, socketPath: String, logger: Logger) { self.agent = agent; self.socketPath = socketPath; self.logger = logger }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        try FileManager.default.createDirectory(atPath: (socketPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let router = APIRouter(agent: agent)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(APIHandler(router: router, pool: pool))
                }
            }
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true).get()
        logger.info("API listening on \(socketPath)")
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        try await pool.shutdownGracefully()
    }
}

/// Watches the manifests directory (`kubectl apply`-like): files added, changed and removed take effect.
public struct ManifestWatcher: Service {
    let agent: Agent
    let directory: String
    let interval: Duration
    let logger: Logger

    public init(agent: Agent, directory: String, interval: Duration = .milliseconds(20), logger: Logger) {
        self.agent = agent; self.directory = directory; self.interval = interval; self.logger = logger
    }

    struct Stamp: Equatable { var size: UInt64; var modified: Date }

    static func scan(_ directory: String) -> [String: Stamp] {
        var out: [String: Stamp] = [:]
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: directory) else { return out }
        while let rel = e.nextObject() as? String {
            guard rel.hasSuffix(".yaml") || rel.hasSuffix(".yml") || rel.hasSuffix(".json") else { continue }
            let path = directory + "/" + rel
            if let a = try? fm.attributesOfItem(atPath: path), (a[.type] as? FileAttributeType) == .typeRegular {
                out[path] = Stamp(size: (a[.size] as? UInt64) ?? 0, modified: (a[.modificationDate] as? Date) ?? .distantPast)
            }
        }
        return out
    }

    public func run() async throws {
        var seen: [String: Stamp] = [:]
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = ManifestWatcher.scan(directory)
            for (path, stamp) in now.sorted(by: { $0.key < $1.key }) where seen[path] != stamp {
                let errors = agent.syncManifestFile(path, contents: try? String(contentsOfFile: path, encoding: .utf8))
                if errors.isEmpty { logger.info("applied \(path)") }
            }
            for path in seen.keys where now[path] == nil {
                agent.syncManifestFile(path, contents: nil)
                logger.info("removed \(path)")
            }
            seen = now
            try? await Task.sleep(for: interval)
        }
    }
}
