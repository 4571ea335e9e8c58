import Foundation
import Testing
@testable import Datapath

// MARK: - Helpers

enum PlumbingTestSupport {
    /// Privileged tests run as root, or whenever CI is set (CI is expected to provide the privileges).
    static var privileged: Bool { Plumbing.isRoot || ProcessInfo.processInfo.environment["CI"] != nil }

    static let skipMessage = "PlumbingTests: skipping privileged network-namespace tests (not root and CI unset)"

    static var python: String {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
    }

    /// A description matching what `createEndpoint(id:name:ipv4:)` would produce, for removing stale state left
    /// by an earlier, interrupted run.
    static func stale(_ id: UInt16, _ ipv4: String) -> EndpointPlumbing {
        EndpointPlumbing(name: "stale", netns: "mb-ep-\(id)", hostInterface: "mbh\(id)", hostIfindex: 0,
                         containerInterface: "eth0", ipv4: ipv4, mac: "")
    }

    static func removeStale(_ pairs: [(UInt16, String)]) {
        for (id, ip) in pairs { try? Plumbing.deleteEndpoint(stale(id, ip)) }
    }

    /// Host routes for `ipv4/32` (empty when there are none).
    static func hostRoute(_ ipv4: String) -> String {
        let out = (try? PlumbingRunner.run("ip", ["-4", "route", "show", "exact", "\(ipv4)/32"]))?.stdout ?? ""
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func netnsList() -> String {
        (try? PlumbingRunner.run("ip", ["netns", "list"]))?.stdout ?? ""
    }

    /// Runs `body` on its own thread; the returned closure waits for and returns its result.
    static func background<T: Sendable>(_ body: @escaping @Sendable () -> T) -> () -> T {
        let slot = PlumbingSlot<T>()
        Thread {
            slot.value = body()
            slot.done.signal()
        }.start()
        return {
            slot.done.wait()
            return slot.value!
        }
    }

    static let tcpServer = """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.listen(1)
    s.settimeout(8)
    c, addr = s.accept()
    c.settimeout(5)
    data = c.recv(1024)
    c.sendall(data)
    c.close()
    s.close()
    print(addr[0])
    """

    static let tcpClient = """
    import socket, sys, time
    deadline = time.time() + 6
    while True:
        try:
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    s.sendall(sys.argv[3].encode())
    print(s.recv(1024).decode(), end="")
    s.close()
    """

    static let udpServer = """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.settimeout(8)
    data, addr = s.recvfrom(1024)
    s.sendto(data, addr)
    s.close()
    print(addr[0])
    """

    static let udpClient = """
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    deadline = time.time() + 6
    while True:
        s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
        try:
            data, _ = s.recvfrom(1024)
            print(data.decode(), end="")
            break
        except socket.timeout:
            if time.time() > deadline:
                raise
    """
}

/// Result slot filled by a background thread (written once before `done` is signalled).
final class PlumbingSlot<T: Sendable>: @unchecked Sendable {
    var value: T?
    let done = DispatchSemaphore(value: 0)
}

// MARK: - Unprivileged unit tests

@Suite struct PlumbingUnitTests {
    @Test func privilegedSkipNotice() {
        if !PlumbingTestSupport.privileged { print(PlumbingTestSupport.skipMessage) }
    }

    @Test func invalidIPv4ThrowsWithoutCreatingAnything() {
        let before = Plumbing.leftovers()
        for bad in ["", "abc", "10.200.77", "10.200.77.300", "10.200.77.1/32", " 10.200.77.1", "010.200.77.1",
                    "10.200.77.1.5", "-1.2.3.4", "127.0.0.1", "0.0.0.0", "169.254.1.1", "224.0.0.1", "10.200.77.x"] {
            #expect(throws: PlumbingError.self, "\(bad)") {
                _ = try Plumbing.createEndpoint(id: 47790, name: "bad", ipv4: bad)
            }
            do {
                _ = try Plumbing.createEndpoint(id: 47790, name: "bad", ipv4: bad)
            } catch let PlumbingError.invalid(message) {
                #expect(!message.isEmpty)
            } catch {
                Issue.record("expected .invalid for \(bad), got \(error)")
            }
        }
        let after = Plumbing.leftovers()
        #expect(!after.netns.contains("mb-ep-47790"))
        #expect(!after.links.contains("mbh47790"))
        #expect(!after.links.contains("mbc47790"))
        // Only this suite's IDs (477xx): other suites create endpoints of their own at the same time.
        #expect(Set(after.netns).subtracting(before.netns).filter { $0.hasPrefix("mb-ep-477") }.isEmpty)
    }

