import PolicyAPI

/// DNS name matching for `toFQDNs` and DNS rules, with Cilium's semantics: case-insensitive, trailing
/// dot optional, `*` matches any run of `[-a-zA-Z0-9_]` within one label, and `*` alone matches every name.
public enum FQDNMatcher {
    /// The normalized text of a selector; also the key of the `fqdn:` label it gives to addresses.
    public static func canonicalSelector(_ s: FQDNSelector) -> String {
        normalize(s.matchName ?? s.matchPattern ?? "")
    }

    public static func normalize(_ name: String) -> String {
        var n = name.lowercased()
        while n.hasSuffix(".") && n.count > 1 { n.removeLast() }
        return n
    }

    public static func matches(_ selector: FQDNSelector, name: String) -> Bool {
        let query = normalize(name)
        if let exact = selector.matchName { return normalize(exact) == query }
        return matches(pattern: normalize(selector.matchPattern ?? ""), name: query)
    }

    /// Glob match of a normalized pattern against a normalized name.
    public static func matches(pattern: String, name: String) -> Bool {
        if pattern == "*" { return true }
        let p = Array(pattern.utf8), n = Array(name.utf8)
        func isLabelChar(_ c: UInt8) -> Bool {
            (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 || c == 95 || (c >= 65 && c <= 90)
        }
        // Iterative glob with backtracking to the last star (stars never cross a dot).
        var pi = 0, ni = 0, starP = -1, starN = 0
        while ni < n.count {
            if pi < p.count && p[pi] == 42 { starP = pi; starN = ni; pi += 1; continue }
            if pi < p.count && p[pi] == n[ni] { pi += 1; ni += 1; continue }
            if starP >= 0 && isLabelChar(n[starN]) { starN += 1; ni = starN; pi = starP + 1; continue }
            return false
        }
        while pi < p.count && p[pi] == 42 { pi += 1 }
        return pi == p.count
    }
}

/// An L7 request presented to the policy (by `policy trace`, or by a proxy).
public enum L7Request: Hashable, Sendable {
    case http(method: String, path: String, host: String, headers: [(String, String)])
    case kafka(apiKey: String, apiVersion: Int?, clientID: String?, topic: String?)
    case dns(query: String)

    public var parser: L7Parser {
        switch self { case .http: .http; case .kafka: .kafka; case .dns: .dns }
    }

    public static func == (a: L7Request, b: L7Request) -> Bool { a.description == b.description }
    public func hash(into h: inout Hasher) { h.combine(description) }

    public var description: String {
        switch self {
        case let .http(m, p, host, headers):
            return "HTTP \(m) \(p) host=\(host)" + headers.map { " \($0.0): \($0.1)" }.joined()
        case let .kafka(k, v, c, t):
            return "Kafka apiKey=\(k)" + (v.map { " apiVersion=\($0)" } ?? "") + (c.map { " clientID=\($0)" } ?? "") + (t.map { " topic=\($0)" } ?? "")
        case let .dns(q): return "DNS query \(q)"
        }
    }
}

/// The L7 verdict for one request under an entry's `L7Policy`.
public struct L7Verdict: Hashable, Sendable {
    public var allowed: Bool
    /// The rule sets (and plain allows) that allowed the request.
    public var allowedBy: [OriginID]
    public var reason: String
}

public enum L7Evaluator {
    /// Kafka API keys by name, with their numbers.
    public static let kafkaAPIKeys: [String: Int] = [
        "produce": 0, "fetch": 1, "offsets": 2, "metadata": 3, "leaderandisr": 4, "stopreplica": 5, "updatemetadata": 6,
        "controlledshutdown": 7, "offsetcommit": 8, "offsetfetch": 9, "findcoordinator": 10, "joingroup": 11,
        "heartbeat": 12, "leavegroup": 13, "syncgroup": 14, "describegroups": 15, "listgroups": 16, "saslhandshake": 17,
        "apiversions": 18, "createtopics": 19, "deletetopics": 20, "deleterecords": 21, "initproducerid": 22,
        "offsetforleaderepoch": 23, "addpartitionstotxn": 24, "addoffsetstotxn": 25, "endtxn": 26, "writetxnmarkers": 27,
        "txnoffsetcommit": 28, "describeacls": 29, "createacls": 30, "deleteacls": 31, "describeconfigs": 32, "alterconfigs": 33,
    ]
    /// Cilium's Kafka roles as sets of API keys.
    public static let kafkaRoles: [String: Set<Int>] = [
        "produce": [0, 3, 18],
        "consume": [1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18],
    ]

