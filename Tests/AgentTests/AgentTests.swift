import Foundation
import MembraneTestSupport
import Testing

/// The real agent and the real CLI: endpoints in network namespaces, policies applied through the API and the
/// manifests directory, real traffic, and an agent killed with SIGKILL and restarted under that traffic.
@Suite(.serialized)
struct AgentTests {
    static let privileged = getuid() == 0 || ProcessInfo.processInfo.environment["CI"] != nil

    @Test func privilegedSkipNotice() {
        if !Self.privileged { print("AgentTests: skipping privileged agent tests (not root and CI unset)") }
    }

    /// An agent of the test's own (see `AgentProcess`), with endpoint and traffic helpers.
    final class Harness: AgentProcess, @unchecked Sendable {
        init(cidr: String, extraArgs: [String] = []) throws {
            try super.init(name: "agenttest", cidr: cidr, extraArgs: extraArgs)
        }

        func create(_ ns: String, _ name: String, labels: String) throws -> [String: Any] {
            try json(["endpoint", "create", "--namespace", ns, "--name", name, "--labels", labels]) as? [String: Any] ?? [:]
        }

        /// A TCP server answering "ok" inside an endpoint, for `seconds`.
        func serve(_ endpoint: String, ip: String, port: Int, seconds: Int = 20) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: BuiltProducts.path("membrane"))
            p.arguments = ["endpoint", "exec", endpoint, "--", "python3", "-c",
                           TrafficScripts.tcpServer(ip: ip, port: port, seconds: Double(seconds))]
            var env = ProcessInfo.processInfo.environment
            env["MEMBRANE_SOCKET"] = socket
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            Thread.sleep(forTimeInterval: 0.4)
            return p
        }

        /// Connects `count` times, `interval` apart, from an endpoint; returns how many got "ok".
        /// With `netns`, runs in that namespace directly (no agent needed, e.g. while it is down).
        func connects(from endpoint: String, to ip: String, port: Int, count: Int = 1, interval: Double = 0, netns: String? = nil) throws -> Int {
            let launcher = netns.map { ["ip", "netns", "exec", $0] } ?? ["endpoint", "exec", endpoint, "--"]
            let argv = launcher + ["python3", "-c", TrafficScripts.tcpProbe(ip: ip, port: port, count: count, interval: interval)]
            let r = try netns == nil ? cli(argv) : runCommand(argv)
            return TrafficScripts.count(r.out)
        }

        /// Whether the host itself (the root network namespace) gets an answer.
        func hostConnects(to ip: String, port: Int) throws -> Bool {
            TrafficScripts.count(try runCommand(["python3", "-c", TrafficScripts.tcpProbe(ip: ip, port: port)]).out) == 1
        }
    }

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func endpointsPoliciesAndLabelsThroughTheCLI() throws {
        let h = try Harness(cidr: "10.203.1.0/24")
        defer { h.tearDown() }
        let web = try h.create("prod", "web", labels: "app=web")
        let db = try h.create("prod", "db", labels: "app=db,tier=data")
        let other = try h.create("prod", "other", labels: "app=other")
        let dbIP = db["ipv4"] as? String ?? ""
        #expect(web["netns"] as? String != nil && (web["identity"] as? Int ?? 0) >= 256)
        let server = try h.serve("prod/db", ip: dbIP, port: 5432, seconds: 30)
        defer { server.terminate() }

        #expect(try h.connects(from: "prod/other", to: dbIP, port: 5432) == 1, "no policy yet")

        // An invalid policy is rejected with the validator's error and changes nothing.
        let bad = try h.cli(["policy", "apply", "-f", "-"], stdin: TestPolicies.db.replacingOccurrences(of: "toPorts", with: "toPort"))
        #expect(bad.status != 0)
        #expect(bad.err.contains("unknown field \"toPort\""))
        #expect(try h.connects(from: "prod/other", to: dbIP, port: 5432) == 1)

        #expect(try h.cli(["policy", "apply", "-f", "-"], stdin: TestPolicies.db).status == 0)
        #expect(try h.connects(from: "prod/web", to: dbIP, port: 5432) == 1)
        #expect(try h.connects(from: "prod/other", to: dbIP, port: 5432) == 0)
        #expect(try h.hostConnects(to: dbIP, port: 5432), "the local host may reach local endpoints (allow-localhost)")
        let policies = try h.json(["policy", "get"]) as? [[String: Any]] ?? []
        #expect(policies.contains { $0["name"] as? String == "db" })

        // The kernel's map, read back.
        let entries = try h.json(["bpf", "policy", "get", "prod/db"]) as? [[String: Any]] ?? []
        #expect(entries.contains { $0["identity"] as? Int == web["identity"] as? Int && $0["port"] as? String == "5432/TCP" })
        let list = try h.json(["endpoint", "list"]) as? [[String: Any]] ?? []
        #expect(list.first { $0["name"] as? String == "db" }?["ingressEnforcement"] as? String == "Enabled")

        // New labels, new identity: the datapath follows.
        let relabelled = try h.json(["endpoint", "labels", "prod/other", "--labels", "app=web"]) as? [String: Any] ?? [:]
        #expect(relabelled["identity"] as? Int == web["identity"] as? Int)
        #expect(try h.connects(from: "prod/other", to: dbIP, port: 5432) == 1)

        // A policy from the manifests directory takes effect, and goes when the file goes.
        let file = h.manifests + "/deny.yaml"
        try """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: deny-other, namespace: prod}
            spec:
              endpointSelector: {matchLabels: {app: db}}
              ingressDeny:
              - fromEndpoints: [{matchLabels: {app: web}}]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try h.connects(from: "prod/web", to: dbIP, port: 5432) == 0, "deny from the manifests directory wins")
        try FileManager.default.removeItem(atPath: file)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try h.connects(from: "prod/web", to: dbIP, port: 5432) == 1)

        // Deleting an endpoint removes its namespace, link and pinned policy map.
        let otherID = other["id"] as? Int ?? 0
        #expect(try h.cli(["endpoint", "delete", "prod/other"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: h.bpfRoot + "/policy_\(otherID)"))
        #expect(if_nametoindex(other["hostInterface"] as? String ?? "x") == 0)
        let status = try h.json(["status"]) as? [String: Any] ?? [:]
        #expect(status["endpoints"] as? Int == 2)
    }

    @Test(.enabled(if: privileged, "needs root (or CI)"))
    func killNineUnderTrafficBreaksNothingAndLetsNothingThrough() throws {
        let h = try Harness(cidr: "10.203.2.0/24")
        defer { h.tearDown() }
        let web = try h.create("prod", "web", labels: "app=web")
        let db = try h.create("prod", "db", labels: "app=db")
        let other = try h.create("prod", "other", labels: "app=other")
        let dbIP = db["ipv4"] as? String ?? ""
        #expect(try h.cli(["policy", "apply", "-f", "-"], stdin: TestPolicies.db).status == 0)
        let server = try h.serve("prod/db", ip: dbIP, port: 5432, seconds: 40)
        defer { server.terminate() }

        // Continuous traffic from both sides while the agent is killed and restarted.
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var counts: [String: Int] = [:]
            func set(_ k: String, _ v: Int) { lock.lock(); counts[k] = v; lock.unlock() }
        }
        let results = Results()
        let group = DispatchGroup()
        for (endpoint, key) in [(web, "allowed"), (other, "denied")] {
            let netns = endpoint["netns"] as? String ?? ""
            group.enter()
            DispatchQueue.global().async {
                results.set(key, (try? h.connects(from: "", to: dbIP, port: 5432, count: 40, interval: 0.05, netns: netns)) ?? -1)
                group.leave()
            }
        }
        Thread.sleep(forTimeInterval: 0.7)
        h.kill9()
        Thread.sleep(forTimeInterval: 0.5)
        try h.start()
        group.wait()
        #expect(results.counts["allowed"] == 40, "every allowed connection succeeded")
        #expect(results.counts["denied"] == 0, "no denied connection got through")

        // The restarted agent adopted the endpoints and the policy.
        let eps = try h.json(["endpoint", "list"]) as? [[String: Any]] ?? []
        #expect(eps.count == 3)
        #expect(try h.connects(from: "prod/other", to: dbIP, port: 5432) == 0)
    }
}
