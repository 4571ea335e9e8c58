import Yams

/// Where a `toPorts` element sits; the rules Cilium applies to it depend on it.
struct RuleContext {
    enum Direction { case ingress, egress }
    var direction: Direction
    var deny: Bool
    /// The spec selects nodes (`nodeSelector`, host firewall).
    var hostPolicy: Bool

    var fieldName: String {
        switch (direction, deny) {
        case (.ingress, false): "ingress"; case (.ingress, true): "ingressDeny"
        case (.egress, false): "egress"; case (.egress, true): "egressDeny"
        }
    }
}

/// Cilium's per-element limits (pkg/policy/api: maxPorts, maxICMPFields).
enum Limits {
    static let maxPorts = 40
    static let maxICMPFields = 40
}

/// `toPorts[]` elements, their `ports`, their L7 `rules`, and `icmps`.
extension DocumentReader {
    func portRule(_ node: Node, _ path: String, _ ctx: RuleContext) -> PortRule? {
        let unsupported: [String: String]
        if ctx.deny {
            let why = "is not allowed in deny rules (\(ctx.fieldName) toPorts may only list ports)"
            unsupported = ["rules": "L7 rules are not allowed in deny rules (\(ctx.fieldName) toPorts may only list ports)",
                           "serverNames": "serverNames " + why, "listener": "listener " + why,
                           "originatingTLS": "originatingTLS " + why, "terminatingTLS": "terminatingTLS " + why]
        } else {
            unsupported = ["serverNames": "serverNames (TLS SNI matching) is not supported by Membrane",
                           "listener": "listener (Envoy listener references) is not supported by Membrane",
                           "originatingTLS": "originatingTLS is not supported by Membrane",
                           "terminatingTLS": "terminatingTLS is not supported by Membrane"]
        }
        guard let f = fields(node, path, allowed: ctx.deny ? ["ports"] : ["ports", "rules"], unsupported: unsupported)
        else { return nil }
        let before = errors.count
        var ports: [PortProtocol] = []
        var portNodes: [Node] = []
        if let n = f["ports"] {
            if case .sequence(let seq) = n, seq.count > Limits.maxPorts {
                fail(f.path("ports"), n, "too many ports: \(seq.count) (Cilium allows at most \(Limits.maxPorts) per toPorts element)")
            }
            ports = list(n, f.path("ports")) { pn, pp -> PortProtocol? in
                let v = self.portProtocol(pn, pp)
                if v != nil { portNodes.append(pn) }
                return v
            } ?? []
        }
        var rules: L7Rules?
        if let n = f["rules"] { rules = l7Rules(n, f.path("rules"), ctx) }

        if let rules, errors.count == before {
            checkL7(rules, ports: ports, portNodes: portNodes, f, ctx)
        }
        return errors.count == before ? PortRule(ports: ports, rules: rules) : nil
    }

    /// Cilium's `PortRule.sanitize` checks that tie L7 rules to the ports they apply to.
    private func checkL7(_ rules: L7Rules, ports: [PortProtocol], portNodes: [Node], _ f: Fields, _ ctx: RuleContext) {
        let rulesPath = f.path("rules")
        let name = rules.parserName
        if case .dns = rules {
            if ctx.direction == .ingress {
                fail(rulesPath + ".dns", f["rules"], "DNS rules are not allowed on ingress")
                return
            }
            if ports.isEmpty {
                fail(f.path("ports"), f["ports"] ?? f.node, "DNS rules need at least one port (usually 53)")
            }
        } else if ctx.hostPolicy {
            fail(rulesPath + "." + name, f["rules"], "host policies (nodeSelector) do not support \(name) L7 rules")
            return
        }
        for (i, p) in ports.enumerated() {
            let pp = "\(f.path("ports"))[\(i)]"
            let pn = i < portNodes.count ? portNodes[i] : nil
            if p.port == .any {
                fail(pp + ".port", pn?["port"] ?? pn, "L7 rules (\(name)) can not be used when the port is 0 (any port); name a port")
            }
            if case .dns = rules {
                if let end = p.endPort, case .number(let start) = p.port, end > start {
                    fail(pp + ".endPort", pn?["endPort"], "DNS rules do not support port ranges")
                }
            } else if p.protocol != .tcp {
                fail(pp + ".protocol", pn?["protocol"] ?? pn,
                     "\(name) rules can only apply to TCP (not \(p.protocol.rawValue)); set protocol: TCP")
            }
        }
    }

    /// One `ports[]` entry: `{port, endPort, protocol}`.
    func portProtocol(_ node: Node, _ path: String) -> PortProtocol? {
        guard let f = fields(node, path, allowed: ["port", "endPort", "protocol"]) else { return nil }
        let before = errors.count
        var port = PortSpec.any
        if let n = f["port"], let p = ciliumPort(n, f.path("port")) { port = p }
        var proto = L4Protocol.any
        if let n = f["protocol"] {
            if let s = n.scalarText, ["ICMP", "ICMPv6", "ICMPV6", "icmp", "icmpv6"].contains(s) {
                fail(f.path("protocol"), n, "protocol \(s) is not allowed in toPorts; use icmps to allow ICMP types")
            } else if let p = enumValue(n, f.path("protocol"), L4Protocol.allCases) { proto = p }
        }
        var endPort: UInt16?
        if let n = f["endPort"], let e = int(n, f.path("endPort")), e != 0 {
            endPort = checkEndPort(e, port: port, n, f.path("endPort"))
        }
        return errors.count == before ? PortProtocol(port: port, endPort: endPort, protocol: proto) : nil
    }