    static func kafkaKey(_ s: String) -> Int? { kafkaAPIKeys[s.lowercased()] ?? Int(s) }

    public static func evaluate(_ policy: L7Policy, _ request: L7Request) -> L7Verdict {
        if !policy.conflictingParsers.isEmpty {
            return L7Verdict(allowed: false, allowedBy: [],
                             reason: "conflicting L7 parsers \(policy.conflictingParsers.map(\.rawValue)) on one port: dropped")
        }
        guard request.parser == policy.parser else {
            return L7Verdict(allowed: false, allowedBy: [], reason: "traffic is parsed as \(policy.parser.rawValue), not \(request.parser.rawValue)")
        }
        if !policy.allowAllBy.isEmpty {
            return L7Verdict(allowed: true, allowedBy: policy.allowAllBy,
                             reason: "an L3/L4 allow on this port makes the L7 rules moot")
        }
        var by: [OriginID] = []
        for set in policy.ruleSets where matches(set.rules, request) { by.append(set.origin) }
        return L7Verdict(allowed: !by.isEmpty, allowedBy: sortedUnique(by),
                         reason: by.isEmpty ? "no L7 rule matches the request" : "an L7 rule matches the request")
    }

    public static func matches(_ rules: L7Rules, _ request: L7Request) -> Bool {
        switch (rules, request) {
        case let (.http(rs), .http(method, path, host, headers)):
            return rs.contains { httpMatches($0, method: method, path: path, host: host, headers: headers) }
        case let (.kafka(rs), .kafka(apiKey, apiVersion, clientID, topic)):
            return rs.contains { kafkaMatches($0, apiKey: apiKey, apiVersion: apiVersion, clientID: clientID, topic: topic) }
        case let (.dns(rs), .dns(query)):
            return rs.contains { FQDNMatcher.matches($0, name: query) }
        default:
            return false
        }
    }

    /// Envoy semantics: method, path and host are regular expressions over the whole value.
    static func httpMatches(_ r: HTTPRule, method: String, path: String, host: String, headers: [(String, String)]) -> Bool {
        if let m = r.method, !fullMatch(m, method) { return false }
        if let p = r.path, !fullMatch(p, path) { return false }
        if let h = r.host, !fullMatch(h, host) { return false }
        for spec in r.headers {
            let (name, value) = splitHeader(spec)
            let present = headers.filter { $0.0.lowercased() == name.lowercased() }
            if present.isEmpty { return false }
            if let value, !present.contains(where: { $0.1 == value }) { return false }
        }
        for hm in r.headerMatches where hm.mismatch == nil {
            let present = headers.filter { $0.0.lowercased() == hm.name.lowercased() }
            if present.isEmpty { return false }
            if let v = hm.value, !present.contains(where: { $0.1 == v }) { return false }
        }
        return true
    }

    static func splitHeader(_ spec: String) -> (String, String?) {
        guard let colon = spec.firstIndex(of: ":") else { return (spec.trimmingSpaces(), nil) }
        return (String(spec[..<colon]).trimmingSpaces(), String(spec[spec.index(after: colon)...]).trimmingSpaces())
    }

    static func fullMatch(_ pattern: String, _ value: String) -> Bool {
        guard let re = try? Regex(pattern) else { return false }
        return (try? re.wholeMatch(in: value)) != nil
    }

    static func kafkaMatches(_ r: KafkaRule, apiKey: String, apiVersion: Int?, clientID: String?, topic: String?) -> Bool {
        guard let key = kafkaKey(apiKey) else { return false }
        if let role = r.role {
            guard kafkaRoles[role.lowercased()]?.contains(key) == true else { return false }
        } else if let k = r.apiKey {
            guard kafkaKey(k) == key else { return false }
        }
        if let v = r.apiVersion, let want = Int(v), apiVersion != want { return false }
        if let c = r.clientID, c != clientID { return false }
        if let t = r.topic, t != topic { return false }
        return true
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
