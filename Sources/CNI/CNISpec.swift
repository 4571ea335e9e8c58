import Foundation

/// The parts of the CNI specification (https://github.com/containernetworking/cni/blob/main/SPEC.md) the
/// plugin implements: versions, the runtime's environment, the network configuration, results and errors.
public enum CNIVersion {
    /// The versions whose configuration, commands and result format the plugin implements: 0.3.x and 0.4.0
    /// results carry `ips[].version`; CHECK exists from 0.4.0; STATUS and GC from 1.1.0.
    public static let supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    public static let latest = "1.1.0"

    /// A configuration without `cniVersion` is 0.1.0, as libcni reads it.
    public static let implicit = "0.1.0"

    /// Orders "major.minor.patch" numerically; unparsable versions sort first.
    public static func compare(_ a: String, _ b: String) -> Int {
        func parts(_ v: String) -> [Int] { v.split(separator: ".").map { Int($0) ?? -1 } + [0, 0, 0] }
        for (x, y) in zip(parts(a).prefix(3), parts(b).prefix(3)) where x != y { return x < y ? -1 : 1 }
        return 0
    }

    public static func atLeast(_ v: String, _ minimum: String) -> Bool { compare(v, minimum) >= 0 }
}

/// A CNI error result: `{cniVersion, code, msg, details}` on stdout, and a non-zero exit.
public struct CNIError: Error, Equatable, CustomStringConvertible {
    public var code: Int
    public var msg: String
    public var details: String

    public init(code: Int, msg: String, details: String = "") { self.code = code; self.msg = msg; self.details = details }

    public var description: String { "CNI error \(code): \(msg)" + (details.isEmpty ? "" : " (\(details))") }

    // The specification's well-known codes.
    public static func incompatibleVersion(_ msg: String, details: String = "") -> CNIError { .init(code: 1, msg: msg, details: details) }
    public static func unsupportedField(_ msg: String, details: String = "") -> CNIError { .init(code: 2, msg: msg, details: details) }
    public static func unknownContainer(_ msg: String, details: String = "") -> CNIError { .init(code: 3, msg: msg, details: details) }
    public static func invalidEnvironment(_ msg: String, details: String = "") -> CNIError { .init(code: 4, msg: msg, details: details) }
    public static func ioFailure(_ msg: String, details: String = "") -> CNIError { .init(code: 5, msg: msg, details: details) }
    public static func decodingFailure(_ msg: String, details: String = "") -> CNIError { .init(code: 6, msg: msg, details: details) }
    public static func invalidConfig(_ msg: String, details: String = "") -> CNIError { .init(code: 7, msg: msg, details: details) }
    public static func tryAgainLater(_ msg: String, details: String = "") -> CNIError { .init(code: 11, msg: msg, details: details) }
    public static func notAvailable(_ msg: String, details: String = "") -> CNIError { .init(code: 50, msg: msg, details: details) }

    // Membrane's own codes (the specification leaves 100 and above to plugins).
    /// The agent refused the request (it is wrong: a conflict, a bad namespace, a bad name).
    public static func agentRejected(_ msg: String, details: String = "") -> CNIError { .init(code: 100, msg: msg, details: details) }
    /// The agent failed while carrying the request out.
    public static func agentFailed(_ msg: String, details: String = "") -> CNIError { .init(code: 101, msg: msg, details: details) }
    /// CHECK: the agent has no endpoint for the container.
    public static func endpointMissing(_ msg: String, details: String = "") -> CNIError { .init(code: 102, msg: msg, details: details) }
    /// CHECK: the endpoint exists but its interface, address or routes are not as ADD left them.
    public static func endpointBroken(_ msg: String, details: String = "") -> CNIError { .init(code: 103, msg: msg, details: details) }

    public func json(cniVersion: String) -> [String: Any] {
        var out: [String: Any] = ["cniVersion": cniVersion, "code": code, "msg": msg]
        if !details.isEmpty { out["details"] = details }
        return out
    }
}

/// The commands of the specification.
public enum CNICommand: String, CaseIterable, Sendable {
    case add = "ADD", del = "DEL", check = "CHECK", version = "VERSION", status = "STATUS", gc = "GC"
}

/// What the runtime passes in environment variables.
public struct CNIEnvironment: Equatable, Sendable {
    public var command: CNICommand
    public var containerID: String?
    public var netns: String?
    public var ifname: String?
    /// `CNI_ARGS`, `K=V;K=V`.
    public var args: [String: String]
    public var path: [String]

    public init(command: CNICommand, containerID: String? = nil, netns: String? = nil, ifname: String? = nil,
                args: [String: String] = [:], path: [String] = []) {
        self.command = command; self.containerID = containerID; self.netns = netns; self.ifname = ifname
        self.args = args; self.path = path
    }