    @Test func ipv4Canonicalisation() {
        #expect(Plumbing.canonicalIPv4("10.200.77.1") == "10.200.77.1")
        #expect(Plumbing.canonicalIPv4("10.0.0.0") == "10.0.0.0")
        #expect(Plumbing.canonicalIPv4("192.168.255.254") == "192.168.255.254")
        #expect(Plumbing.canonicalIPv4("10.200.077.1") == nil)
        #expect(Plumbing.canonicalIPv4("10.200.77.256") == nil)
    }

    @Test func nameSanitising() {
        #expect(Plumbing.sanitize("prod-backend-1", id: 1) == "prod-backend-1")
        #expect(Plumbing.sanitize("prod/backend 1", id: 1) == "prod-backend-1")
        #expect(Plumbing.sanitize("  ", id: 7) == "ep-7")
        #expect(Plumbing.sanitize(String(repeating: "a", count: 100), id: 1).count == 63)
    }

    @Test func parsesLinkLines() {
        let line = "7: mbh12@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT "
            + "group default qlen 1000\\    link/ether 3a:9a:b3:3d:53:89 brd ff:ff:ff:ff:ff:ff link-netns mb-ep-12"
        let info = Plumbing.parseLinkLine(line)
        #expect(info?.ifindex == 7)
        #expect(info?.name == "mbh12")
        #expect(info?.mac == "3a:9a:b3:3d:53:89")
    }

    @Test func processRunnerCapturesStdinStdoutStatusAndTimeout() throws {
        let cat = try PlumbingRunner.run("cat", [], timeout: 5, stdin: "hello\n")
        #expect(cat.status == 0)
        #expect(cat.stdout == "hello\n")

        let fail = try PlumbingRunner.run("sh", ["-c", "echo out; echo err >&2; exit 3"], timeout: 5)
        #expect(fail.status == 3)
        #expect(fail.stdout == "out\n")
        #expect(fail.stderr == "err\n")

        let start = Date()
        let slow = try PlumbingRunner.run("sleep", ["30"], timeout: 0.5)
        #expect(slow.timedOut)
        #expect(slow.status == PlumbingRunner.timeoutStatus)
        #expect(Date().timeIntervalSince(start) < 10)

        // A command that never reads its stdin must not take the test process down with SIGPIPE.
        let big = String(repeating: "x", count: 1 << 20)
        let noRead = try PlumbingRunner.run("true", [], timeout: 5, stdin: big)
        #expect(noRead.status == 0)
    }

    @Test func failingCommandReportsFullCommandLine() {
        do {
            try PlumbingRunner.check("ip", ["link", "show", "dev", "mbh-no-such-link"])
            Issue.record("expected failure")
        } catch let PlumbingError.command(cmd, status, stderr) {
            #expect(cmd.contains("ip link show dev mbh-no-such-link"))
            #expect(status != 0)
            #expect(!stderr.isEmpty)
        } catch {
            Issue.record("unexpected error \(error)")
        }
        #expect(throws: PlumbingError.self) { try PlumbingRunner.run("no-such-tool-membrane", []) }
    }
}

// MARK: - Privileged tests (network namespaces, veths, routes)

@Suite(.serialized) struct PlumbingPrivilegedTests {
    typealias S = PlumbingTestSupport

