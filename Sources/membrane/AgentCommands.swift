import AgentAPI
import ArgumentParser
import Foundation

/// How the CLI finds the agent: `--socket`, else `MEMBRANE_SOCKET`, else /run/membrane/membrane.sock.
struct AgentOptions: ParsableArguments {
    @Option(help: "The agent's API socket (default: $MEMBRANE_SOCKET or /run/membrane/membrane.sock).")
    var socket: String?

    var client: AgentClient { AgentClient(socketPath: socket) }
}

/// Runs a call against the agent, turning its errors into a message and exit status 1.
func withAgent<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let f as AgentClient.Failure {
        printError("error: \(f.description)")
        throw ExitCode(1)
    }
}

func parseLabels(_ text: String?) throws -> [String: String] {
    guard let text, !text.isEmpty else { return [:] }
    var out: [String: String] = [:]
    for item in text.split(separator: ",") {
        let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2, !kv[0].isEmpty else { throw ValidationError("--labels \(text): expected key=value[,key=value...]") }
        out[kv[0]] = kv[1]
    }
    return out
}

func endpointTable(_ endpoints: [EndpointJSON]) -> String {
    var rows: [[String]] = []
    for e in endpoints {
        let labels = e.identityLabels.isEmpty ? [""] : e.identityLabels
        for (i, l) in labels.enumerated() {
            rows.append(i == 0 ? [String(e.id), "\(e.namespace)/\(e.name)", e.ingressEnforcement, e.egressEnforcement, String(e.identity), l, e.ipv4, e.state]
                               : ["", "", "", "", "", l, "", ""])
        }
    }
    return table(["ENDPOINT", "NAME", "POLICY (ingress) ENFORCEMENT", "POLICY (egress) ENFORCEMENT", "IDENTITY",
                  "LABELS (source:key[=value])", "IPv4", "STATUS"], rows)
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The agent's health, like `cilium-dbg status`.")
    @OptionGroup var agent: AgentOptions
    @OptionGroup var out: OutputOptions

    func run() throws {
        let s: StatusJSON = try withAgent { try agent.client.get("/v1/status") }
        if out.output == .json { try printJSON(s); return }
        var lines = ["Node:             \(s.node)"]
        for c in s.components { lines.append("\((c.name + ":").padding(toLength: 18, withPad: " ", startingAt: 0))\(c.state)   \(c.message)") }
        lines.append("Endpoints:        \(s.endpoints)")
        lines.append("Identities:       \(s.identities)")
        lines.append("Policies:         \(s.policies) (revision \(s.policyRevision))")
        lines.append("Forwarded:        \(s.forwarded)")
        lines.append("Dropped:          " + s.dropped.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        let pressure = s.mapPressure.map { "\($0.map) \($0.entries)/\($0.capacity)" }.joined(separator: ", ")
        lines.append("Map pressure:     \(pressure)")
        if !s.overflowedEndpoints.isEmpty { lines.append("Policy overflow:  endpoints \(s.overflowedEndpoints) drop all traffic (fail closed)") }
        print(lines.joined(separator: "\n"))
    }
}

extension EndpointCommand {
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an endpoint: a network namespace wired to the host, with an address and labels.")
        @Option(help: "Kubernetes namespace of the workload.") var namespace: String
        @Option(help: "Name of the workload.") var name: String
        @Option(help: "Labels, key=value[,key=value...].") var labels: String?
        @Option(help: "Service account.") var serviceAccount: String?
        @OptionGroup var agent: AgentOptions
        @OptionGroup var out: OutputOptions

        func run() throws {
            let req = CreateEndpointRequest(namespace: namespace, name: name, labels: try parseLabels(labels), serviceAccount: serviceAccount)
            let e: EndpointJSON = try withAgent { try agent.client.send("POST", "/v1/endpoints", req) }
            if out.output == .json { try printJSON(e) } else { print(endpointTable([e])) }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one endpoint (by ID or namespace/name).")
        @Argument(help: "Endpoint ID or namespace/name.") var endpoint: String
        @OptionGroup var agent: AgentOptions
        @OptionGroup var out: OutputOptions

        func run() throws {
            let e: EndpointJSON = try withAgent { try agent.client.get("/v1/endpoints/\(endpoint)") }
            if out.output == .json { try printJSON(e) } else { print(endpointTable([e])) }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an endpoint: its namespace, links, routes, maps and programs.")
        @Argument(help: "Endpoint ID or namespace/name.") var endpoint: String
        @OptionGroup var agent: AgentOptions

        func run() throws {
            _ = try withAgent { try agent.client.request("DELETE", "/v1/endpoints/\(endpoint)") }
            print("deleted \(endpoint)")
        }
    }

    struct Labels: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "labels", abstract: "Replace an endpoint's labels (it gets the identity of its new labels).")
        @Argument(help: "Endpoint ID or namespace/name.") var endpoint: String
        @Option(help: "Labels, key=value[,key=value...].") var labels: String
        @OptionGroup var agent: AgentOptions
        @OptionGroup var out: OutputOptions

        func run() throws {
            let e: EndpointJSON = try withAgent {
                try agent.client.send("PATCH", "/v1/endpoints/\(endpoint)/labels", LabelsRequest(labels: try parseLabels(labels)))
            }
            if out.output == .json { try printJSON(e) } else { print(endpointTable([e])) }
        }
    }

    struct Exec: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a command inside an endpoint's network namespace, as `kubectl exec` does.")
        @Argument(help: "Endpoint ID or namespace/name.") var endpoint: String
        @Argument(parsing: .captureForPassthrough, help: "-- COMMAND [ARGS...]") var command: [String] = []
        @OptionGroup var agent: AgentOptions

        func run() throws {
            let argv = command.first == "--" ? Array(command.dropFirst()) : command
            guard !argv.isEmpty else { throw ValidationError("give a command after --") }
            let e: EndpointJSON = try withAgent { try agent.client.get("/v1/endpoints/\(endpoint)") }
            // Replace this process, so that the command gets our stdio and our signals, as with kubectl exec.
            // A runtime's namespace outside /var/run/netns (the CNI plugin's, e.g. /proc/PID/ns/net) is entered by path.
            let args = e.netns.hasPrefix("/") ? ["nsenter", "--net=\(e.netns)", "--"] + argv : ["ip", "netns", "exec", e.netns] + argv
            var cargs = args.map { strdup($0) } + [nil]
            // The command must not inherit this thread's blocked signals (Swift concurrency and Dispatch threads
            // block them): `timeout` and Ctrl-C would not reach it.
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            signal(SIGPIPE, SIG_DFL)
            execvp(args[0], &cargs)
            throw ValidationError("cannot run \(args[0]): \(String(cString: strerror(errno)))")
        }
    }
}