    /// Reads and checks the variables the command needs: ADD and CHECK need a container ID, a network namespace
    /// and an interface name; DEL the container ID and interface name (the namespace may be gone already).
    public init(_ env: [String: String]) throws(CNIError) {
        func value(_ key: String) -> String? { env[key].flatMap { $0.isEmpty ? nil : $0 } }
        guard let raw = value("CNI_COMMAND") else { throw .invalidEnvironment("required environment variable CNI_COMMAND is missing") }
        guard let command = CNICommand(rawValue: raw) else {
            throw .invalidEnvironment("unknown CNI_COMMAND \(raw)", details: "expected one of \(CNICommand.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.command = command
        containerID = value("CNI_CONTAINERID")
        netns = value("CNI_NETNS")
        ifname = value("CNI_IFNAME")
        path = (value("CNI_PATH") ?? "").split(separator: ":").map(String.init)
        args = try CNIEnvironment.parseArgs(value("CNI_ARGS") ?? "")

        var required: [String] = []
        switch command {
        case .add, .check: required = ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"]
        case .del: required = ["CNI_CONTAINERID", "CNI_IFNAME"]
        case .version, .status, .gc: break
        }
        let missing = required.filter { value($0) == nil }
        if !missing.isEmpty {
            throw .invalidEnvironment("required environment variable\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", ")) missing for \(command.rawValue)")
        }
        if let containerID, !CNIEnvironment.isValidContainerID(containerID) {
            throw .invalidEnvironment("invalid CNI_CONTAINERID \(String(reflecting: containerID))",
                                      details: "letters, digits, '_', '.' and '-', starting with a letter or digit")
        }
        if let ifname, !CNIEnvironment.isValidInterfaceName(ifname) {
            throw .invalidEnvironment("invalid CNI_IFNAME \(String(reflecting: ifname))", details: "1-15 characters, no '/', ':' or whitespace")
        }
        if let netns, !netns.hasPrefix("/") {
            throw .invalidEnvironment("CNI_NETNS must be an absolute path, got \(String(reflecting: netns))")
        }
    }

    /// `K=V;K=V` (empty items are skipped; an item without `=` is an error).
    public static func parseArgs(_ text: String) throws(CNIError) -> [String: String] {
        var out: [String: String] = [:]
        for item in text.split(separator: ";") where !item.trimmingCharacters(in: .whitespaces).isEmpty {
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard kv.count == 2, !kv[0].isEmpty else {
                throw .invalidEnvironment("invalid CNI_ARGS item \(String(reflecting: String(item)))", details: "expected KEY=VALUE pairs separated by ';'")
            }
            out[kv[0]] = kv[1]
        }
        return out
    }

    /// libcni's rule: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
    public static func isValidContainerID(_ s: String) -> Bool {
        guard let first = s.first, first.isASCII, first.isLetter || first.isNumber else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-") }
    }

    /// Linux interface names: 1-15 bytes, no '/', ':' or whitespace, not "." or "..".
    public static func isValidInterfaceName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 15 && s != "." && s != ".."
            && !s.contains { $0 == "/" || $0 == ":" || $0.isWhitespace || !$0.isASCII }
    }
}

/// The network configuration on stdin: the specification's keys, and Membrane's own.
///
/// ```json
/// {"cniVersion": "1.0.0", "name": "membrane", "type": "membrane-cni",
///  "socket": "/run/membrane/membrane.sock", "labels": {"team": "a"},
///  "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}}}
/// ```
public struct NetworkConfig {
    public var cniVersion: String
    public var name: String
    public var type: String
    /// The agent's API socket; the default is /run/membrane/membrane.sock.
    public var socket: String?
    /// The namespace of workloads whose runtime passes no `K8S_POD_NAMESPACE` (default "default").
    public var namespace: String?
    /// `labels` of the configuration, then `args.cni.labels` (the CNI conventions' list of {key, value}), which win.
    public var labels: [String: String]
    /// CHECK: the addresses of `prevResult.ips`.
    public var previousAddresses: [String]?
    /// GC: `cni.dev/valid-attachments`, as (container ID, interface name).
    public var validAttachments: [(containerID: String, ifname: String)]?