    /// endPort rules shared by Cilium and Kubernetes policies: only after a numeric, nonzero port,
    /// not below it, and within 0–65535.
    func checkEndPort(_ e: Int, port: PortSpec, _ node: Node, _ path: String) -> UInt16? {
        guard e > 0 && e <= 65535 else {
            fail(path, node, "endPort \(e) is out of range (1-65535)")
            return nil
        }
        switch port {
        case .any:
            fail(path, node, "endPort \(e) needs a numeric, nonzero port to start the range (port is 0 or missing)")
            return nil
        case .named(let name):
            fail(path, node, "endPort \(e) can not be used with the named port \"\(name)\"; ranges need a numeric port")
            return nil
        case .number(let start):
            if e < Int(start) {
                fail(path, node, "endPort \(e) is less than port \(start)")
                return nil
            }
            return UInt16(e)
        }
    }

    /// A Cilium `port`: a string or a number, `0`/empty for any port, or an IANA service name.
    func ciliumPort(_ node: Node, _ path: String) -> PortSpec? {
        guard case .scalar(let s) = node else {
            fail(path, node, "expected a port number or name, found \(node.kindDescription)")
            return nil
        }
        let text = s.string
        if text.isEmpty { return .any }
        if let v = ScalarSyntax.intValue(text), !text.hasPrefix("+"), !text.hasPrefix("-") {
            guard v <= 65535 else {
                fail(path, node, "port \(text) is out of range (0-65535)")
                return nil
            }
            return v == 0 ? .any : .number(UInt16(v))
        }
        if text.hasPrefix("-") && ScalarSyntax.intValue(text) != nil {
            fail(path, node, "port \(text) is out of range (0-65535)")
            return nil
        }
        if PortSyntax.isServiceName(text) { return .named(text.lowercased()) }
        fail(path, node, "invalid port \"\(text)\": expected a number 0-65535 or a port name (at most 15 letters, digits and '-', with at least one letter)")
        return nil
    }

    // MARK: L7

    func l7Rules(_ node: Node, _ path: String, _ ctx: RuleContext) -> L7Rules? {
        guard let f = fields(node, path, allowed: ["http", "kafka", "dns"],
                             unsupported: ["l7proto": "l7proto (generic L7 parsers) is not supported by Membrane",
                                           "l7": "l7 (generic L7 rules) is not supported by Membrane"])
        else { return nil }
        let http = optionalList(f, "http", httpRule)
        let kafka = optionalList(f, "kafka", kafkaRule)
        let dns = optionalList(f, "dns", fqdnSelector)
        // As in Cilium, an empty list is "no rules of that kind".
        var present: [L7Rules] = []
        if let http, !http.isEmpty { present.append(.http(http)) }
        if let kafka, !kafka.isEmpty { present.append(.kafka(kafka)) }
        if let dns, !dns.isEmpty { present.append(.dns(dns)) }
        if present.count > 1 {
            fail(path, node, "multiple L7 protocol rule types specified in single rule (\(present.map(\.parserName).joined(separator: ", "))); use separate toPorts elements")
            return nil
        }
        return present.first
    }

    func httpRule(_ node: Node, _ path: String) -> HTTPRule? {
        guard let f = fields(node, path, allowed: ["method", "path", "host", "headers", "headerMatches"]) else { return nil }
        let before = errors.count
        var rule = HTTPRule()
        rule.method = regexField(f, "method")
        rule.path = regexField(f, "path")
        rule.host = regexField(f, "host")
        rule.headers = optionalList(f, "headers") { n, p in self.string(n, p) } ?? []
        rule.headerMatches = optionalList(f, "headerMatches", headerMatch) ?? []
        return errors.count == before ? rule : nil
    }

    /// HTTP method/path/host are extended regular expressions; a pattern that does not compile is an error.
    private func regexField(_ f: Fields, _ key: String) -> String? {
        guard let n = f[key], let s = string(n, f.path(key)) else { return nil }
        do {
            _ = try Regex(s)
        } catch {
            fail(f.path(key), n, "invalid regular expression \"\(s)\" in \(key): \(error)")
        }
        return s
    }

