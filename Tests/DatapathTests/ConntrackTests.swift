import Foundation
import MembraneTestSupport
import Testing
@testable import Datapath
import Policy
import PolicyAPI

/// A program in an endpoint's namespace that answers one line on stdout for each line on stdin.
final class Conversation: @unchecked Sendable {
    let process = Process()
    private let input = Pipe(), output = Pipe()
    private let lock = NSLock()
    private var buffer = ""
    private let arrived = DispatchSemaphore(value: 0)

    init(_ e: EndpointPlumbing, python script: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", e.netns, "python3", "-u", "-c", script]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        output.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            guard let self, !d.isEmpty else { return }
            self.lock.lock(); self.buffer += String(decoding: d, as: UTF8.self); self.lock.unlock()
            self.arrived.signal()
        }
        try process.run()
    }

    /// Sends a line; returns the answer line (nil when none came within `timeout` seconds).
    func ask(_ line: String, timeout: Double = 10) -> String? {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
        return read(timeout: timeout)
    }

    /// The next line the program prints (nil when none came within `timeout` seconds).
    func read(timeout: Double = 10) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            lock.lock()
            if let nl = buffer.firstIndex(of: "\n") {
                let answer = String(buffer[..<nl])
                buffer = String(buffer[buffer.index(after: nl)...])
                lock.unlock()
                return answer
            }
            lock.unlock()
            if arrived.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .timedOut { return nil }
        }
    }

    func stop() {
        output.fileHandleForReading.readabilityHandler = nil
        try? input.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

enum ConntrackScripts {
    /// Echoes every message of the one connection it accepts.
    static func tcpEchoServer(ip: String, port: Int, seconds: Double) -> String {
        """
        import socket
        s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("\(ip)",\(port))); s.listen(4); s.settimeout(\(seconds))
        c,_=s.accept(); c.settimeout(\(seconds))
        while True:
            d=c.recv(100)
            if not d: break
            c.sendall(d)
        """
    }

    /// One connection, opened at start ("connected" or "failed" first); then for each stdin line "MSG SECONDS":
    /// sends MSG and prints "ok" when anything comes back within SECONDS, else "timeout".
    static func tcpChatClient(ip: String, port: Int) -> String {
        """
        import socket,sys
        try:
            s=socket.create_connection(("\(ip)",\(port)),timeout=3); print("connected")
        except Exception: print("failed"); sys.exit(0)
        for line in sys.stdin:
            msg,secs=line.split()
            s.settimeout(float(secs))
            try:
                s.sendall(msg.encode())
                print("ok" if s.recv(100) else "closed")
            except socket.timeout: print("timeout")
            except Exception: print("error")
        """
    }

    /// Streams a datagram every 20 ms to whoever sent it the first one.
    static func udpStreamServer(ip: String, port: Int, seconds: Double) -> String {
        """
        import socket,time
        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("\(ip)",\(port))); s.settimeout(\(seconds))
        d,a=s.recvfrom(100)
        end=time.time()+\(seconds)
        while time.time()<end:
            s.sendto(b"tick",a); time.sleep(0.02)
        """
    }

    /// Sends one datagram (the flow this endpoint opens); then for each stdin line SECONDS prints how many
    /// datagrams arrived within that many seconds.
    static func udpStreamClient(ip: String, port: Int) -> String {
        """
        import socket,sys,time
        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(b"hi",("\(ip)",\(port)))
        for line in sys.stdin:
            end=time.time()+float(line); n=0
            while True:
                left=end-time.time()
                if left<=0: break
                s.settimeout(left)
                try:
                    s.recvfrom(100); n+=1
                except socket.timeout: pass
            print(n)
        """
    }
}

/// Established connections and policy changes: the conntrack entry records the policy and ipcache revisions
/// its verdict was computed under, and a change of either must take effect on the connection's next packet,
/// in both directions, with drops counted per reason.
extension EnforcementTests {
    static let nodePods: [(name: String, app: String, ip: String)] = [
        ("frontend", "frontend", "10.200.81.11"), ("backend", "backend", "10.200.81.12"), ("intruder", "intruder", "10.200.81.13")]

    func chat(_ node: Node, port: Int) throws -> (server: Process, client: Conversation) {
        let backend = node.endpoints["backend"]!.plumbing, frontend = node.endpoints["frontend"]!.plumbing
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["ip", "netns", "exec", backend.netns, "python3", "-c",
                            ConntrackScripts.tcpEchoServer(ip: backend.ipv4, port: port, seconds: 30)]
        try server.run()
        Thread.sleep(forTimeInterval: 0.3)
        let client = try Conversation(frontend, python: ConntrackScripts.tcpChatClient(ip: backend.ipv4, port: port))
        return (server, client)
    }

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func policyChangesApplyToEstablishedConnections() throws {
        let node = try Node(Self.nodePods)
        defer { node.tearDown() }
        try node.apply(Self.backendPolicy)
        let (server, client) = try chat(node, port: 8080)
        defer { client.stop(); server.terminate() }
        #expect(client.read() == "connected")
        #expect(client.ask("a 2") == "ok")

        // A change to the backend's policy that still allows the connection: checked again, and it passes.
        let deniedBefore = node.datapath.dropCount(.policyDenied, direction: .ingress)
        try node.apply(Self.backendPolicy.replacingOccurrences(of: "{port: \"8080\", protocol: TCP}",
                                                               with: "{port: \"8080\", protocol: TCP}, {port: \"9191\", protocol: TCP}"))
        #expect(client.ask("b 2") == "ok", "an established connection the new policy still allows")
        #expect(node.datapath.dropCount(.policyDenied, direction: .ingress) == deniedBefore)

        // The policy no longer allows it: the connection's next packet is dropped, and counted.
        try node.apply(Self.backendPolicy.replacingOccurrences(of: "app: frontend", with: "app: nobody"))
        #expect(client.ask("c 1.5") == "timeout", "an established connection the new policy denies")
        #expect(node.datapath.dropCount(.policyDenied, direction: .ingress) > deniedBefore)

        // Allowed again: the same connection resumes (its retransmissions get through).
        try node.apply(Self.backendPolicy)
        #expect(client.ask("d 8") == "ok", "the connection resumes when the policy allows it again")
    }

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func ipcacheChangesApplyToEstablishedConnections() throws {
        let node = try Node(Self.nodePods)
        defer { node.tearDown() }
        try node.apply(Self.backendPolicy)
        let (server, client) = try chat(node, port: 8080)
        defer { client.stop(); server.terminate() }
        #expect(client.read() == "connected")
        #expect(client.ask("a 2") == "ok")

        // The frontend's address now belongs to the intruder's identity (no policy map changes): the backend's
        // explicit deny applies to the established connection.
        let denyBefore = node.datapath.dropCount(.policyDeny, direction: .ingress)
        var cache: [IPPrefix: NumericIdentity] = [:]
        for e in node.endpoints.values { cache[IPPrefix(e.plumbing.ipv4 + "/32")!] = e.identity.id }
        cache[IPPrefix(node.endpoints["frontend"]!.plumbing.ipv4 + "/32")!] = node.endpoints["intruder"]!.identity.id
        try node.datapath.syncIPCache(cache)
        #expect(client.ask("b 1.5") == "timeout", "the peer's identity changed to a denied one")
        #expect(node.datapath.dropCount(.policyDeny, direction: .ingress) > denyBefore)

        try node.sync()
        #expect(client.ask("c 8") == "ok", "the peer's identity is allowed again")
    }

    /// Replies pass only while the endpoint's policy allows the connection: a stream of replies to a flow the
    /// endpoint opened stops when its egress policy no longer allows that flow.
    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func repliesStopWhenThePolicyNoLongerAllowsTheConnection() throws {
        let node = try Node(Self.nodePods)
        defer { node.tearDown() }
        func frontendEgress(_ port: Int) -> String {
            """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: frontend, namespace: prod}
            spec:
              endpointSelector: {matchLabels: {app: frontend}}
              egress:
              - toEndpoints: [{matchLabels: {app: backend}}]
                toPorts: [{ports: [{port: "\(port)", protocol: UDP}]}]
            """
        }
        try node.apply(frontendEgress(5353))
        let backend = node.endpoints["backend"]!.plumbing, frontend = node.endpoints["frontend"]!.plumbing
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["ip", "netns", "exec", backend.netns, "python3", "-c",
                            ConntrackScripts.udpStreamServer(ip: backend.ipv4, port: 5353, seconds: 30)]
        try server.run()
        defer { server.terminate() }
        Thread.sleep(forTimeInterval: 0.3)
        let client = try Conversation(frontend, python: ConntrackScripts.udpStreamClient(ip: backend.ipv4, port: 5353))
        defer { client.stop() }
        #expect((client.ask("0.6").flatMap { Int($0) } ?? 0) > 5, "replies to the flow the policy allows")

        let deniedBefore = node.datapath.dropCount(.policyDenied, direction: .ingress)
        try node.apply(frontendEgress(5354))
        _ = client.ask("0.2")   // what was on its way
        #expect(client.ask("0.6").flatMap { Int($0) } == 0, "replies after the policy stopped allowing the flow")
        #expect(node.datapath.dropCount(.policyDenied, direction: .ingress) > deniedBefore, "dropped replies are counted")

        try node.apply(frontendEgress(5353))
        #expect((client.ask("0.6").flatMap { Int($0) } ?? 0) > 5, "replies pass again once the policy allows the flow")
    }

    /// One conntrack entry per connection and endpoint, found by both directions, holding the revisions.
    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func oneConntrackEntryPerConnectionAndEndpoint() throws {
        let node = try Node(Self.nodePods)
        defer { node.tearDown() }
        try node.apply(Self.backendPolicy)
        let (server, client) = try chat(node, port: 8080)
        defer { client.stop(); server.terminate() }
        #expect(client.read() == "connected")
        #expect(client.ask("a 2") == "ok")
        let backend = node.endpoints["backend"]!, frontend = node.endpoints["frontend"]!
        let mine = node.datapath.conntrack.entries().filter { e in
            let owner = MapLayouts.readLE32(e.key, at: 40)
            return e.key[36] == IPProtocol.tcp && (owner == UInt32(backend.id) || owner == UInt32(frontend.id))
        }
        #expect(mine.count == 2, "one entry at the frontend (egress) and one at the backend (ingress): \(mine.count)")
        for e in mine {
            let v = try #require(MapLayouts.ConntrackValue(e.value))
            let owner = MapLayouts.readLE32(e.key, at: 40)
            #expect(v.direction == (owner == UInt32(frontend.id) ? MapLayouts.directionEgress : MapLayouts.directionIngress))
            #expect(v.policyRevision != 0 && v.ipcacheRevision != 0)
            // Local is the endpoint's side.
            let local = Array(e.key[0..<16]), ip = owner == UInt32(frontend.id) ? frontend.plumbing.ipv4 : backend.plumbing.ipv4
            #expect(local == MapLayouts.address16(IPAddress(ip)!))
        }
    }
}

/// Maps pinned by an older build: those whose layout changed are replaced (their entries carried over), the
/// others are adopted with their contents.
@Suite(.serialized)
struct PinnedLayoutTests {
    @Test(.enabled(if: EnforcementTests.privileged, "needs root (or CI)"))
    func olderConntrackIsReplacedAndTheRestAdopted() throws {
        let root = "/sys/fs/bpf/membrane-layout-\(getpid())"
        let object = FileManager.default.temporaryDirectory.appendingPathComponent("membrane-layout-\(getpid()).o")
        try BPFDatapath.compile(source: EnforcementTests.repo.appendingPathComponent("bpf/membrane.c"), output: object)
        defer { BPFDatapath.unpinAll(root: root) }
        try BPFDatapath.ensureBPFFS()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)

        // What a build with conntrack version 1 left: its conntrack map, with an entry of an egress connection
        // 10.0.0.1:40000 → 10.0.0.2:80 of endpoint 7.
        let v1 = try BPFMap.create(.lruHash, name: "conntrack", keySize: 44, valueSize: 24, maxEntries: 65536)
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let now = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        let a = MapLayouts.address16(IPAddress("10.0.0.1")!), b = MapLayouts.address16(IPAddress("10.0.0.2")!)
        let v1Key = a + b + MapLayouts.be16(40000) + MapLayouts.be16(80) + [IPProtocol.tcp, MapLayouts.directionEgress, 0, 0] + MapLayouts.le32(7)
        let lastSeen = (0..<8).map { UInt8(truncatingIfNeeded: now >> (8 * UInt64($0))) }
        try v1.update(v1Key, lastSeen + [5, 0, 0, 0, 0, 0, 0, 0] + MapLayouts.le32(21600) + MapLayouts.le32(0))
        try v1.pin("\(root)/conntrack")
        v1.close()

        do {
            let first = try BPFDatapath(objectFile: object, root: root)
            // The new conntrack holds the entry, written from the endpoint's side, to be checked again.
            let key = MapLayouts.conntrackKey(local: IPAddress("10.0.0.1")!, localPort: 40000, remote: IPAddress("10.0.0.2")!,
                                              remotePort: 80, protocol: IPProtocol.tcp, endpoint: 7)
            let v = try #require(first.conntrack.lookup(key).flatMap(MapLayouts.ConntrackValue.init))
            #expect(v.direction == MapLayouts.directionEgress && v.lifetime == 21600 && v.lastSeenNs == now)
            #expect(v.policyRevision == 0 && v.ipcacheRevision == 0)
            #expect(!FileManager.default.fileExists(atPath: "\(root)/conntrack"), "the older layout's pin is removed")
            #expect(FileManager.default.fileExists(atPath: "\(root)/conntrack_v2"))
            try first.endpoints.update(MapLayouts.endpointKey(ifindex: 424242), MapLayouts.endpointValue(id: 9, identity: 300, audit: false))
        }
        // A second load adopts the maps of the same layout with their contents, and continues the revisions.
        let second = try BPFDatapath(objectFile: object, root: root)
        #expect(second.endpoints.lookup(MapLayouts.endpointKey(ifindex: 424242)) != nil)
        #expect(second.conntrack.keys().count == 1)
        let counter = try #require(second.revisions.lookup(MapLayouts.le32(MapLayouts.revisionCounter)))
        let ipcacheRevision = try #require(second.revisions.lookup(MapLayouts.le32(MapLayouts.revisionIPCache)))
        #expect(MapLayouts.readLE32(counter, at: 0) == 2, "each load hands out one ipcache revision: 1, then 2")
        #expect(ipcacheRevision == counter)
    }
}
