import AgentAPI
import Foundation

/// The `membrane-cni` plugin: one CNI command, carried out against the agent's REST API.
///
/// ADD asks the agent for an endpoint in the runtime's network namespace (a veth named `CNI_IFNAME`, an address
/// from the agent's pod CIDR, the identity of the pod's labels, its policy in eBPF) and prints the result. DEL
/// removes it by container ID and succeeds when there is nothing to remove. CHECK asks the agent to verify the
/// endpoint's plumbing. STATUS succeeds when the agent answers; GC removes this network's endpoints whose
/// attachment the runtime no longer lists.
public struct CNIPlugin {
    /// The label of the pod's namespace and name in `CNI_ARGS`, as Kubernetes runtimes pass them.
    public static let podNamespaceArg = "K8S_POD_NAMESPACE"
    public static let podNameArg = "K8S_POD_NAME"

    public var environment: [String: String]
    public var stdin: Data

    public init(environment: [String: String], stdin: Data) { self.environment = environment; self.stdin = stdin }

    /// What the plugin prints and its exit status.
    public struct Outcome {
        public var stdout: Data
        public var status: Int32
    }

    public func run() -> Outcome {
        var version = CNIVersion.latest
        do throws(CNIError) {
            let env = try CNIEnvironment(environment)
            if env.command == .version { return printVersion() }
            let config = try NetworkConfig(stdin)
            guard CNIVersion.supported.contains(config.cniVersion) else {
                throw .incompatibleVersion("incompatible CNI version \(config.cniVersion)",
                                           details: "membrane-cni supports \(CNIVersion.supported.joined(separator: ", "))")
            }
            version = config.cniVersion
            let since: [CNICommand: String] = [.check: "0.4.0", .status: "1.1.0", .gc: "1.1.0"]
            if let minimum = since[env.command], !CNIVersion.atLeast(version, minimum) {
                throw .incompatibleVersion("\(env.command.rawValue) needs cniVersion \(minimum) or later, the configuration has \(version)")
            }
            let client = AgentClient(socketPath: config.socket)
            switch env.command {
            case .add: return try output(add(env, config, client).json(cniVersion: version))
            case .del: try del(env, config, client)
            case .check: try check(env, config, client)
            case .status: try status(client)
            case .gc: try gc(config, client)
            case .version: break
            }
            return Outcome(stdout: Data(), status: 0)
        } catch {
            var out = output(error.json(cniVersion: version))
            out.status = 1
            return out
        }
    }

    func output(_ object: [String: Any]) -> Outcome {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return Outcome(stdout: data + Data("\n".utf8), status: 0)
    }

    func printVersion() -> Outcome {
        // The input's cniVersion when the plugin supports it, else the latest; stdin may be empty.
        let asked = (try? JSONSerialization.jsonObject(with: stdin) as? [String: Any])?["cniVersion"] as? String
        let version = asked.flatMap { CNIVersion.supported.contains($0) ? $0 : nil } ?? CNIVersion.latest
        return output(["cniVersion": version, "supportedVersions": CNIVersion.supported])
    }

    // MARK: Commands

    /// The endpoint's namespace and name: the pod's, from `CNI_ARGS`; else the configuration's namespace (or
    /// "default") and `cni-` and the first 12 characters of the container ID.
    static func workload(_ env: CNIEnvironment, _ config: NetworkConfig) -> (namespace: String, name: String) {
        let namespace = env.args[podNamespaceArg].flatMap { $0.isEmpty ? nil : $0 } ?? config.namespace ?? "default"
        if let name = env.args[podNameArg], !name.isEmpty { return (namespace, name) }
        let id = (env.containerID ?? "").lowercased().map { $0 == "_" ? "-" : $0 }
        return (namespace, "cni-" + String(id.prefix(12)))
    }

    func add(_ env: CNIEnvironment, _ config: NetworkConfig, _ client: AgentClient) throws(CNIError) -> CNIResult {
        let netns = env.netns!, ifname = env.ifname!, containerID = env.containerID!
        guard FileManager.default.fileExists(atPath: netns) else {
            throw .unknownContainer("the network namespace \(netns) does not exist")
        }
        let (namespace, name) = CNIPlugin.workload(env, config)
        let request = CreateEndpointRequest(namespace: namespace, name: name, labels: config.labels, netnsPath: netns,
                                            interfaceName: ifname, containerID: containerID, cniNetwork: config.name)
        let e: EndpointJSON = try agent("ADD") { try client.send("POST", "/v1/endpoints", request) }
        return CNIResult(
            interfaces: [CNIResult.Interface(name: e.hostInterface),
                         CNIResult.Interface(name: e.interfaceName ?? ifname, mac: e.mac, sandbox: netns)],
            ips: [CNIResult.IPConfig(address: "\(e.ipv4)/32", gateway: CNIPlugin.gateway, interface: 1)],
            routes: [CNIResult.Route(dst: "0.0.0.0/0", gw: CNIPlugin.gateway)])
    }