    func headerMatch(_ node: Node, _ path: String) -> HTTPHeaderMatch? {
        guard let f = fields(node, path, allowed: ["name", "value", "mismatch"],
                             unsupported: ["secret": "secret (header values from Kubernetes Secrets) is not supported by Membrane"])
        else { return nil }
        let before = errors.count
        let name = requiredString(f, "name")
        if let name, name.isEmpty { fail(f.path("name"), f["name"], "header name must not be empty") }
        let value = optionalString(f, "value")
        var mismatch: HTTPHeaderMatch.Mismatch?
        if let n = f["mismatch"] { mismatch = enumValue(n, f.path("mismatch"), HTTPHeaderMatch.Mismatch.allCases) }
        guard errors.count == before, let name else { return nil }
        return HTTPHeaderMatch(name: name, value: value, mismatch: mismatch)
    }

    func kafkaRule(_ node: Node, _ path: String) -> KafkaRule? {
        guard let f = fields(node, path, allowed: ["role", "apiKey", "apiVersion", "clientID", "topic"]) else { return nil }
        let before = errors.count
        var rule = KafkaRule()
        if f.has("role") && f.has("apiKey") {
            fail(path, node, "role and apiKey are mutually exclusive in a kafka rule")
        }
        if let n = f["role"], let s = string(n, f.path("role")) {
            if NameTables.kafkaRoles.contains(s.lowercased()) { rule.role = s.lowercased() } else {
                fail(f.path("role"), n, "expected one of produce, consume, found \"\(s)\"")
            }
        }
        if let n = f["apiKey"], let s = string(n, f.path("apiKey")) {
            let lower = s.lowercased()
            if NameTables.kafkaAPIKeys.contains(lower) {
                rule.apiKey = lower
            } else if let v = ScalarSyntax.intValue(s), v >= 0, v <= 32767 {
                rule.apiKey = String(v)
            } else {
                var msg = "unknown Kafka apiKey \"\(s)\": expected an API key name (produce, fetch, metadata, …) or a number"
                if let sug = Suggest.nearest(lower, in: NameTables.kafkaAPIKeys, maxDistance: 2) { msg += "; did you mean \"\(sug)\"?" }
                fail(f.path("apiKey"), n, msg)
            }
        }
        if let n = f["apiVersion"], let s = string(n, f.path("apiVersion")) {
            if let v = ScalarSyntax.intValue(s), v >= 0, v <= 32767 { rule.apiVersion = String(v) } else {
                fail(f.path("apiVersion"), n, "invalid Kafka apiVersion \"\(s)\": expected a number 0-32767")
            }
        }
        if let n = f["clientID"], let s = string(n, f.path("clientID")) { rule.clientID = s }
        if let n = f["topic"], let s = string(n, f.path("topic")) {
            if s.utf8.count > 255 {
                fail(f.path("topic"), n, "Kafka topic is longer than 255 characters")
            } else if !s.utf8.allSatisfy({ LabelSyntax.isAlnum($0) || $0 == 46 || $0 == 95 || $0 == 45 }) {
                fail(f.path("topic"), n, "invalid Kafka topic \"\(s)\": only letters, digits, '.', '_' and '-' are allowed")
            }
            rule.topic = s
        }
        return errors.count == before ? rule : nil
    }

    // MARK: ICMP

    /// One `icmps[]` element: `{fields: [{type, family}]}`.
    func icmpRule(_ node: Node, _ path: String) -> [ICMPField]? {
        guard let f = fields(node, path, allowed: ["fields"]) else { return nil }
        guard let n = f["fields"] else { return [] }
        if case .sequence(let seq) = n, seq.count > Limits.maxICMPFields {
            fail(f.path("fields"), n, "too many ICMP types: \(seq.count) (Cilium allows at most \(Limits.maxICMPFields))")
            return nil
        }
        return list(n, f.path("fields"), icmpField)
    }

    func icmpField(_ node: Node, _ path: String) -> ICMPField? {
        guard let f = fields(node, path, allowed: ["type", "family"]) else { return nil }
        let before = errors.count
        var family = IPFamily.ipv4
        // An empty family is IPv4, as in Cilium's code (the CRD default).
        if let n = f["family"], n.scalarText != "" {
            family = enumValue(n, f.path("family"), [IPFamily.ipv4, .ipv6]) ?? .ipv4
        }
        var type: UInt8?
        if let n = f["type"] {
            let p = f.path("type")
            if let s = n.scalarText, case .scalar = n {
                if let v = ScalarSyntax.intValue(s) {
                    if v >= 0 && v <= 255 { type = UInt8(v) } else { fail(p, n, "ICMP type \(v) is out of range (0-255)") }
                } else {
                    let table = family == .ipv4 ? NameTables.icmpV4 : NameTables.icmpV6
                    if let hit = table.first(where: { $0.0 == s }) { type = hit.1 } else {
                        var msg = "unknown \(family.rawValue) ICMP type name \"\(s)\""
                        if let sug = Suggest.nearest(s, in: table.map(\.0)) { msg += "; did you mean \"\(sug)\"?" }
                        fail(p, n, msg)
                    }
                }
            } else {
                fail(p, n, "expected an ICMP type number or name, found \(n.kindDescription)")
            }
        } else { missing(f, "type") }
        guard errors.count == before, let type else { return nil }
        return ICMPField(family: family, type: type)
    }
}
