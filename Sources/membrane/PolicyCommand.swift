import ArgumentParser
import Cluster
import Policy
import PolicyAPI

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Validate policies, trace connections, and show policy maps.",
        subcommands: [Validate.self, Trace.self, MapCommand.self, Apply.self, Delete.self, Get.self])
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate manifests: every error with its file, document, resource and field path.",
        discussion: "Exit status 0 when every document is valid, 1 otherwise. Kinds Membrane does not read are reported and ignored.")

    @OptionGroup var manifests: ManifestOptions
    @OptionGroup var out: OutputOptions

    struct Report: Encodable {
        var valid: Bool
        var resources: [String]
        var errors: [ErrorJSON]
        var warnings: [String]
    }
    struct ErrorJSON: Encodable {
        var file: String; var document: Int; var item: Int?; var line: Int?
        var resource: String?; var path: String; var message: String
    }

    func run() throws {
        try manifests.validateFiles()
        let set = ManifestDecoder.load(paths: manifests.files)
        if out.output == .json {
            try printJSON(Report(valid: set.errors.isEmpty, resources: set.resources.map(\.ref.description),
                                 errors: set.errors.map { ErrorJSON(file: $0.location.file, document: $0.location.document,
                                                                    item: $0.location.listItem, line: $0.line ?? $0.location.line,
                                                                    resource: $0.resource?.description, path: $0.path, message: $0.message) },
                                 warnings: set.warnings.map(\.description)))
        } else {
            for w in set.warnings { print("warning: \(w)") }
            for e in set.errors { print("error: \(e)") }
            let policies = set.resources.filter {
                [.ciliumNetworkPolicy, .ciliumClusterwideNetworkPolicy, .networkPolicy, .ciliumCIDRGroup].contains($0.ref.kind)
            }
            print("\(policies.count) valid polic\(policies.count == 1 ? "y" : "ies"), \(set.resources.count - policies.count) other resource(s), \(set.errors.count) error(s)")
        }
        if !set.errors.isEmpty { throw ExitCode(1) }
    }
}

struct SettingsOptions: ParsableArguments {
    @Option(help: "Policy enforcement mode: default, always or never.")
    var enforcementMode: String = "default"
    @Flag(help: "Audit mode: would-be drops are forwarded with verdict AUDIT.")
    var auditMode = false
    @Flag(help: "Enforce host policies (CCNP nodeSelector) on the host endpoint.")
    var hostFirewall = false

    func settings() throws -> EngineSettings {
        guard let mode = EnforcementMode(rawValue: enforcementMode) else {
            throw ValidationError("--enforcement-mode \(enforcementMode): expected default, always or never")
        }
        return EngineSettings(enforcementMode: mode, auditMode: auditMode, hostFirewall: hostFirewall)
    }
}

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trace a connection: the egress verdict at the source, the ingress verdict at the destination, and why.",
        discussion: """
        SRC and DST are namespace/pod or an IP address (a pod's, a node's, a Service clusterIP, or outside the
        cluster). Traffic to a Service is judged against its backend, as the datapath translates before policy.
        """)

    @OptionGroup var manifests: ManifestOptions
    @Option(help: "Source: namespace/pod or IP.") var from: String
    @Option(help: "Destination: namespace/pod, namespace/service or IP.") var to: String
    @Option(help: "Destination port.") var port: UInt16?
    @Option(name: .customLong("protocol"), help: "TCP, UDP, SCTP or ICMP.") var proto: String = "TCP"
    @Option(help: "ICMP type (default 8, echo request).") var icmpType: UInt8?
    @Option(help: "HTTP method of an L7 request.") var httpMethod: String?
    @Option(help: "HTTP path of an L7 request.") var httpPath: String?
    @Option(help: "HTTP host of an L7 request.") var httpHost: String?
    @Option(help: "HTTP header 'Name: value' (repeatable).") var httpHeader: [String] = []
    @Option(help: "DNS query name of an L7 request.") var dnsQuery: String?
    @Option(help: "Kafka API key of an L7 request (produce, fetch, …).") var kafkaApiKey: String?
    @Option(help: "Kafka API version.") var kafkaApiVersion: Int?
    @Option(help: "Kafka topic.") var kafkaTopic: String?
    @Option(help: "Kafka client ID.") var kafkaClientId: String?
    @Option(help: "NAME=IP: the source resolved NAME to IP through the cluster DNS just before (repeatable).")
    var dns: [String] = []
    @OptionGroup var agent: SettingsOptions
    @OptionGroup var out: OutputOptions

    func request() throws -> TraceRequest {
        var l7: L7Request?
        if httpMethod != nil || httpPath != nil || httpHost != nil || !httpHeader.isEmpty {
            let headers = httpHeader.map { h -> (String, String) in
                guard let c = h.firstIndex(of: ":") else { return (h, "") }
                return (String(h[..<c]), String(h[h.index(after: c)...]).trimmingCharacters(in: .whitespaces))
            }
            l7 = .http(method: httpMethod ?? "GET", path: httpPath ?? "/", host: httpHost ?? "", headers: headers)
        } else if let q = dnsQuery {
            l7 = .dns(query: q)
        } else if let k = kafkaApiKey {
            l7 = .kafka(apiKey: k, apiVersion: kafkaApiVersion, clientID: kafkaClientId, topic: kafkaTopic)
        }
        var lookups: [(name: String, address: IPAddress)] = []
        for d in dns {
            let parts = d.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let ip = IPAddress(parts[1]) else { throw ValidationError("--dns \(d): expected NAME=IP") }
            lookups.append((parts[0], ip))
        }
        return TraceRequest(from: from, to: to, port: port, proto: proto, icmpType: icmpType, l7: l7, dns: lookups)
    }

    func run() throws {
        let req = try request()
        let cluster = try loadCluster(manifests, settings: agent.settings())
        var tracer = PolicyTracer(cluster: cluster)
        let result: TraceResult
        do { result = try tracer.trace(req) } catch let e as TraceError { throw ValidationError(e.description) }
        if out.output == .json { try printJSON(result) } else { print(TraceFormatter.text(result)) }
    }
}

