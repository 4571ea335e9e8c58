import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Description of one endpoint's network plumbing: a network namespace wired to the host by a veth pair.
public struct EndpointPlumbing: Sendable, Hashable, Codable {
    /// Sanitized workload name, e.g. "prod-backend-1".
    public var name: String
    /// Network namespace name, e.g. "mb-ep-1234".
    public var netns: String
    /// Host-side veth name, e.g. "mbh1234" (at most 15 characters).
    public var hostInterface: String
    /// ifindex of the host-side veth.
    public var hostIfindex: Int32
    /// Interface name inside the namespace ("eth0").
    public var containerInterface: String
    /// The endpoint's IPv4 address, e.g. "10.200.0.17".
    public var ipv4: String
    /// MAC address of the container-side interface.
    public var mac: String
    /// The path of a network namespace someone else owns (a container runtime's, through the CNI plugin):
    /// Membrane wires its veth into it and takes only the veth and the host route away again, never the
    /// namespace. `nil` for the namespaces Membrane creates itself (named `netns`).
    public var netnsPath: String?

    public init(name: String, netns: String, hostInterface: String, hostIfindex: Int32,
                containerInterface: String, ipv4: String, mac: String, netnsPath: String? = nil) {
        self.name = name
        self.netns = netns
        self.hostInterface = hostInterface
        self.hostIfindex = hostIfindex
        self.containerInterface = containerInterface
        self.ipv4 = ipv4
        self.mac = mac
        self.netnsPath = netnsPath
    }

    /// Whether the network namespace belongs to someone else (see `netnsPath`).
    public var isExternalNetns: Bool { netnsPath != nil }
}

public enum PlumbingError: Error, CustomStringConvertible {
    /// A command failed: full command line, exit status (-1: could not be started), trimmed stderr.
    case command(String, status: Int32, stderr: String)
    /// The request was rejected before anything was changed.
    case invalid(String)

    public var description: String {
        switch self {
        case let .command(cmd, status, stderr):
            return "command failed (status \(status)): \(cmd)" + (stderr.isEmpty ? "" : ": \(stderr)")
        case let .invalid(message):
            return "invalid plumbing request: \(message)"
        }
    }
}

public enum Plumbing {
    /// Prefix of the namespaces this module creates.
    static let netnsPrefix = "mb-ep-"
    /// Prefix of the host-side veths.
    static let hostPrefix = "mbh"
    /// Prefix of the temporary container-side veth name (before it is moved and renamed).
    static let peerPrefix = "mbc"
    /// Link-local next hop the namespaces use as their default gateway (answered by the host veth).
    static let gateway = "169.254.1.1"
    static let containerInterfaceName = "eth0"

    // MARK: - Public API

    /// Idempotent host preparation: enables IPv4 forwarding (only written when not already on).
    public static func prepareHost() throws {
        guard PlumbingRunner.locate("ip") != nil else {
            throw PlumbingError.invalid("iproute2 `ip` not found (looked in /usr/sbin, /sbin, /usr/bin, /bin and PATH)")
        }
        try setSysctl("net.ipv4.ip_forward", "1")
    }

    /// Creates netns + veth pair and wires it up (see the module documentation). On failure everything created so
    /// far is removed again before the error is rethrown.
    public static func createEndpoint(id: UInt16, name: String, ipv4: String) throws -> EndpointPlumbing {
        guard let addr = canonicalIPv4(ipv4) else {
            throw PlumbingError.invalid("bad IPv4 address \(String(reflecting: ipv4))")
        }
        let ns = netnsPrefix + String(id)
        let host = hostPrefix + String(id)
        let peer = peerPrefix + String(id)
        let label = sanitize(name, id: id)

        // Refuse to clobber anything that already exists.
        if netnsExists(ns) { throw PlumbingError.invalid("network namespace \(ns) already exists") }
        for link in [host, peer] where linkExists(link) {
            throw PlumbingError.invalid("link \(link) already exists")
        }
        if let existing = try? PlumbingRunner.check("ip", ["-4", "route", "show", "exact", "\(addr)/32"]),
           !existing.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw PlumbingError.invalid("a host route to \(addr)/32 already exists: \(existing.trimmingCharacters(in: .whitespacesAndNewlines))")
        }

