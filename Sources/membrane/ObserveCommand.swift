import ArgumentParser
import Foundation
import Hubble
import HubbleAPI
import HubbleClient
import SwiftProtobuf

/// `membrane observe`: `hubble observe` against the agent's Hubble API, with the same flags, the same
/// requests (filters are evaluated by the server) and the same output formats.
struct ObserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observe",
        abstract: "Observe flows: what the datapath forwarded and dropped, and which policies decided.",
        discussion: """
        Talks to the agent's Hubble Observer API (the same one the real `hubble` CLI uses). Filter flags combine \
        as in hubble: --from-X/--to-X narrow one side, --pod/--namespace/--identity/--port/--label/--ip match \
        either side, other flags apply to every flow, and --not negates the flag that follows it.

        Examples:
          membrane observe --last 20 --verdict DROPPED --print-policy-names
          membrane observe -f --namespace prod --type policy-verdict
          membrane observe --since 5m --to-pod prod/backend --to-port 8080 -o json
        """)

    @Option(help: "Hubble server: unix:///path, unix:path or host:port (default: $HUBBLE_SERVER or unix:///run/membrane/hubble.sock).")
    var server: String?
    @Option(help: "Get the last N flows.") var last: UInt64?
    @Option(help: "Get the first N flows stored.") var first: UInt64?
    @Flag(help: "Get all the flows stored.") var all = false
    @Flag(name: [.customShort("f"), .long], help: "Follow flows as they come (until interrupted).") var follow = false
    @Option(help: "Flows since this time: a duration ago (5m, 1h30m) or RFC 3339.") var since: String?
    @Option(help: "Flows until this time (ignored with --follow).") var until: String?
    @Option(name: [.customShort("o"), .long], help: "Output: compact, json (= jsonpb), table or dict.") var output: FlowPrinter.Format = .compact
    @Flag(help: "Append the policies that decided a policy verdict (BY name (kind)).") var printPolicyNames = false
    @Flag(help: "Print the node name of each flow.") var printNodeName = false
    @Flag(help: "Print IP addresses instead of pod names.") var numeric = false
    @Flag(help: "Print the filters that would be sent, and exit.") var printRawFilters = false
    @Option(help: "Color output: never (the only mode).") var color: String = "never"

    // Filter flags: declared for --help and validation; applied in command-line order (see `filterFlags`).
    @Flag(help: "Negate the filter flag that follows.") var not = false
    @Option(help: "Verdict: FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR.") var verdict: [String] = []
    @Option(name: [.customShort("n"), .long], help: "Flows from or to this namespace.") var namespace: [String] = []
    @Option(help: "Flows from this namespace.") var fromNamespace: [String] = []
    @Option(help: "Flows to this namespace.") var toNamespace: [String] = []
    @Option(help: "Flows from or to this pod ([namespace/]name prefix).") var pod: [String] = []
    @Option(help: "Flows from this pod.") var fromPod: [String] = []
    @Option(help: "Flows to this pod.") var toPod: [String] = []
    @Option(help: "Flows from or to this identity (number or reserved name: world, host, …).") var identity: [String] = []
    @Option(help: "Flows from this identity.") var fromIdentity: [String] = []
    @Option(help: "Flows to this identity.") var toIdentity: [String] = []
    @Option(help: "Flows from or to this port.") var port: [String] = []
    @Option(help: "Flows from this port.") var fromPort: [String] = []
    @Option(help: "Flows to this port.") var toPort: [String] = []
    @Option(help: "Flows from or to this IP or CIDR.") var ip: [String] = []
    @Option(help: "Flows from this IP or CIDR.") var fromIp: [String] = []
    @Option(help: "Flows to this IP or CIDR.") var toIp: [String] = []
    @Option(name: [.customShort("l"), .long], help: "Flows from or to endpoints matching this label selector.") var label: [String] = []
    @Option(help: "Flows from endpoints matching this label selector.") var fromLabel: [String] = []
    @Option(help: "Flows to endpoints matching this label selector.") var toLabel: [String] = []
    @Option(help: "Flows from or to this FQDN pattern.") var fqdn: [String] = []
    @Option(help: "Flows from this FQDN pattern.") var fromFqdn: [String] = []
    @Option(help: "Flows to this FQDN pattern.") var toFqdn: [String] = []
    @Option(help: "Flows from or to this service.") var service: [String] = []
    @Option(help: "Flows from this service.") var fromService: [String] = []
    @Option(help: "Flows to this service.") var toService: [String] = []
    @Option(name: [.customShort("t"), .long], help: "Event type: drop, policy-verdict, trace[:point], l7, …") var type: [String] = []
    @Option(help: "L4 or L7 protocol: tcp, udp, icmp, icmpv4, icmpv6, sctp, dns, http, kafka.") var `protocol`: [String] = []
    @Option(help: "Traffic direction: ingress or egress.") var trafficDirection: [String] = []
    @Option(help: "Drop reason: POLICY_DENIED, POLICY_DENY, …") var dropReasonDesc: [String] = []
    @Option(help: "HTTP status code (200, 4+).") var httpStatus: [String] = []
    @Option(help: "HTTP method.") var httpMethod: [String] = []
    @Option(help: "HTTP path (regular expression).") var httpPath: [String] = []
    @Option(help: "HTTP URL (regular expression).") var httpUrl: [String] = []
    @Option(help: "DNS query (regular expression).") var dnsQuery: [String] = []
    @Option(help: "Node name pattern.") var nodeName: [String] = []
    @Option(help: "Flow UUID.") var uuid: [String] = []
    @Option(help: "TCP flags, e.g. SYN or SYN,ACK.") var tcpFlags: [String] = []
    @Option(help: "IP version: 4 or 6.") var ipVersion: [String] = []
    @Option(help: "Replies (true) or requests (false).") var isReply: [String] = []

    func validate() throws {
        if first != nil && follow { throw ValidationError("--first cannot be combined with --follow") }
        if [last != nil, first != nil, all].filter({ $0 }).count > 1 { throw ValidationError("use only one of --last, --first and --all") }
        if output == .table && follow { throw ValidationError("-o table cannot be combined with --follow") }
        if color != "never" && color != "auto" { throw ValidationError("--color: only never (or auto) is supported") }
    }

    func run() async throws {
        let (whitelist, blacklist) = try ObserveFilterBuilder.filters(ObserveCommand.filterFlags(CommandLine.arguments))
        if printRawFilters {
            print(ObserveCommand.rawFilters(whitelist: whitelist, blacklist: blacklist))
            return
        }
        var request = Observer_GetFlowsRequest()
        request.whitelist = whitelist
        request.blacklist = blacklist
        request.follow = follow
        if all { request.number = UInt64.max }
        else if let first { request.number = first; request.first = true }
        else if let last { request.number = last }
        else if !follow && since == nil && until == nil { request.number = 20 }
        let now = Date()
        if let since { request.since = Google_Protobuf_Timestamp(date: try ObserveCommand.time(since, now: now, flag: "--since")) }
        if let until, !follow { request.until = Google_Protobuf_Timestamp(date: try ObserveCommand.time(until, now: now, flag: "--until")) }

        let target = server ?? ProcessInfo.processInfo.environment["HUBBLE_SERVER"] ?? "unix:///run/membrane/hubble.sock"
        let client = try HubbleClient(server: target)
        let printer = FlowPrinter(format: output, printPolicyNames: printPolicyNames, printNodeName: printNodeName, numeric: numeric)
        if let header = printer.tableHeader { print(header) }
        do {
            try await client.getFlows(request) { response in
                let text = printer.render(response)
                if !text.isEmpty { print(text); fflush(nil) }
            }
        } catch {
            throw ValidationError("observe via \(target): \(error)")
        }
    }

    /// Filter flags with their values, in command-line order, `--not` applying to the next one.
    static func filterFlags(_ argv: [String]) throws -> [ObserveFilterBuilder.Flag] {
        let shorthands = ["-n": "namespace", "-l": "label", "-t": "type"]
        var out: [ObserveFilterBuilder.Flag] = []
        var negate = false
        var i = argv.firstIndex(of: "observe").map { $0 + 1 } ?? 1
        while i < argv.count {
            let arg = argv[i]
            i += 1
            if arg == "--" { break }
            if arg == "--not" { negate = true; continue }
            var name: String?, value: String?
            if let eq = arg.firstIndex(of: "="), arg.hasPrefix("--") {
                name = String(arg[arg.index(arg.startIndex, offsetBy: 2)..<eq]); value = String(arg[arg.index(after: eq)...])
            } else if arg.hasPrefix("--") {
                name = String(arg.dropFirst(2))
            } else if let long = shorthands[arg] {
                name = long
            }
            guard let n = name, ObserveFilterBuilder.flagNames.contains(n) else { continue }
            if value == nil {
                guard i < argv.count else { throw ValidationError("--\(n) needs a value") }
                value = argv[i]; i += 1
            }
            out.append(.init(n, value!, negated: negate))
            negate = false
        }
        return out
    }

    /// A duration ago (`90s`, `5m`, `1h30m`, `250ms`) or an RFC 3339 time.
    static func time(_ text: String, now: Date, flag: String) throws -> Date {
        if let seconds = duration(text) { return now.addingTimeInterval(-seconds) }
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = iso.date(from: text) { return d }
        iso.formatOptions = [.withInternetDateTime]
        if let d = iso.date(from: text) { return d }
        throw ValidationError("\(flag) \(text): expected a duration (5m, 1h30m) or an RFC 3339 time (2025-01-15T10:00:00Z)")
    }

    static func duration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("h", 3600), ("m", 60), ("s", 1)]
        var rest = Substring(text), total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber || $0 == "." }
            guard !digits.isEmpty, let n = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            total += n * unit.1
            rest = rest.dropFirst(unit.0.count)
        }
        return total
    }

    /// As `hubble observe --print-raw-filters`: one JSON filter per line, under allowlist/denylist.
    static func rawFilters(whitelist: [Flow_FlowFilter], blacklist: [Flow_FlowFilter]) -> String {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        func list(_ name: String, _ filters: [Flow_FlowFilter]) -> String {
            guard !filters.isEmpty else { return "" }
            return "\(name):\n" + filters.map { "- '\((try? $0.jsonString(options: options)) ?? "{}")'" }.joined(separator: "\n") + "\n"
        }
        return (list("allowlist", whitelist) + list("denylist", blacklist)).trimmingCharacters(in: .newlines)
    }
}

extension FlowPrinter.Format: ExpressibleByArgument {}
