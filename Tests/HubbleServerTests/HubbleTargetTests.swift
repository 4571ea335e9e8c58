import HubbleClient
import Testing

/// `--server` strings as the hubble CLI accepts them (reference §2).
@Suite("Hubble target parsing")
struct HubbleTargetTests {
    @Test(arguments: [
        ("unix:///run/membrane/hubble.sock", HubbleTarget.unixSocket(path: "/run/membrane/hubble.sock")),
        ("unix:/run/membrane/hubble.sock", .unixSocket(path: "/run/membrane/hubble.sock")),
        ("unix:relative.sock", .unixSocket(path: "relative.sock")),
        ("localhost:4245", .tcp(host: "localhost", port: 4245)),
        ("127.0.0.1:4244", .tcp(host: "127.0.0.1", port: 4244)),
        ("[::1]:4245", .tcp(host: "::1", port: 4245)),
        ("hubble.example", .tcp(host: "hubble.example", port: 4245)),
    ])
    func parses(text: String, expected: HubbleTarget) throws {
        #expect(try HubbleTarget(parsing: text) == expected)
    }

    @Test(arguments: ["", "unix:", "tls://localhost:4245", "host:notaport", "host:0", ":4245", "[::1"])
    func rejects(text: String) {
        #expect(throws: HubbleTargetError.self) { try HubbleTarget(parsing: text) }
    }
}