extension PolicyCommand {
    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply policies to the agent. Any invalid policy rejects the request and changes nothing.")
        @OptionGroup var manifests: ManifestOptions
        @OptionGroup var agent: AgentOptions

        func run() throws {
            try manifests.validateFiles()
            var text = ""
            for f in manifests.files {
                let body = f == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                                    : try String(contentsOfFile: f, encoding: .utf8)
                text += (text.isEmpty ? "" : "\n---\n") + body
            }
            let r: PolicyApplyResult = try withAgent {
                try JSONDecoder().decode(PolicyApplyResult.self, from: agent.client.request("PUT", "/v1/policies", body: Data(text.utf8), contentType: "application/yaml"))
            }
            for a in r.applied { print("applied \(a)") }
            print("policy revision \(r.revision)")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a policy from the agent.")
        @Argument(help: "Kind: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy.") var kind: String
        @Argument(help: "namespace/name, or name for a CiliumClusterwideNetworkPolicy.") var name: String
        @OptionGroup var agent: AgentOptions

        func run() throws {
            let parts = name.split(separator: "/", maxSplits: 1).map(String.init)
            let path = parts.count == 2 ? "\(parts[0])/\(parts[1])" : "-/\(parts[0])"
            _ = try withAgent { try agent.client.request("DELETE", "/v1/policies/\(kind)/\(path)") }
            print("deleted \(kind) \(name)")
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the policies the agent enforces.")
        @OptionGroup var agent: AgentOptions
        @OptionGroup var out: OutputOptions

        func run() throws {
            let ps: [PolicyJSON] = try withAgent { try agent.client.get("/v1/policies") }
            if out.output == .json { try printJSON(ps); return }
            print(table(["KIND", "NAMESPACE", "NAME", "REVISION", "SOURCE"],
                        ps.map { [$0.kind, $0.namespace ?? "", $0.name, String($0.revision), $0.source] }))
        }
    }
}

struct BPFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bpf", abstract: "Inspect the datapath's maps.", subcommands: [PolicyMap.self])

    struct PolicyMap: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "policy", abstract: "Policy maps.", subcommands: [Get.self])

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "An endpoint's policy map, read back from the kernel, like `cilium-dbg bpf policy get`.")
            @Argument(help: "Endpoint ID or namespace/name.") var endpoint: String
            @Flag(help: "Show numeric identities instead of labels.") var numeric = false
            @OptionGroup var agent: AgentOptions
            @OptionGroup var out: OutputOptions

            func run() throws {
                let entries: [BPFPolicyEntryJSON] = try withAgent { try agent.client.get("/v1/bpf/policy/\(endpoint)") }
                if out.output == .json { try printJSON(entries); return }
                var rows: [[String]] = []
                for e in entries {
                    let ls = numeric ? [String(e.identity)] : e.labels
                    for (j, l) in ls.enumerated() {
                        rows.append(j == 0 ? [e.policy, e.direction, l, e.port, e.proxyPort == 0 ? "None" : String(e.proxyPort), e.authType]
                                           : ["", "", l, "", "", ""])
                    }
                }
                print(table(["POLICY", "DIRECTION", numeric ? "IDENTITY" : "LABELS (source:key[=value])", "PORT/PROTO", "PROXY PORT", "AUTH TYPE"], rows))
            }
        }
    }
}