        try prepareHost()

        var createdNetns = false
        var createdLink = false
        do {
            try ip(["netns", "add", ns])
            createdNetns = true
            try ip(["link", "add", host, "type", "veth", "peer", "name", peer])
            createdLink = true
            try ip(["link", "set", "dev", peer, "netns", ns])
            try ip(["-n", ns, "link", "set", "dev", peer, "name", containerInterfaceName])

            // Host side. Endpoints are IPv4-only for now: no IPv6 on either end, so no link-local neighbour
            // discovery traffic that policy would have to judge.
            try setSysctl("net.ipv4.conf.\(host).proxy_arp", "1")
            try setSysctl("net.ipv6.conf.\(host).disable_ipv6", "1")
            try ip(["link", "set", "dev", host, "up"])
            let hostLink = try linkInfo(host, netns: nil)

            // Namespace side.
            try PlumbingRunner.check("ip", ["netns", "exec", ns, "sh", "-c",
                                            "echo 1 > /proc/sys/net/ipv6/conf/\(containerInterfaceName)/disable_ipv6"])
            try ip(["-n", ns, "link", "set", "dev", "lo", "up"])
            try ip(["-n", ns, "addr", "add", "\(addr)/32", "dev", containerInterfaceName])
            try ip(["-n", ns, "link", "set", "dev", containerInterfaceName, "up"])
            try ip(["-n", ns, "route", "add", gateway, "dev", containerInterfaceName, "scope", "link"])
            try ip(["-n", ns, "route", "add", "default", "via", gateway, "dev", containerInterfaceName, "onlink"])
            try ip(["-n", ns, "neigh", "replace", gateway, "lladdr", hostLink.mac,
                    "dev", containerInterfaceName, "nud", "permanent"])
            let inner = try linkInfo(containerInterfaceName, netns: ns)

            // Host route to the endpoint.
            try ip(["route", "add", "\(addr)/32", "dev", host, "scope", "link"])

            return EndpointPlumbing(name: label, netns: ns, hostInterface: host, hostIfindex: hostLink.ifindex,
                                    containerInterface: containerInterfaceName, ipv4: addr, mac: inner.mac)
        } catch {
            // Roll back what we created (best effort); the original error is the interesting one.
            if createdLink {
                for link in [host, peer] where linkExists(link) {
                    _ = try? PlumbingRunner.run("ip", ["link", "del", "dev", link], timeout: 30)
                }
            }
            if createdNetns {
                _ = try? PlumbingRunner.run("ip", ["netns", "del", ns], timeout: 30)
            }
            throw error
        }
    }

    /// Wires a veth into a network namespace someone else created (a container runtime's, given by path, e.g.
    /// `/var/run/netns/x` or `/proc/PID/ns/net`), as `createEndpoint` does for its own: the container side is
    /// named `interfaceName` and gets the /32 address, the link-local gateway and a default route; the host
    /// side gets a /32 route. The namespace itself is neither created nor, on failure or `deleteEndpoint`,
    /// removed. On failure the veth pair is removed again before the error is rethrown.
    public static func attachEndpoint(id: UInt16, name: String, ipv4: String, netnsPath: String,
                                      interfaceName: String = "eth0") throws -> EndpointPlumbing {
        guard let addr = canonicalIPv4(ipv4) else {
            throw PlumbingError.invalid("bad IPv4 address \(String(reflecting: ipv4))")
        }
        guard isValidInterfaceName(interfaceName) else {
            throw PlumbingError.invalid("bad interface name \(String(reflecting: interfaceName)) (1-15 characters, no '/', ':' or spaces)")
        }
        guard netnsPath.hasPrefix("/"), !netnsPath.contains("\0") else {
            throw PlumbingError.invalid("the network namespace must be an absolute path, got \(String(reflecting: netnsPath))")
        }
        guard FileManager.default.fileExists(atPath: netnsPath) else {
            throw PlumbingError.invalid("network namespace \(netnsPath) does not exist")
        }
        let host = hostPrefix + String(id)
        let peer = peerPrefix + String(id)
        let label = sanitize(name, id: id)
        for link in [host, peer] where linkExists(link) {
            throw PlumbingError.invalid("link \(link) already exists")
        }
        // The namespace must be one (nsenter fails otherwise) and must not have the interface yet.
        let probe = try PlumbingRunner.run("nsenter", ["--net=\(netnsPath)", ipTool, "-o", "link", "show"], timeout: 30)
        guard probe.status == 0 else {
            throw PlumbingError.invalid("\(netnsPath) is not a network namespace: \(probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        if probe.stdout.split(separator: "\n").contains(where: { parseLinkLine(String($0))?.name == interfaceName }) {
            throw PlumbingError.invalid("interface \(interfaceName) already exists in \(netnsPath)")
        }
        if let existing = try? PlumbingRunner.check("ip", ["-4", "route", "show", "exact", "\(addr)/32"]),
           !existing.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw PlumbingError.invalid("a host route to \(addr)/32 already exists: \(existing.trimmingCharacters(in: .whitespacesAndNewlines))")
        }

        try prepareHost()

        var createdLink = false
        do {
            try ip(["link", "add", host, "type", "veth", "peer", "name", peer])
            createdLink = true
            try ip(["link", "set", "dev", peer, "netns", netnsPath])   // iproute2 takes a path when it has a '/'
            try ipIn(netnsPath, ["link", "set", "dev", peer, "name", interfaceName])

            try setSysctl("net.ipv4.conf.\(host).proxy_arp", "1")
            try setSysctl("net.ipv6.conf.\(host).disable_ipv6", "1")
            try ip(["link", "set", "dev", host, "up"])
            let hostLink = try linkInfo(host, netns: nil)

            try ipIn(netnsPath, ["link", "set", "dev", "lo", "up"])
            try ipIn(netnsPath, ["addr", "add", "\(addr)/32", "dev", interfaceName])
            try ipIn(netnsPath, ["link", "set", "dev", interfaceName, "up"])
            try ipIn(netnsPath, ["route", "add", gateway, "dev", interfaceName, "scope", "link"])
            try ipIn(netnsPath, ["route", "add", "default", "via", gateway, "dev", interfaceName, "onlink"])
            try ipIn(netnsPath, ["neigh", "replace", gateway, "lladdr", hostLink.mac, "dev", interfaceName, "nud", "permanent"])
            let innerLine = try ipIn(netnsPath, ["-o", "link", "show", "dev", interfaceName])
            guard let inner = innerLine.split(separator: "\n").first.flatMap({ parseLinkLine(String($0)) }), !inner.mac.isEmpty else {
                throw PlumbingError.command("ip -o link show dev \(interfaceName) in \(netnsPath)", status: 0,
                                            stderr: "could not parse link description: \(innerLine)")
            }

            try ip(["route", "add", "\(addr)/32", "dev", host, "scope", "link"])

            return EndpointPlumbing(name: label, netns: displayName(netnsPath: netnsPath), hostInterface: host,
                                    hostIfindex: hostLink.ifindex, containerInterface: interfaceName, ipv4: addr,
                                    mac: inner.mac, netnsPath: netnsPath)
        } catch {
            if createdLink {
                // Deleting either end removes the pair; the peer may still be in the host namespace or already moved.
                for link in [host, peer] where linkExists(link) {
                    _ = try? PlumbingRunner.run("ip", ["link", "del", "dev", link], timeout: 30)
                }
            }
            throw error
        }
    }

    /// How a runtime's namespace is shown: its name when it lives in /var/run/netns (so `ip netns exec` works),
    /// else its path.
    static func displayName(netnsPath: String) -> String {
        for dir in ["/var/run/netns/", "/run/netns/"] where netnsPath.hasPrefix(dir) {
            let rest = String(netnsPath.dropFirst(dir.count))
            if isSafeName(rest) { return rest }
        }
        return netnsPath
    }

    /// Linux interface names: 1-15 bytes, no '/', ':' or whitespace, not "." or "..".
    public static func isValidInterfaceName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 15 && s != "." && s != ".."
            && !s.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace || !$0.isASCII || $0 == "\0" })
    }

    /// What is wrong with an endpoint's plumbing (empty when nothing is): the host veth and route, and inside the
    /// namespace the interface, its address and the default route.
    public static func verify(_ e: EndpointPlumbing) -> [String] {
        var problems: [String] = []
        if let info = try? linkInfo(e.hostInterface, netns: nil) {
            if info.ifindex != e.hostIfindex { problems.append("host interface \(e.hostInterface) has ifindex \(info.ifindex), expected \(e.hostIfindex)") }
        } else {
            problems.append("host interface \(e.hostInterface) does not exist")
        }
        let route = (try? PlumbingRunner.check("ip", ["-4", "route", "show", "exact", "\(e.ipv4)/32"])) ?? ""
        if !route.contains("dev \(e.hostInterface)") { problems.append("no host route to \(e.ipv4)/32 via \(e.hostInterface)") }
        let inNetns: ([String]) -> String? = { args in
            if let path = e.netnsPath {
                guard FileManager.default.fileExists(atPath: path) else { return nil }
                return try? ipIn(path, args)
            }
            return try? ip(["-n", e.netns] + args)
        }
        guard let addrs = inNetns(["-o", "-4", "addr", "show", "dev", e.containerInterface]) else {
            problems.append("interface \(e.containerInterface) does not exist in network namespace \(e.netnsPath ?? e.netns)")
            return problems
        }
        if !addrs.contains("inet \(e.ipv4)/32") {
            problems.append("interface \(e.containerInterface) does not have the address \(e.ipv4)/32")
        }
        let routes = inNetns(["-4", "route", "show", "default"]) ?? ""
        if !routes.contains("via \(gateway)") || !routes.contains("dev \(e.containerInterface)") {
            problems.append("no default route via \(gateway) dev \(e.containerInterface) in the network namespace")
        }
        return problems
    }

    /// Removes the route, the veth pair and the namespace (only the route and the veth pair when the namespace
    /// belongs to someone else). Missing pieces are not errors.
    public static func deleteEndpoint(_ e: EndpointPlumbing) throws {
        guard e.isExternalNetns || (e.netns.hasPrefix(netnsPrefix) && isSafeName(e.netns)) else {
            throw PlumbingError.invalid("refusing to delete namespace \(String(reflecting: e.netns)) (not created by Membrane)")
        }
        guard e.hostInterface.hasPrefix(hostPrefix), isSafeName(e.hostInterface), e.hostInterface.count <= 15 else {
            throw PlumbingError.invalid("refusing to delete link \(String(reflecting: e.hostInterface)) (not created by Membrane)")
        }

        if linkExists(e.hostInterface) {
            if let addr = canonicalIPv4(e.ipv4) {
                // Only our route (dev-qualified); absence is fine.
                _ = try? PlumbingRunner.run("ip", ["route", "del", "\(addr)/32", "dev", e.hostInterface], timeout: 30)
            }
            let outcome = try PlumbingRunner.run("ip", ["link", "del", "dev", e.hostInterface], timeout: 30)
            if outcome.status != 0 && linkExists(e.hostInterface) {
                throw PlumbingError.command(PlumbingRunner.commandLine(["ip", "link", "del", "dev", e.hostInterface]),
                                            status: outcome.status,
                                            stderr: outcome.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        // A half-created endpoint may have left the temporary peer in the host namespace.
        let peer = peerPrefix + e.hostInterface.dropFirst(hostPrefix.count)
        if linkExists(peer) {
            _ = try? PlumbingRunner.run("ip", ["link", "del", "dev", peer], timeout: 30)
        }
        if !e.isExternalNetns && netnsExists(e.netns) {
            let outcome = try PlumbingRunner.run("ip", ["netns", "del", e.netns], timeout: 30)
            if outcome.status != 0 && netnsExists(e.netns) {
                throw PlumbingError.command(PlumbingRunner.commandLine(["ip", "netns", "del", e.netns]),
                                            status: outcome.status,
                                            stderr: outcome.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
    }

    /// Runs `argv` inside the endpoint's namespace (`ip netns exec NS argv...`, or `nsenter --net=PATH argv...` for
    /// a namespace given by path). The command is killed after
    /// `timeout` seconds (status 124 then; `timeout <= 0` waits forever). `stdin` is fed to the command if given.
    /// A non-zero exit is returned, not thrown; throws only when the command cannot be started.
    public static func exec(_ e: EndpointPlumbing, _ argv: [String], timeout: Double = 10,
                            stdin: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        guard !argv.isEmpty else { throw PlumbingError.invalid("empty command") }
        if let path = e.netnsPath {
            let outcome = try PlumbingRunner.run("nsenter", ["--net=\(path)", "--"] + argv,
                                                timeout: timeout > 0 ? timeout : nil, stdin: stdin)
            return (outcome.status, outcome.stdout, outcome.stderr)
        }
        guard isSafeName(e.netns), !e.netns.isEmpty else {
            throw PlumbingError.invalid("bad namespace name \(String(reflecting: e.netns))")
        }
        let outcome = try PlumbingRunner.run("ip", ["netns", "exec", e.netns] + argv,
                                            timeout: timeout > 0 ? timeout : nil, stdin: stdin)
        return (outcome.status, outcome.stdout, outcome.stderr)
    }

    /// Namespaces ("mb-ep-*") and host links ("mbh*", plus stray temporary "mbc*") that still exist.
    public static func leftovers() -> (netns: [String], links: [String]) {
        (netnsNames().filter { $0.hasPrefix(netnsPrefix) }.sorted(),
         linkNames().filter { $0.hasPrefix(hostPrefix) || $0.hasPrefix(peerPrefix) }.sorted())
    }

    /// Whether privileged operations can run (uid 0).
    public static var isRoot: Bool { getuid() == 0 }

    // MARK: - Internals

    @discardableResult
    static func ip(_ args: [String]) throws -> String {
        try PlumbingRunner.check("ip", args)
    }

    /// `ip`, found once, for commands run through nsenter.
    static var ipTool: String { PlumbingRunner.locate("ip") ?? "ip" }

    /// Runs `ip args...` inside the network namespace at `path`.
    @discardableResult
    static func ipIn(_ path: String, _ args: [String]) throws -> String {
        try PlumbingRunner.check("nsenter", ["--net=\(path)", ipTool] + args)
    }

    /// Sets a sysctl via `sysctl -w` (or /proc/sys when `sysctl` is absent); skipped when already set.
    static func setSysctl(_ key: String, _ value: String) throws {
        let path = "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/")
        if let current = try? String(contentsOfFile: path, encoding: .utf8),
           current.trimmingCharacters(in: .whitespacesAndNewlines) == value {
            return
        }
        if PlumbingRunner.locate("sysctl") != nil {
            try PlumbingRunner.check("sysctl", ["-q", "-w", "\(key)=\(value)"])
        } else {
            do {
                try (value + "\n").write(toFile: path, atomically: false, encoding: .utf8)
            } catch {
                throw PlumbingError.command("write \(value) > \(path)", status: -1, stderr: "\(error)")
            }
        }
    }

    /// Parses a dotted-quad IPv4 address strictly (no leading zeros, no shorthand) and rejects addresses that
    /// cannot be an endpoint: 0/8, 127/8, 169.254/16 (the gateway lives there), multicast and above.
    static func canonicalIPv4(_ s: String) -> String? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [Int] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  part == "0" || !part.hasPrefix("0"), let v = Int(part), v <= 255 else { return nil }
            octets.append(v)
        }
        if octets[0] == 0 || octets[0] == 127 || octets[0] >= 224 { return nil }
        if octets[0] == 169 && octets[1] == 254 { return nil }
        return octets.map(String.init).joined(separator: ".")
    }

    /// Keeps [A-Za-z0-9._-], maps anything else to "-", collapses runs, trims, caps at 63 characters.
    static func sanitize(_ name: String, id: UInt16) -> String {
        var out = ""
        for ch in name {
            let ok = ch.isASCII && (ch.isLetter || ch.isNumber || ch == "-" || ch == "_" || ch == ".")
            let c: Character = ok ? ch : "-"
            if c == "-" && out.hasSuffix("-") { continue }
            out.append(c)
        }
        out = String(out.trimmingCharacters(in: CharacterSet(charactersIn: "-.")).prefix(63))
        return out.isEmpty ? "ep-\(id)" : out
    }

    static func isSafeName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            && s != "." && s != ".."
    }

    static func linkExists(_ name: String, netns: String? = nil) -> Bool {
        let args = (netns.map { ["-n", $0] } ?? []) + ["-o", "link", "show", "dev", name]
        return (try? PlumbingRunner.run("ip", args, timeout: 30).status) == 0
    }

    static func netnsExists(_ name: String) -> Bool {
        netnsNames().contains(name)
    }

    static func netnsNames() -> [String] {
        guard let out = try? PlumbingRunner.check("ip", ["netns", "list"]) else { return [] }
        // Lines look like "mb-ep-1 (id: 3)" or just "mb-ep-1".
        return out.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first.map(String.init)
        }
    }

    static func linkNames() -> [String] {
        guard let out = try? PlumbingRunner.check("ip", ["-o", "link", "show"]) else { return [] }
        return out.split(separator: "\n").compactMap { parseLinkLine(String($0))?.name }
    }

    struct LinkInfo { var ifindex: Int32; var name: String; var mac: String }

    /// Parses one line of `ip -o link show`: "7: mbh1@if6: <...> ... link/ether aa:bb:cc:dd:ee:ff brd ...".
    static func parseLinkLine(_ line: String) -> LinkInfo? {
        let fields = line.components(separatedBy: ": ")
        guard fields.count >= 2, let index = Int32(fields[0].trimmingCharacters(in: .whitespaces)) else { return nil }
        var name = fields[1]
        if let at = name.firstIndex(of: "@") { name = String(name[..<at]) }
        var mac = ""
        let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\\" || $0 == "\t" })
        if let i = tokens.firstIndex(where: { $0.hasPrefix("link/") }), i + 1 < tokens.count {
            mac = String(tokens[i + 1])
        }
        return LinkInfo(ifindex: index, name: name, mac: mac)
    }

    static func linkInfo(_ name: String, netns: String?) throws -> LinkInfo {
        let args = (netns.map { ["-n", $0] } ?? []) + ["-o", "link", "show", "dev", name]
        let out = try ip(args)
        guard let line = out.split(separator: "\n").first, let info = parseLinkLine(String(line)), !info.mac.isEmpty else {
            throw PlumbingError.command(PlumbingRunner.commandLine(["ip"] + args), status: 0,
                                        stderr: "could not parse link description: \(out)")
        }
        return info
    }
}
