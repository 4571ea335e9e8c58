import Yams

/// Reads Yams `Node` trees by hand (not Codable) so that every problem is reported with its field
/// path (`spec.egress[1].toPorts[0]`) and the line of the offending node, and so that decoding can
/// continue after an error and report every problem of a document at once.
///
/// One `DocumentReader` is used per Kubernetes object (a document, or one item of a `kind: List`).
/// It collects errors; the caller drops the object when `errors` is non-empty.
final class DocumentReader {
    let location: SourceLocation
    /// Set as soon as kind and name are known, and copied into every error reported after that.
    var resource: ResourceRef?
    private(set) var errors: [ManifestError] = []

    init(location: SourceLocation) { self.location = location }

    var hasErrors: Bool { !errors.isEmpty }

    /// Records one error at `path`; the line is taken from `node` when there is one.
    func fail(_ path: String, _ node: Node?, _ message: String) {
        errors.append(ManifestError(location: location, resource: resource, path: path,
                                    line: node.flatMap(DocumentReader.line(of:)), message: message))
    }

    func fail(_ path: String, line: Int?, _ message: String) {
        errors.append(ManifestError(location: location, resource: resource, path: path, line: line, message: message))
    }

    static func line(of node: Node) -> Int? { node.mark?.line }
}

// MARK: - Describing what was found

extension Node {
    /// True for an explicit YAML null (`~`, `null`, or an empty value): Kubernetes treats it as "absent".
    var isNull: Bool {
        guard case .scalar(let s) = self, s.style == .plain else { return false }
        switch s.string { case "", "~", "null", "Null", "NULL": return true; default: return false }
    }

    /// The scalar text, for any scalar (plain or quoted).
    var scalarText: String? {
        if case .scalar(let s) = self { return s.string }
        return nil
    }

    var isPlainScalar: Bool {
        if case .scalar(let s) = self { return s.style == .plain }
        return false
    }

    /// "a mapping", "a list", `a string "abc"`, "a number 5", "a boolean true", "null" — for error messages.
    var kindDescription: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let s):
            if isNull { return "null" }
            let text = s.string.count > 60 ? String(s.string.prefix(57)) + "..." : s.string
            if s.style == .plain {
                if ScalarSyntax.isBool(s.string) { return "a boolean \(text)" }
                if ScalarSyntax.isNumber(s.string) { return "a number \(text)" }
            }
            return "a string \"\(text)\""
        }
    }
}

/// Fast classification of plain scalars (Yams' resolver uses regular expressions per scalar, which
/// is too slow for 10 MB inputs; we only need to tell numbers and booleans from strings).
enum ScalarSyntax {
    static func isBool(_ s: String) -> Bool { boolValue(s) != nil }