    /// Decodes stdin. Not JSON (or not an object) is a decoding failure (6); a missing or malformed key an
    /// invalid configuration (7); unknown keys are ignored, as the specification asks.
    public init(_ data: Data) throws(CNIError) {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw .decodingFailure("cannot decode the network configuration: it is not JSON", details: "\(error)")
        }
        guard let root = object as? [String: Any] else { throw .decodingFailure("the network configuration must be a JSON object") }
        func string(_ key: String, in o: [String: Any], path: String) throws(CNIError) -> String? {
            guard let v = o[key], !(v is NSNull) else { return nil }
            guard let s = v as? String else { throw .invalidConfig("\(path): expected a string") }
            return s
        }
        cniVersion = try string("cniVersion", in: root, path: "cniVersion") ?? CNIVersion.implicit
        guard let name = try string("name", in: root, path: "name"), !name.isEmpty else { throw .invalidConfig("missing network name (\"name\")") }
        guard let type = try string("type", in: root, path: "type"), !type.isEmpty else { throw .invalidConfig("missing plugin type (\"type\")") }
        self.name = name
        self.type = type
        socket = try string("socket", in: root, path: "socket")
        namespace = try string("namespace", in: root, path: "namespace")
        labels = [:]
        if let l = root["labels"], !(l is NSNull) {
            guard let map = l as? [String: Any] else { throw .invalidConfig("labels: expected an object of strings") }
            for (k, v) in map {
                guard let s = v as? String else { throw .invalidConfig("labels.\(k): expected a string") }
                labels[k] = s
            }
        }
        if let args = root["args"] as? [String: Any], let cni = args["cni"] as? [String: Any], let list = cni["labels"] {
            guard let items = list as? [Any] else { throw .invalidConfig("args.cni.labels: expected a list of {key, value}") }
            for (i, item) in items.enumerated() {
                guard let o = item as? [String: Any], let k = o["key"] as? String, let v = o["value"] as? String, !k.isEmpty else {
                    throw .invalidConfig("args.cni.labels[\(i)]: expected {\"key\": string, \"value\": string}")
                }
                labels[k] = v
            }
        }
        if let prev = root["prevResult"] as? [String: Any] {
            previousAddresses = (prev["ips"] as? [Any] ?? []).compactMap { ($0 as? [String: Any])?["address"] as? String }
        }
        if let list = root["cni.dev/valid-attachments"] {
            guard let items = list as? [Any] else { throw .invalidConfig("cni.dev/valid-attachments: expected a list") }
            validAttachments = try items.enumerated().map { (i, item) throws(CNIError) in
                guard let o = item as? [String: Any], let c = o["containerID"] as? String, let f = o["ifname"] as? String else {
                    throw .invalidConfig("cni.dev/valid-attachments[\(i)]: expected {\"containerID\": string, \"ifname\": string}")
                }
                return (c, f)
            }
        }
    }
}

/// An ADD result, in the format of the configuration's version.
public struct CNIResult: Equatable, Sendable {
    public struct Interface: Equatable, Sendable {
        public var name: String
        public var mac: String?
        public var sandbox: String?
        public init(name: String, mac: String? = nil, sandbox: String? = nil) { self.name = name; self.mac = mac; self.sandbox = sandbox }
    }
    public struct IPConfig: Equatable, Sendable {
        public var address: String
        public var gateway: String?
        public var interface: Int?
        public init(address: String, gateway: String? = nil, interface: Int? = nil) { self.address = address; self.gateway = gateway; self.interface = interface }
    }
    public struct Route: Equatable, Sendable {
        public var dst: String
        public var gw: String?
        public init(dst: String, gw: String? = nil) { self.dst = dst; self.gw = gw }
    }
    public var interfaces: [Interface]
    public var ips: [IPConfig]
    public var routes: [Route]

    public init(interfaces: [Interface], ips: [IPConfig], routes: [Route]) { self.interfaces = interfaces; self.ips = ips; self.routes = routes }

    /// The result as JSON for `version`: before 1.0.0 every IP carries `"version": "4"`.
    public func json(cniVersion: String) -> [String: Any] {
        let legacy = !CNIVersion.atLeast(cniVersion, "1.0.0")
        return [
            "cniVersion": cniVersion,
            "interfaces": interfaces.map { i -> [String: Any] in
                var o: [String: Any] = ["name": i.name]
                if let mac = i.mac { o["mac"] = mac }
                if let sandbox = i.sandbox { o["sandbox"] = sandbox }
                return o
            },
            "ips": ips.map { ip -> [String: Any] in
                var o: [String: Any] = ["address": ip.address]
                if legacy { o["version"] = ip.address.contains(":") ? "6" : "4" }
                if let g = ip.gateway { o["gateway"] = g }
                if let i = ip.interface { o["interface"] = i }
                return o
            },
            "routes": routes.map { r -> [String: Any] in
                var o: [String: Any] = ["dst": r.dst]
                if let gw = r.gw { o["gw"] = gw }
                return o
            },
            "dns": [String: Any](),
        ]
    }
}