    /// The link-local next hop every endpoint routes through (the host veth answers it).
    public static let gateway = "169.254.1.1"

    /// Idempotent: no endpoint for the container, or no namespace any more, is success. When the agent cannot be
    /// reached, the interface is removed from the namespace directly (with the veth, its host side and route go);
    /// the agent drops the endpoint when it next starts and finds the interface gone.
    func del(_ env: CNIEnvironment, _ config: NetworkConfig, _ client: AgentClient) throws(CNIError) {
        let containerID = env.containerID!
        let path = "/v1/endpoints?containerID=" + (containerID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? containerID)
        do {
            _ = try client.request("DELETE", path)
        } catch let f as AgentClient.Failure where f.status == 404 {
            return
        } catch let f as AgentClient.Failure where f.status == 0 {
            if let netns = env.netns, let ifname = env.ifname, FileManager.default.fileExists(atPath: netns) {
                try CNIPlugin.deleteVeth(netns: netns, ifname: ifname)
            }
        } catch {
            throw CNIPlugin.mapFailure(error, "DEL")
        }
    }

    /// Removes `ifname` from the namespace when it is a veth (nothing else of the container is touched).
    static func deleteVeth(netns: String, ifname: String) throws(CNIError) {
        let show = run(["nsenter", "--net=\(netns)", "ip", "-d", "-o", "link", "show", "dev", ifname])
        guard show.status == 0 else { return }  // no such interface: nothing to do
        guard show.out.contains(" veth ") else { return }
        let del = run(["nsenter", "--net=\(netns)", "ip", "link", "del", "dev", ifname])
        if del.status != 0 {
            throw .tryAgainLater("the agent is unreachable and \(ifname) could not be removed from \(netns)", details: del.err)
        }
    }

    func check(_ env: CNIEnvironment, _ config: NetworkConfig, _ client: AgentClient) throws(CNIError) {
        let containerID = env.containerID!
        let path = "/v1/endpoints?containerID=" + (containerID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? containerID) + "&verify=true"
        let found: [EndpointJSON] = try agent("CHECK") { try client.get(path) }
        guard let e = found.first else { throw .endpointMissing("the agent has no endpoint for container \(containerID)") }
        var problems = e.problems ?? []
        if let have = e.netnsPath, have != env.netns { problems.append("the endpoint is in \(have), not in \(env.netns!)") }
        if let have = e.interfaceName, have != env.ifname { problems.append("the endpoint's interface is \(have), not \(env.ifname!)") }
        if let previous = config.previousAddresses, !previous.contains("\(e.ipv4)/32") {
            problems.append("prevResult has \(previous), the endpoint has \(e.ipv4)/32")
        }
        if !problems.isEmpty {
            throw .endpointBroken("endpoint \(e.id) (\(e.namespace)/\(e.name)) of container \(containerID) is not as ADD left it",
                                  details: problems.joined(separator: "; "))
        }
    }

    func status(_ client: AgentClient) throws(CNIError) {
        do { _ = try client.request("GET", "/v1/status") } catch {
            throw .notAvailable("the Membrane agent is not available", details: "\(error)")
        }
    }

    func gc(_ config: NetworkConfig, _ client: AgentClient) throws(CNIError) {
        guard let valid = config.validAttachments else { return }
        let keep = Set(valid.map { "\($0.containerID)/\($0.ifname)" })
        let all: [EndpointJSON] = try agent("GC") { try client.get("/v1/endpoints") }
        for e in all where e.cniNetwork == config.name {
            guard let cid = e.containerID, !keep.contains("\(cid)/\(e.interfaceName ?? "")") else { continue }
            let path = "/v1/endpoints?containerID=" + (cid.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cid)
            do { _ = try client.request("DELETE", path) } catch let f as AgentClient.Failure where f.status == 404 {
            } catch { throw CNIPlugin.mapFailure(error, "GC") }
        }
    }

    // MARK: Agent calls

    func agent<T>(_ command: String, _ body: () throws -> T) throws(CNIError) -> T {
        do { return try body() } catch { throw CNIPlugin.mapFailure(error, command) }
    }

    /// Unreachable agent: try again later (11); 4xx: rejected (100); else failed (101).
    static func mapFailure(_ error: Error, _ command: String) -> CNIError {
        guard let f = error as? AgentClient.Failure else {
            return .agentFailed("\(command): unexpected answer from the agent", details: "\(error)")
        }
        switch f.status {
        case 0: return .tryAgainLater("\(command): the Membrane agent is unreachable", details: f.message)
        case 400..<500: return .agentRejected("\(command): the agent refused: \(f.message)", details: "HTTP \(f.status)")
        default: return .agentFailed("\(command): the agent failed: \(f.message)", details: "HTTP \(f.status)")
        }
    }

    static func run(_ argv: [String]) -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = (env["PATH"].map { $0 + ":" } ?? "") + "/usr/sbin:/sbin:/usr/bin:/bin"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err; p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return (-1, "", "\(error)") }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