    static func boolValue(_ s: String) -> Bool? {
        switch s {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    /// A decimal integer, optionally signed.
    static func intValue(_ s: String) -> Int? {
        var u = Substring(s)
        if u.first == "+" { u = u.dropFirst() }
        guard !u.isEmpty, u.count <= 18 else { return nil }
        let digits = u.first == "-" ? u.dropFirst() : u
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(u)
    }

    static func isNumber(_ s: String) -> Bool {
        if intValue(s) != nil { return true }
        guard let f = s.first, f.isNumber || f == "-" || f == "+" || f == "." else { return false }
        return Double(s) != nil
    }
}

// MARK: - Mappings

/// The fields of one YAML mapping, checked against the allowed names.
struct Fields {
    struct Entry { var key: String; var keyNode: Node; var value: Node }
    var entries: [Entry]
    /// The mapping node itself, for errors about missing fields.
    var node: Node
    var path: String

    /// The value of `key`, or nil when the key is absent or its value is null.
    subscript(_ key: String) -> Node? {
        for e in entries where e.key == key { return e.value.isNull ? nil : e.value }
        return nil
    }

    func has(_ key: String) -> Bool { self[key] != nil }

    /// `path.key`, the path of a field.
    func path(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
}

/// What to do with a field name that is not in the allowed list.
enum UnknownFields {
    /// Policy kinds: every unknown field is an error, with a did-you-mean suggestion.
    case reject
    /// Kubernetes objects from `kubectl get -o yaml`: unknown fields are ignored.
    case ignore
}

extension DocumentReader {
    /// Reads a mapping, reporting a type error when `node` is something else. Keys that are not in
    /// `allowed` are reported (with a suggestion) under `.reject`; keys listed in `unsupported`
    /// are reported with the given message (fields Cilium knows but Membrane does not implement).
    func fields(_ node: Node, _ path: String, allowed: [String], unsupported: [String: String] = [:],
                unknown: UnknownFields = .reject) -> Fields? {
        guard case .mapping(let m) = node else {
            fail(path, node, "expected a mapping, found \(node.kindDescription)")
            return nil
        }
        var entries: [Fields.Entry] = []
        entries.reserveCapacity(m.count)
        for (k, v) in m {
            guard case .scalar(let ks) = k else {
                fail(path, k, "expected a field name, found \(k.kindDescription)")
                continue
            }
            let key = ks.string
            let fieldPath = path.isEmpty ? key : path + "." + key
            if let why = unsupported[key] {
                if !v.isNull { fail(fieldPath, k, why) }
                continue
            }
            if !allowed.contains(key) {
                if unknown == .reject { fail(fieldPath, k, DocumentReader.unknownFieldMessage(key, allowed: allowed)) }
                continue
            }
            entries.append(.init(key: key, keyNode: k, value: v))
        }
        return Fields(entries: entries, node: node, path: path)
    }

    static func unknownFieldMessage(_ key: String, allowed: [String]) -> String {
        if let s = Suggest.nearest(key, in: allowed) { return "unknown field \"\(key)\"; did you mean \"\(s)\"?" }
        return "unknown field \"\(key)\"; expected one of \(allowed.joined(separator: ", "))"
    }

    /// Reports that a required field is missing.
    func missing(_ f: Fields, _ key: String, _ extra: String = "") {
        fail(f.path(key), f.node, "missing required field \"\(key)\"" + extra)
    }

    // MARK: Lists

    /// Reads a list; each element is passed to `element` with its path `path[i]`. Returns nil (and
    /// reports) when `node` is not a list.
    func list<T>(_ node: Node, _ path: String, _ element: (Node, String) -> T?) -> [T]? {
        guard case .sequence(let seq) = node else {
            fail(path, node, "expected a list, found \(node.kindDescription)")
            return nil
        }
        var out: [T] = []
        out.reserveCapacity(seq.count)
        for (i, item) in seq.enumerated() {
            if let v = element(item, "\(path)[\(i)]") { out.append(v) }
        }
        return out
    }

    /// Optional list field: nil when absent.
    func optionalList<T>(_ f: Fields, _ key: String, _ element: (Node, String) -> T?) -> [T]? {
        guard let n = f[key] else { return nil }
        return list(n, f.path(key), element)
    }

    // MARK: Scalars

    /// Any scalar as its text (Kubernetes string fields; plain numbers and booleans are taken as written).
    func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let s) = node, !node.isNull else {
            fail(path, node, "expected a string, found \(node.kindDescription)")
            return nil
        }
        return s.string
    }

    func optionalString(_ f: Fields, _ key: String) -> String? {
        guard let n = f[key] else { return nil }
        return string(n, f.path(key))
    }

    func requiredString(_ f: Fields, _ key: String) -> String? {
        guard let n = f[key] else { missing(f, key); return nil }
        return string(n, f.path(key))
    }

    /// An integer written as a YAML number (a quoted "80" is a string, as Kubernetes' strict decoding says).
    func int(_ node: Node, _ path: String) -> Int? {
        if node.isPlainScalar, let text = node.scalarText, let v = ScalarSyntax.intValue(text) { return v }
        fail(path, node, "expected an integer, found \(node.kindDescription)")
        return nil
    }

    func optionalInt(_ f: Fields, _ key: String) -> Int? {
        guard let n = f[key] else { return nil }
        return int(n, f.path(key))
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        if node.isPlainScalar, let text = node.scalarText, let v = ScalarSyntax.boolValue(text) { return v }
        fail(path, node, "expected a boolean (true or false), found \(node.kindDescription)")
        return nil
    }

    func optionalBool(_ f: Fields, _ key: String) -> Bool? {
        guard let n = f[key] else { return nil }
        return bool(n, f.path(key))
    }

    /// A string that must be one of `allowed` (case-sensitive, as CRD enums are).
    func enumValue<E: RawRepresentable>(_ node: Node, _ path: String, _ allowed: [E]) -> E? where E.RawValue == String {
        guard let s = string(node, path) else { return nil }
        if let v = allowed.first(where: { $0.rawValue == s }) { return v }
        let names = allowed.map(\.rawValue)
        var msg = "expected one of \(names.joined(separator: ", ")), found \"\(s)\""
        if let sug = Suggest.nearest(s, in: names) { msg += "; did you mean \"\(sug)\"?" }
        fail(path, node, msg)
        return nil
    }

    /// A mapping of strings to strings (labels, annotations, matchLabels, Service selectors).
    func stringMap(_ node: Node, _ path: String) -> [String: String]? {
        guard case .mapping(let m) = node else {
            fail(path, node, "expected a mapping of strings, found \(node.kindDescription)")
            return nil
        }
        var out: [String: String] = [:]
        out.reserveCapacity(m.count)
        for (k, v) in m {
            guard case .scalar(let ks) = k else {
                fail(path, k, "expected a string key, found \(k.kindDescription)")
                continue
            }
            let p = path + "." + ks.string
            if v.isNull { out[ks.string] = ""; continue }
            guard case .scalar(let vs) = v else {
                fail(p, v, "expected a string value, found \(v.kindDescription)")
                continue
            }
            out[ks.string] = vs.string
        }
        return out
    }
}

// MARK: - Suggestions

/// "did you mean" suggestions: the nearest candidate within Levenshtein distance 3.
enum Suggest {
    static func nearest(_ word: String, in candidates: [String], maxDistance: Int = 3) -> String? {
        var best: (String, Int)?
        let w = Array(word.lowercased().unicodeScalars)
        for c in candidates {
            let d = distance(w, Array(c.lowercased().unicodeScalars))
            if d <= maxDistance, best == nil || d < best!.1 { best = (c, d) }
        }
        // A distance as long as the word itself is not a meaningful suggestion ("ab" → "cd").
        if let b = best, b.1 >= w.count { return nil }
        return best?.0
    }

    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