enum TraceFormatter {
    static func peer(_ p: TracePeer) -> String {
        var s = "\(p.name ?? p.ip ?? p.input) [\(p.kind)]"
        if let ip = p.ip, p.name != nil { s += " \(ip)" }
        if let svc = p.translatedFrom { s += " (Service \(svc) translated to its backend)" }
        s += "\n    identity \(p.identity)"
        for l in p.labels { s += "\n      \(l)" }
        return s
    }

    static func direction(_ title: String, _ t: DirectionTrace) -> String {
        var s = "\(title): \(t.verdict)" + (t.dropReason.map { " (\($0))" } ?? "")
        s += "\n    \(t.explanation)"
        if let e = t.entry {
            s += "\n    map entry: \(e.decision) peer=\(e.peerIdentity == 0 ? "ANY" : String(e.peerIdentity)) \(e.ports)"
            if let p = e.proxyPort { s += " proxy-port=\(p)" }
        }
        if !t.policies.isEmpty { s += "\n    policies: " + t.policies.map(\.display).joined(separator: ", ") }
        return s
    }

    static func text(_ r: TraceResult) -> String {
        var lines: [String] = []
        lines.append("Source:      " + peer(r.source))
        lines.append("Destination: " + peer(r.destination))
        lines.append("Traffic:     \(r.proto)" + (r.port.map { "/\($0)" } ?? ""))
        for d in r.dnsLearned { lines.append("DNS:         \(d)") }
        lines.append("")
        lines.append(direction("Egress (at source)", r.egress))
        lines.append(direction("Ingress (at destination)", r.ingress))
        if let l7 = r.l7 {
            var s = "L7 (\(l7.parser), \(l7.direction.lowercased())): \(l7.verdict)"
            if let req = l7.request { s += "\n    request: \(req)" }
            s += "\n    \(l7.explanation)"
            if !l7.policies.isEmpty { s += "\n    policies: " + l7.policies.map(\.display).joined(separator: ", ") }
            lines.append(s)
        }
        lines.append("")
        lines.append("Verdict: \(r.verdict)" + (r.dropReason.map { " (\($0))" } ?? ""))
        return lines.joined(separator: "\n")
    }
}

struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map", abstract: "Show an endpoint's policy map, like `cilium-dbg bpf policy get`.")

    @OptionGroup var manifests: ManifestOptions
    @Option(help: "The endpoint: namespace/pod.") var endpoint: String
    @Flag(help: "Show numeric identities instead of labels.") var numeric = false
    @OptionGroup var agent: SettingsOptions
    @OptionGroup var out: OutputOptions

    struct EntryJSON: Encodable {
        var policy: String; var direction: String; var identity: NumericIdentity; var labels: [String]
        var port: String; var proxyPort: UInt16; var authType: String; var policies: [PolicyName]; var rules: [String]
        var encodedKey: String; var encodedValue: String
    }

    func run() throws {
        let cluster = try loadCluster(manifests, settings: agent.settings())
        let parts = endpoint.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let ep = cluster.endpoint(namespace: parts[0], pod: parts[1]),
              let map = cluster.engine.mapState(ep.id) else {
            throw ValidationError("--endpoint \(endpoint): no such pod endpoint in the manifests")
        }
        let engine = cluster.engine
        var entries: [EntryJSON] = []
        for (i, (key, entry)) in map.sortedEntries.enumerated() {
            let labels = key.identity == 0 ? ["reserved:unknown"] : (engine.identity(key.identity)?.labels.labels.map(\.description) ?? ["identity \(key.identity)"])
            let names = Array(Set(entry.origins.compactMap { engine.origins[$0].ref }.map(PolicyName.init))).sorted()
            entries.append(EntryJSON(policy: entry.isDeny ? "Deny" : "Allow", direction: key.direction.description,
                                     identity: key.identity, labels: labels, port: key.l4.description,
                                     proxyPort: entry.proxyPort(key.direction), authType: entry.authRequired ? "required" : "disabled",
                                     policies: names, rules: entry.origins.map { engine.origins[$0].description },
                                     encodedKey: hex(key.encoded), encodedValue: hex(entry.encoded(for: key, cookie: UInt32(i)))))
        }
        if out.output == .json { try printJSON(entries); return }
        var rows: [[String]] = []
        for e in entries {
            let ls = numeric ? [String(e.identity)] : e.labels
            for (j, l) in ls.enumerated() {
                rows.append(j == 0 ? [e.policy, e.direction, l, e.port, e.proxyPort == 0 ? "None" : String(e.proxyPort), e.authType,
                                      e.policies.map(\.display).joined(separator: ", ")]
                                   : ["", "", l, "", "", "", ""])
            }
        }
        print(table(["POLICY", "DIRECTION", numeric ? "IDENTITY" : "LABELS (source:key[=value])", "PORT/PROTO", "PROXY PORT", "AUTH TYPE", "DERIVED FROM"], rows))
    }

    func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
}