    @Test(.enabled(if: PlumbingTestSupport.privileged, "needs root (or CI)"))
    func prepareHostIsIdempotent() throws {
        try Plumbing.prepareHost()
        try Plumbing.prepareHost()
        let forward = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8)
        #expect(forward.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
    }

    @Test(.enabled(if: PlumbingTestSupport.privileged, "needs root (or CI)"))
    func twoEndpointsReachEachOther() throws {
        let ip1 = "10.200.77.1", ip2 = "10.200.77.2"
        S.removeStale([(47701, ip1), (47702, ip2)])
        try Plumbing.prepareHost()

        let ep1 = try Plumbing.createEndpoint(id: 47701, name: "test/client 1", ipv4: ip1)
        defer { try? Plumbing.deleteEndpoint(ep1) }
        let ep2 = try Plumbing.createEndpoint(id: 47702, name: "test-server-2", ipv4: ip2)
        defer { try? Plumbing.deleteEndpoint(ep2) }

        // The description.
        #expect(ep1.name == "test-client-1")
        #expect(ep1.netns == "mb-ep-47701")
        #expect(ep1.hostInterface == "mbh47701")
        #expect(ep1.containerInterface == "eth0")
        #expect(ep1.ipv4 == ip1)
        #expect(ep1.hostIfindex > 0)
        #expect(ep1.hostIfindex != ep2.hostIfindex)
        #expect(ep1.mac.range(of: #"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"#, options: .regularExpression) != nil)
        let hostIndex = try String(contentsOfFile: "/sys/class/net/\(ep1.hostInterface)/ifindex", encoding: .utf8)
        #expect(Int32(hostIndex.trimmingCharacters(in: .whitespacesAndNewlines)) == ep1.hostIfindex)

        // Host and namespace state.
        #expect(S.hostRoute(ip1).contains("dev mbh47701"))
        #expect(S.hostRoute(ip2).contains("dev mbh47702"))
        let left = Plumbing.leftovers()
        #expect(left.netns.contains("mb-ep-47701") && left.netns.contains("mb-ep-47702"))
        #expect(left.links.contains("mbh47701") && left.links.contains("mbh47702"))
        let addr = try Plumbing.exec(ep1, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        #expect(addr.status == 0 && addr.stdout.contains("\(ip1)/32"))
        let mac = try Plumbing.exec(ep1, ["cat", "/sys/class/net/eth0/address"])
        #expect(mac.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ep1.mac)
        let routes = try Plumbing.exec(ep1, ["ip", "-4", "route", "show"])
        #expect(routes.stdout.contains("default via 169.254.1.1 dev eth0"))
        let lo = try Plumbing.exec(ep1, ["ip", "-o", "link", "show", "dev", "lo"])
        #expect(lo.stdout.contains("UP"))

        // ICMP, both directions.
        let ping12 = try Plumbing.exec(ep1, ["ping", "-c", "1", "-W", "2", ip2], timeout: 10)
        #expect(ping12.status == 0, "ping \(ip1) -> \(ip2): \(ping12.stdout) \(ping12.stderr)")
        let ping21 = try Plumbing.exec(ep2, ["ping", "-c", "1", "-W", "2", ip1], timeout: 10)
        #expect(ping21.status == 0, "ping \(ip2) -> \(ip1): \(ping21.stdout) \(ping21.stderr)")

        // TCP echo: server in ep2 (bounded lifetime), client in ep1.
        let tcpServer = S.background {
            Result { try Plumbing.exec(ep2, [S.python, "-c", S.tcpServer, ip2, "47777"], timeout: 12) }
        }
        let tcpClient = try Plumbing.exec(ep1, [S.python, "-c", S.tcpClient, ip2, "47777", "hello-tcp"], timeout: 12)
        let tcpServed = try tcpServer().get()
        #expect(tcpClient.status == 0, "tcp client: \(tcpClient.stderr)")
        #expect(tcpClient.stdout == "hello-tcp")
        #expect(tcpServed.status == 0, "tcp server: \(tcpServed.stderr)")
        #expect(tcpServed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ip1, "no NAT: source is \(ip1)")

        // UDP exchange: server in ep1, client in ep2.
        let udpServer = S.background {
            Result { try Plumbing.exec(ep1, [S.python, "-c", S.udpServer, ip1, "47778"], timeout: 12) }
        }
        let udpClient = try Plumbing.exec(ep2, [S.python, "-c", S.udpClient, ip1, "47778", "hello-udp"], timeout: 12)
        let udpServed = try udpServer().get()
        #expect(udpClient.status == 0, "udp client: \(udpClient.stderr)")
        #expect(udpClient.stdout == "hello-udp")
        #expect(udpServed.status == 0, "udp server: \(udpServed.stderr)")
        #expect(udpServed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ip2)

        // Teardown leaves nothing behind.
        try Plumbing.deleteEndpoint(ep1)
        try Plumbing.deleteEndpoint(ep2)
        let after = Plumbing.leftovers()
        for ns in ["mb-ep-47701", "mb-ep-47702"] { #expect(!after.netns.contains(ns)) }
        for link in ["mbh47701", "mbh47702", "mbc47701", "mbc47702"] { #expect(!after.links.contains(link)) }
        #expect(S.hostRoute(ip1).isEmpty)
        #expect(S.hostRoute(ip2).isEmpty)
        let list = S.netnsList()
        #expect(!list.contains("mb-ep-47701") && !list.contains("mb-ep-47702"))
    }

    @Test(.enabled(if: PlumbingTestSupport.privileged, "needs root (or CI)"))
    func deleteIsIdempotent() throws {
        let ip = "10.200.77.3"
        S.removeStale([(47703, ip)])
        let ep = try Plumbing.createEndpoint(id: 47703, name: "idem", ipv4: ip)
        defer { try? Plumbing.deleteEndpoint(ep) }
        try Plumbing.deleteEndpoint(ep)
        try Plumbing.deleteEndpoint(ep)
        #expect(!Plumbing.leftovers().netns.contains(ep.netns))
        #expect(!Plumbing.leftovers().links.contains(ep.hostInterface))
        #expect(S.hostRoute(ip).isEmpty)
        // Deleting something never created is fine too.
        try Plumbing.deleteEndpoint(S.stale(47789, "10.200.77.89"))
        // Partially removed: only the namespace is left.
        let ep2 = try Plumbing.createEndpoint(id: 47703, name: "idem", ipv4: ip)
        defer { try? Plumbing.deleteEndpoint(ep2) }
        _ = try PlumbingRunner.check("ip", ["link", "del", "dev", ep2.hostInterface])
        try Plumbing.deleteEndpoint(ep2)
        #expect(!S.netnsList().contains(ep2.netns))
    }

    @Test(.enabled(if: PlumbingTestSupport.privileged, "needs root (or CI)"))
    func refusesToClobberAndToDeleteForeignObjects() throws {
        let ip = "10.200.77.5"
        S.removeStale([(47705, ip), (47706, "10.200.77.6")])
        let ep = try Plumbing.createEndpoint(id: 47705, name: "first", ipv4: ip)
        defer { try? Plumbing.deleteEndpoint(ep) }

        // Same id again: rejected, and the first endpoint is untouched.
        #expect(throws: PlumbingError.self) { _ = try Plumbing.createEndpoint(id: 47705, name: "again", ipv4: "10.200.77.6") }
        // Same address under another id: rejected (the host route exists), nothing new left behind.
        #expect(throws: PlumbingError.self) { _ = try Plumbing.createEndpoint(id: 47706, name: "dup", ipv4: ip) }
        #expect(!Plumbing.leftovers().netns.contains("mb-ep-47706"))
        #expect(!Plumbing.leftovers().links.contains("mbh47706"))
        #expect(S.hostRoute(ip).contains("dev mbh47705"))
        let still = try Plumbing.exec(ep, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        #expect(still.stdout.contains("\(ip)/32"))

        var foreign = ep
        foreign.hostInterface = "eth0"
        #expect(throws: PlumbingError.self) { try Plumbing.deleteEndpoint(foreign) }
        foreign = ep
        foreign.netns = "default"
        #expect(throws: PlumbingError.self) { try Plumbing.deleteEndpoint(foreign) }
    }

    @Test(.enabled(if: PlumbingTestSupport.privileged, "needs root (or CI)"))
    func execTimeoutAndStdin() throws {
        let ip = "10.200.77.4"
        S.removeStale([(47704, ip)])
        let ep = try Plumbing.createEndpoint(id: 47704, name: "exec", ipv4: ip)
        defer { try? Plumbing.deleteEndpoint(ep) }

        let echo = try Plumbing.exec(ep, ["cat"], stdin: "via-stdin")
        #expect(echo.status == 0)
        #expect(echo.stdout == "via-stdin")

        let start = Date()
        let slow = try Plumbing.exec(ep, ["sleep", "30"], timeout: 1)
        #expect(slow.status == PlumbingRunner.timeoutStatus)
        #expect(Date().timeIntervalSince(start) < 10)

        let failing = try Plumbing.exec(ep, ["sh", "-c", "exit 7"])
        #expect(failing.status == 7)

        #expect(throws: PlumbingError.self) { _ = try Plumbing.exec(ep, []) }
    }
}
