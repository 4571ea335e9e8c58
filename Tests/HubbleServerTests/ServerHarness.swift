#if canImport(Glibc)
import Glibc
#endif
import HubbleServer

/// Starts a HubbleServer on a fresh unix socket and an ephemeral 127.0.0.1 port for one test.
struct ServerHarness {
    let server: HubbleServer
    let socketPath: String
    let port: Int
    let runTask: Task<Void, any Error>

    var unixTarget: String { "unix://\(socketPath)" }
    var tcpTarget: String { "127.0.0.1:\(port)" }

    static func start(backend: any ObserverBackend) async throws -> ServerHarness {
        let socketPath = try makeTemporaryDirectory() + "/hubble.sock"
        let server = HubbleServer(backend: backend, unixSocketPath: socketPath, tcpAddress: (host: "127.0.0.1", port: 0))
        let runTask = Task { try await server.run() }
        let port = try await server.tcpPort()
        _ = try await server.unixSocketListening()
        return ServerHarness(server: server, socketPath: socketPath, port: port ?? 0, runTask: runTask)
    }

    /// Graceful shutdown, then waits for `run()` to return.
    func stop() async throws {
        server.beginGracefulShutdown()
        try await runTask.value
    }

    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/hubble-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError.noTemporaryDirectory }
        return String(cString: made)
    }
}

enum HarnessError: Error { case noTemporaryDirectory, timedOut(String) }

/// Polls `condition` every 20 ms for up to `seconds`.
func eventually(_ what: String, seconds: Double = 5, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while !condition() {
        guard ContinuousClock.now < deadline else { throw HarnessError.timedOut(what) }
        try await Task.sleep(for: .milliseconds(20))
    }
}
