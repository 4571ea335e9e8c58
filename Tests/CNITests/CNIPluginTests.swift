import Foundation
import MembraneTestSupport
import Testing

/// The real `membrane-cni` binary, driven as a container runtime drives it (environment and stdin), against
/// a real agent: network namespaces the test creates, endpoints wired into them, policy enforced on real
/// traffic, CHECK, DEL, GC and STATUS, and the errors the specification asks for.
@Suite(.serialized)
struct CNIPluginTests {
    static let privileged = getuid() == 0 || ProcessInfo.processInfo.environment["CI"] != nil

    @Test func privilegedSkipNotice() {
        if !Self.privileged { print("CNIPluginTests: skipping privileged CNI tests (not root and CI unset)") }
    }

    static func config(socket: String, version: String = "1.0.0", extra: String = "") -> String {
        """
        {"cniVersion": "\(version)", "name": "membrane-test", "type": "membrane-cni", "socket": "\(socket)"\(extra.isEmpty ? "" : ", " + extra)}
        """
    }

    /// Runs the plugin: a command, the runtime's variables, and a configuration.
    static func cni(_ command: String?, containerID: String? = nil, netns: String? = nil, ifname: String? = "eth0",
                    args: String? = nil, config: String) throws -> ProcessResult {
        var env: [String: String] = ["CNI_PATH": "/opt/cni/bin"]
        env["CNI_COMMAND"] = command
        env["CNI_CONTAINERID"] = containerID
        env["CNI_NETNS"] = netns
        env["CNI_IFNAME"] = ifname
        env["CNI_ARGS"] = args
        return try runProcess(BuiltProducts.path("membrane-cni"), env: env, stdin: config)
    }

    // MARK: Without an agent

