import Foundation

/// A Kubernetes label selector string as Hubble's `--label`/`source_label` filters take it
/// (`k8s:app=backend`, `app in (a,b)`, `!debug`, `tier!=db`, `reserved:world`), matched against a flow
/// endpoint's labels in `source:key=value` form.
///
/// A key without a source matches that key from any source (so `app=x` matches `k8s:app=x`), as Cilium's
/// label filter does; a key with a source matches only that source.
public struct LabelSelectorFilter: Sendable, Hashable {
    enum Operator: Sendable, Hashable { case exists, notExists, equals, notEquals, isIn, notIn }
    struct Requirement: Sendable, Hashable {
        var source: String?
        var key: String
        var op: Operator
        var values: [String]
    }
    let requirements: [Requirement]

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(parsing text: String) throws {
        var reqs: [Requirement] = []
        for part in LabelSelectorFilter.splitTopLevel(text) {
            let s = part.trimmingCharacters(in: .whitespaces)
            if s.isEmpty { continue }
            reqs.append(try LabelSelectorFilter.requirement(s, in: text))
        }
        guard !reqs.isEmpty else { throw ParseError(description: "empty label selector \(String(reflecting: text))") }
        requirements = reqs
    }

    /// Whether labels given as `source:key=value` strings satisfy every requirement.
    public func matches(_ labels: [String]) -> Bool {
        let parsed = labels.map(LabelSelectorFilter.split)
        return requirements.allSatisfy { r in
            let values = parsed.filter { ($0.key == r.key) && (r.source == nil || r.source == "any" || r.source == $0.source) }.map(\.value)
            switch r.op {
            case .exists: return !values.isEmpty
            case .notExists: return values.isEmpty
            case .equals, .isIn: return values.contains(where: r.values.contains)
            case .notEquals, .notIn: return !values.contains(where: r.values.contains)
            }
        }
    }

    static func split(_ label: String) -> (source: String, key: String, value: String) {
        var rest = Substring(label)
        var source = "any"
        if let colon = rest.firstIndex(of: ":"), !rest[..<colon].contains("=") {
            source = String(rest[..<colon]); rest = rest[rest.index(after: colon)...]
        }
        if let eq = rest.firstIndex(of: "=") {
            return (source, String(rest[..<eq]), String(rest[rest.index(after: eq)...]))
        }
        return (source, String(rest), "")
    }

    /// Splits on commas outside parentheses.
    static func splitTopLevel(_ s: String) -> [String] {
        var parts: [String] = [], current = "", depth = 0
        for c in s {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == ",", depth == 0 { parts.append(current); current = "" } else { current.append(c) }
        }
        parts.append(current)
        return parts
    }

    static func requirement(_ s: String, in text: String) throws -> Requirement {
        func keyParts(_ k: Substring) throws -> (String?, String) {
            let k = k.trimmingCharacters(in: .whitespaces)
            guard !k.isEmpty, !k.contains(" ") else { throw ParseError(description: "label selector \(String(reflecting: text)): bad key in \(String(reflecting: s))") }
            if let colon = k.firstIndex(of: ":") { return (String(k[..<colon]), String(k[k.index(after: colon)...])) }
            return (nil, k)
        }
        if s.hasPrefix("!") {
            let (src, key) = try keyParts(s.dropFirst())
            return Requirement(source: src, key: key, op: .notExists, values: [])
        }
        for (token, op) in [(" notin ", Operator.notIn), (" in ", .isIn)] {
            if let r = s.range(of: token) {
                let (src, key) = try keyParts(s[..<r.lowerBound])
                let list = s[r.upperBound...].trimmingCharacters(in: .whitespaces)
                guard list.hasPrefix("("), list.hasSuffix(")") else {
                    throw ParseError(description: "label selector \(String(reflecting: text)): expected (v1,v2) after\(token)in \(String(reflecting: s))")
                }
                let values = list.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                return Requirement(source: src, key: key, op: op, values: values)
            }
        }
        for (token, op) in [("!=", Operator.notEquals), ("==", .equals), ("=", .equals)] {
            if let r = s.range(of: token) {
                let (src, key) = try keyParts(s[..<r.lowerBound])
                return Requirement(source: src, key: key, op: op, values: [s[r.upperBound...].trimmingCharacters(in: .whitespaces)])
            }
        }
        let (src, key) = try keyParts(Substring(s))
        return Requirement(source: src, key: key, op: .exists, values: [])
    }
}