    @Test func versionReportsTheSupportedVersions() throws {
        let r = try Self.cni("VERSION", config: #"{"cniVersion": "0.4.0"}"#)
        #expect(r.status == 0)
        #expect(r.json["cniVersion"] as? String == "0.4.0")
        #expect(r.json["supportedVersions"] as? [String] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        let empty = try Self.cni("VERSION", config: "")
        #expect(empty.status == 0 && empty.json["cniVersion"] as? String == "1.1.0")
    }

    @Test func errorsCarryTheSpecificationsCodes() throws {
        let socket = "/nonexistent/membrane-cnitest.sock"
        let good = Self.config(socket: socket)
        func expectError(_ r: ProcessResult, code: Int, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(r.status != 0, "\(what): exit status", sourceLocation: sourceLocation)
            #expect(r.json["code"] as? Int == code, "\(what): \(r.out)", sourceLocation: sourceLocation)
            #expect(!(r.json["msg"] as? String ?? "").isEmpty && r.json["cniVersion"] != nil, "\(what): \(r.out)", sourceLocation: sourceLocation)
        }
        expectError(try Self.cni("ADD", containerID: "c1", netns: "/proc/self/ns/net", config: "{not json"), code: 6, "bad JSON")
        expectError(try Self.cni(nil, containerID: "c1", netns: "/proc/self/ns/net", config: good), code: 4, "no CNI_COMMAND")
        expectError(try Self.cni("ADD", containerID: "c1", netns: nil, config: good), code: 4, "no CNI_NETNS")
        expectError(try Self.cni("ADD", containerID: "c1", netns: "/proc/self/ns/net", config: Self.config(socket: socket, version: "0.2.0")),
                    code: 1, "unsupported cniVersion")
        expectError(try Self.cni("ADD", containerID: "c1", netns: "/proc/self/ns/net", config: #"{"cniVersion": "1.0.0", "type": "membrane-cni"}"#),
                    code: 7, "no network name")
        expectError(try Self.cni("CHECK", containerID: "c1", netns: "/proc/self/ns/net", config: Self.config(socket: socket, version: "0.3.1")),
                    code: 1, "CHECK before 0.4.0")
        expectError(try Self.cni("ADD", containerID: "c1", netns: "/nonexistent/netns", config: good), code: 3, "no such namespace")
        expectError(try Self.cni("ADD", containerID: "c1", netns: "/proc/self/ns/net", config: good), code: 11, "agent unreachable")
        expectError(try Self.cni("STATUS", config: Self.config(socket: socket, version: "1.1.0")), code: 50, "STATUS, agent unreachable")
        // DEL without an agent and without a namespace has nothing to remove.
        let del = try Self.cni("DEL", containerID: "c1", netns: nil, config: good)
        #expect(del.status == 0 && del.out.isEmpty, "\(del.out)")
    }

    // MARK: With an agent

    /// An agent with its own socket, state, bpf root and pod CIDR, and the network namespaces the test made.
    /// An agent of the test's own (see `AgentProcess`, no metrics), with the namespaces, host interfaces and
    /// servers the test makes, all removed by `tearDown`.
    final class Harness: AgentProcess, @unchecked Sendable {
        var namespaces: [String] = []
        var hostInterfaces: [String] = []
        var processes: [Process] = []

        init(cidr: String) throws {
            try super.init(name: "cnitest", cidr: cidr, metrics: false)
        }

        /// A network namespace made as a runtime makes it (`ip netns add`); its path.
        func netns() throws -> String {
            let name = "cnitest-\(getpid())-\(namespaces.count + 1)"
            namespaces.append(name)
            let r = try runCommand(["ip", "netns", "add", name])
            #expect(r.status == 0, "ip netns add \(name): \(r.err)")
            return "/var/run/netns/\(name)"
        }

        var config: String { CNIPluginTests.config(socket: socket) }

        /// ADD, expecting success; returns the result.
        func add(_ containerID: String, netns: String, pod: (String, String)? = nil, config: String? = nil) throws -> [String: Any] {
            let args = pod.map { "IgnoreUnknown=1;K8S_POD_NAMESPACE=\($0.0);K8S_POD_NAME=\($0.1);K8S_POD_INFRA_CONTAINER_ID=\(containerID)" }
            let r = try CNIPluginTests.cni("ADD", containerID: containerID, netns: netns, args: args, config: config ?? self.config)
            #expect(r.status == 0, "ADD \(containerID): \(r.out) \(r.err)")
            let result = r.json
            if let host = (result["interfaces"] as? [[String: Any]])?.first?["name"] as? String { hostInterfaces.append(host) }
            return result
        }

        /// The /32 address of an ADD result.
        static func ip(_ result: [String: Any]) -> String {
            ((result["ips"] as? [[String: Any]])?.first?["address"] as? String ?? "").components(separatedBy: "/")[0]
        }

        /// A TCP server answering "ok" inside a namespace (by path), for `seconds`.
        func serve(netns: String, ip: String, port: Int, seconds: Double = 30) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            p.arguments = ["--net=\(netns)", "python3", "-c", TrafficScripts.tcpServer(ip: ip, port: port, seconds: seconds)]
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            processes.append(p)
            Thread.sleep(forTimeInterval: 0.4)
        }

        func connects(from netns: String, to ip: String, port: Int) throws -> Int {
            TrafficScripts.count(try runCommand(["nsenter", "--net=\(netns)", "python3", "-c", TrafficScripts.tcpProbe(ip: ip, port: port)]).out)
        }

        override func tearDown() {
            // SIGKILL: children of the test runner may inherit an ignored SIGTERM.
            for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            super.tearDown()
            for name in hostInterfaces where if_nametoindex(name) != 0 { _ = try? runCommand(["ip", "link", "del", "dev", name]) }
            for name in namespaces { _ = try? runCommand(["ip", "netns", "del", name]) }
        }
    }

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func addEnforceCheckAndDelete() throws {
        let h = try Harness(cidr: "10.231.0.0/24")
        defer { h.tearDown() }
        // db's labels come from a Pod in the agent's manifests, web's from args.cni.labels, other's from the config.
        try """
            apiVersion: v1
            kind: Pod
            metadata: {name: db, namespace: prod, labels: {app: db, tier: data}}
            spec: {serviceAccountName: db-sa}
            """.write(toFile: h.manifests + "/pods.yaml", atomically: true, encoding: .utf8)
        Thread.sleep(forTimeInterval: 0.5)
        let (webNS, dbNS, otherNS) = (try h.netns(), try h.netns(), try h.netns())
        let web = try h.add("web-ctr-1", netns: webNS, pod: ("prod", "web"),
                            config: Self.config(socket: h.socket, extra: #""args": {"cni": {"labels": [{"key": "app", "value": "web"}]}}"#))
        let db = try h.add("db-ctr-1", netns: dbNS, pod: ("prod", "db"))
        let other = try h.add("other-ctr-1", netns: otherNS, pod: ("prod", "other"),
                              config: Self.config(socket: h.socket, extra: #""labels": {"app": "other"}"#))

        // The result, as the specification lays it out.
        #expect(web["cniVersion"] as? String == "1.0.0")
        let interfaces = web["interfaces"] as? [[String: Any]] ?? []
        #expect(interfaces.count == 2)
        #expect((interfaces.first?["name"] as? String ?? "").hasPrefix("mbh") && interfaces.first?["sandbox"] == nil)
        #expect(interfaces.last?["name"] as? String == "eth0" && interfaces.last?["sandbox"] as? String == webNS)
        #expect((interfaces.last?["mac"] as? String ?? "").count == 17)
        let ips = web["ips"] as? [[String: Any]] ?? []
        let webIP = Harness.ip(web), dbIP = Harness.ip(db), otherIP = Harness.ip(other)
        #expect(ips.count == 1 && webIP.hasPrefix("10.231.0.") && ips.first?["address"] as? String == "\(webIP)/32")
        #expect(ips.first?["gateway"] as? String == "169.254.1.1" && ips.first?["interface"] as? Int == 1 && ips.first?["version"] == nil)
        let routes = web["routes"] as? [[String: Any]] ?? []
        #expect(routes.count == 1 && routes.first?["dst"] as? String == "0.0.0.0/0" && routes.first?["gw"] as? String == "169.254.1.1")
        #expect(web["dns"] is [String: Any])
        #expect(Set([webIP, dbIP, otherIP]).count == 3)

        // The namespace got eth0 with the address, and the default route.
        let addr = try runCommand(["ip", "-n", h.namespaces[0], "-o", "-4", "addr", "show", "dev", "eth0"])
        #expect(addr.out.contains("inet \(webIP)/32"), "\(addr.out)")
        let route = try runCommand(["ip", "-n", h.namespaces[0], "route", "show", "default"])
        #expect(route.out.contains("via 169.254.1.1 dev eth0"), "\(route.out)")

        // The agent lists them like any endpoint; labels from the args, the config and the manifests' Pod.
        let list = try h.endpoints()
        #expect(list.count == 3)
        func endpoint(_ name: String) -> [String: Any] { list.first { $0["name"] as? String == name } ?? [:] }
        #expect(endpoint("web")["containerID"] as? String == "web-ctr-1" && endpoint("web")["netnsPath"] as? String == webNS)
        #expect(endpoint("web")["netns"] as? String == h.namespaces[0])
        #expect((endpoint("web")["identityLabels"] as? [String] ?? []).contains("k8s:app=web"))
        #expect((endpoint("other")["identityLabels"] as? [String] ?? []).contains("k8s:app=other"))
        #expect((endpoint("db")["identityLabels"] as? [String] ?? []).contains("k8s:app=db"))
        #expect((endpoint("db")["identityLabels"] as? [String] ?? []).contains("k8s:io.cilium.k8s.policy.serviceaccount=db-sa"))
        let table = try h.cli(["endpoint", "list"])
        #expect(table.out.contains("prod/web") && table.out.contains(webIP))
        let exec = try h.cli(["endpoint", "exec", "prod/web", "--", "ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        #expect(exec.out.contains(webIP), "endpoint exec enters the runtime's namespace: \(exec.err)")

        // Policy applied through the CLI is enforced between CNI-added pods.
        try h.serve(netns: dbNS, ip: dbIP, port: 5432)
        #expect(try h.connects(from: otherNS, to: dbIP, port: 5432) == 1, "no policy yet")
        #expect(try h.cli(["policy", "apply", "-f", "-"], stdin: TestPolicies.db).status == 0)
        #expect(try h.connects(from: webNS, to: dbIP, port: 5432) == 1, "web → db:5432 allowed")
        #expect(try h.connects(from: otherNS, to: dbIP, port: 5432) == 0, "other → db:5432 denied (times out)")

        // CHECK: as ADD left it, also against prevResult.
        let check = try Self.cni("CHECK", containerID: "web-ctr-1", netns: webNS, config: h.config)
        #expect(check.status == 0 && check.out.isEmpty, "\(check.out)")
        let prev = String(decoding: try JSONSerialization.data(withJSONObject: web), as: UTF8.self)
        let withPrev = try Self.cni("CHECK", containerID: "web-ctr-1", netns: webNS,
                                    config: Self.config(socket: h.socket, extra: "\"prevResult\": \(prev)"))
        #expect(withPrev.status == 0, "\(withPrev.out)")
        let wrongNS = try Self.cni("CHECK", containerID: "web-ctr-1", netns: dbNS, config: h.config)
        #expect(wrongNS.status != 0 && wrongNS.json["code"] as? Int == 103)
        let unknown = try Self.cni("CHECK", containerID: "nope", netns: webNS, config: h.config)
        #expect(unknown.status != 0 && unknown.json["code"] as? Int == 102)

        // An agent killed and restarted adopts the endpoints with their container IDs; enforcement holds.
        h.kill9()
        try h.start()
        #expect(try Self.cni("CHECK", containerID: "web-ctr-1", netns: webNS, config: h.config).status == 0)
        #expect(try h.connects(from: otherNS, to: dbIP, port: 5432) == 0)
        #expect(try h.connects(from: webNS, to: dbIP, port: 5432) == 1)

        // CHECK fails once the interface is gone.
        #expect(try runCommand(["ip", "-n", h.namespaces[2], "link", "del", "dev", "eth0"]).status == 0)
        let broken = try Self.cni("CHECK", containerID: "other-ctr-1", netns: otherNS, config: h.config)
        #expect(broken.status != 0 && broken.json["code"] as? Int == 103, "\(broken.out)")
        #expect((broken.json["details"] as? String ?? "").contains("eth0"), "\(broken.out)")
        #expect(try Self.cni("DEL", containerID: "other-ctr-1", netns: otherNS, config: h.config).status == 0)

        // DEL removes the veth, the host route, the endpoint and its policy map; the namespace stays, the runtime's.
        let webEndpoint = endpoint("web")
        let host = webEndpoint["hostInterface"] as? String ?? ""
        let del = try Self.cni("DEL", containerID: "web-ctr-1", netns: webNS, config: h.config)
        #expect(del.status == 0 && del.out.isEmpty, "\(del.out)")
        #expect(if_nametoindex(host) == 0, "host veth \(host) removed")
        #expect(try runCommand(["ip", "-4", "route", "show", "exact", "\(webIP)/32"]).out.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: h.bpfRoot + "/policy_\(webEndpoint["id"] as? Int ?? 0)"))
        #expect(FileManager.default.fileExists(atPath: webNS), "the runtime's namespace is left alone")
        #expect(try runCommand(["ip", "-n", h.namespaces[0], "link", "show", "dev", "eth0"]).status != 0)
        #expect(try h.endpoints().map { $0["name"] as? String } == ["db"])
        let again = try Self.cni("DEL", containerID: "web-ctr-1", netns: webNS, config: h.config)
        #expect(again.status == 0, "a second DEL succeeds: \(again.out)")

        // DEL after the runtime removed the namespace succeeds too.
        #expect(try runCommand(["ip", "netns", "del", h.namespaces[1]]).status == 0)
        #expect(try Self.cni("DEL", containerID: "db-ctr-1", netns: dbNS, config: h.config).status == 0)
        #expect(try h.endpoints().isEmpty)
        for name in h.hostInterfaces { #expect(if_nametoindex(name) == 0, "\(name) left behind") }
    }

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func procNamespacesOldResultsStatusGCAndConflicts() throws {
        let h = try Harness(cidr: "10.231.1.0/24")
        defer { h.tearDown() }
        // A namespace known only by a process's path, as some runtimes pass it.
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        sleeper.arguments = ["--net", "sleep", "60"]
        try sleeper.run()
        h.processes.append(sleeper)
        let procNS = "/proc/\(sleeper.processIdentifier)/ns/net"
        // Until unshare has run, the process is still in the test's own namespace.
        let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        for _ in 0..<100 where (try? FileManager.default.destinationOfSymbolicLink(atPath: procNS)) ?? own == own {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: procNS) != own, "unshare --net did not take effect")
        let a = try h.add("ctr-a", netns: procNS, config: Self.config(socket: h.socket, version: "0.3.1"))
        #expect(a["cniVersion"] as? String == "0.3.1")
        #expect((a["ips"] as? [[String: Any]])?.first?["version"] as? String == "4", "0.3.x results carry the IP version")
        let eps = try h.endpoints()
        #expect(eps.first?["namespace"] as? String == "default" && eps.first?["name"] as? String == "cni-ctr-a")
        #expect(eps.first?["netns"] as? String == procNS)
        let exec = try h.cli(["endpoint", "exec", "default/cni-ctr-a", "--", "ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        #expect(exec.out.contains(Harness.ip(a)), "exec by path: \(exec.err)")

        // A second ADD for the same container, or the same interface in a namespace, is refused.
        let b = try h.netns()
        let twice = try Self.cni("ADD", containerID: "ctr-a", netns: b, config: h.config)
        #expect(twice.status != 0 && twice.json["code"] as? Int == 100, "\(twice.out)")
        let sameIf = try Self.cni("ADD", containerID: "ctr-x", netns: procNS, config: h.config)
        #expect(sameIf.status != 0 && sameIf.json["code"] as? Int == 100, "\(sameIf.out)")
        #expect(try h.endpoints().count == 1, "a refused ADD leaves nothing behind")

        // STATUS: the agent answers.
        let status = try Self.cni("STATUS", config: Self.config(socket: h.socket, version: "1.1.0"))
        #expect(status.status == 0 && status.out.isEmpty, "\(status.out)")

        // GC keeps the attachments the runtime lists, and removes the rest of this network's.
        _ = try h.add("ctr-b", netns: b)
        let gc = try Self.cni("GC", config: Self.config(socket: h.socket, version: "1.1.0",
                                                         extra: #""cni.dev/valid-attachments": [{"containerID": "ctr-b", "ifname": "eth0"}]"#))
        #expect(gc.status == 0, "\(gc.out)")
        #expect(try h.endpoints().compactMap { $0["containerID"] as? String } == ["ctr-b"])

        // DEL while the agent is down removes the interface itself; the restarted agent drops the endpoint.
        let bHost = try h.endpoints().first?["hostInterface"] as? String ?? ""
        h.kill9()
        let offline = try Self.cni("DEL", containerID: "ctr-b", netns: b, config: h.config)
        #expect(offline.status == 0, "\(offline.out)")
        #expect(try runCommand(["nsenter", "--net=\(b)", "ip", "link", "show", "dev", "eth0"]).status != 0)
        #expect(if_nametoindex(bHost) == 0)
        try h.start()
        #expect(try h.endpoints().isEmpty)
        #expect(try Self.cni("DEL", containerID: "ctr-b", netns: b, config: h.config).status == 0)

        // The process's namespace goes with the process; DEL then has nothing left to do, and succeeds.
        kill(sleeper.processIdentifier, SIGKILL); sleeper.waitUntilExit()
        #expect(try Self.cni("DEL", containerID: "ctr-a", netns: procNS, config: h.config).status == 0)
        #expect(try h.endpoints().isEmpty)
    }
}
