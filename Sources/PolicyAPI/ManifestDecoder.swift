import Foundation
import Yams

/// Strict decoding of Kubernetes/Cilium manifests into the value types of `Resources.swift`.
///
/// Decoding never throws: a document that is not valid becomes one or more `ManifestError`s (with
/// file, document, field path and line) and contributes no resource, while every other document is
/// still decoded. This is what `membrane check` and the trace commands need: all problems at once.
public enum ManifestDecoder {
    /// Decodes every document of one YAML (or JSON) text. Never throws: bad documents become errors.
    public static func decode(yaml: String, file: String) -> ManifestSet {
        var acc = ManifestAccumulator()
        acc.decode(yaml: yaml, file: file)
        return acc.set
    }

    /// Files, directories (recursively, *.yaml *.yml *.json, sorted by path) and "-" for stdin.
    /// Unreadable paths become errors.
    public static func load(paths: [String]) -> ManifestSet {
        var acc = ManifestAccumulator()
        for path in paths {
            if path == "-" {
                let data = FileHandle.standardInput.readDataToEndOfFile()
                acc.decode(data: data, file: "<stdin>")
                continue
            }
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                acc.fileError(path, "cannot read \(path): no such file or directory")
                continue
            }
            if isDir.boolValue {
                for file in manifestFiles(under: path) { acc.decode(contentsOf: file) }
            } else {
                acc.decode(contentsOf: path)
            }
        }
        return acc.set
    }

    /// The manifest files below a directory, sorted by path so that results are reproducible.
    static func manifestFiles(under dir: String) -> [String] {
        let base = URL(fileURLWithPath: dir)
        guard let e = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey],
                                                     options: [.skipsHiddenFiles]) else {
            return []
        }
        var out: [String] = []
        for case let url as URL in e {
            let ext = url.pathExtension.lowercased()
            guard ext == "yaml" || ext == "yml" || ext == "json" else { continue }
            if (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                // Keep the path the user gave as prefix (not the resolved /private/... form).
                let rel = url.path.hasPrefix(base.path) ? String(url.path.dropFirst(base.path.count)) : "/" + url.lastPathComponent
                let joined = dir.hasSuffix("/") ? dir + rel.drop(while: { $0 == "/" }) : dir + rel
                out.append(joined)
            }
        }
        return out.sorted()
    }
}

/// Collects resources, errors and warnings across documents and files, and detects duplicates
/// (same kind, namespace and name) across the whole set.
struct ManifestAccumulator {
    var set = ManifestSet()
    private var seen: [ResourceRef: SourceLocation] = [:]

    mutating func fileError(_ file: String, _ message: String) {
        set.errors.append(ManifestError(location: SourceLocation(file: file, document: 0), path: "", message: message))
    }

    mutating func decode(contentsOf path: String) {
        guard let data = FileManager.default.contents(atPath: path) else {
            fileError(path, "cannot read \(path)")
            return
        }
        decode(data: data, file: path)
    }

    mutating func decode(data: Data, file: String) {
        guard let text = String(data: data, encoding: .utf8) else {
            fileError(file, "cannot read \(file): not UTF-8 text")
            return
        }
        decode(yaml: text, file: file)
    }

    mutating func decode(yaml: String, file: String) {
        var index = 0
        do {
            // `.basic` resolves every plain scalar to a string without regular expressions: Yams hashes mapping
            // keys (duplicate-key check) through their resolved tag, which with the default resolver costs
            // several regex matches per key. Numbers and booleans are recognised by `ScalarSyntax` instead.
            var docs = try Yams.compose_all(yaml: yaml, .basic)
            while let root = docs.next() {
                decodeDocument(root, file: file, index: index)
                index += 1
            }
            if let error = docs.error { yamlError(error, file: file, index: index) }
        } catch {
            yamlError(error, file: file, index: index)
        }
    }

    private mutating func yamlError(_ error: Error, file: String, index: Int) {
        var line: Int?
        var message = "invalid YAML"
        if let y = error as? YamlError {
            switch y {
            case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
                 let .composer(context, problem, mark, _):
                line = mark.line
                message += ": \(problem)"
                if let context { message += " (\(context.text) at line \(context.mark.line))" }
            case let .duplicatedKeysInMapping(duplicates, context):
                line = context.mark.line
                message += ": duplicate key\(duplicates.count > 1 ? "s" : "") \(duplicates.map { "\"\($0)\"" }.joined(separator: ", ")) in a mapping"
            case let .reader(problem, _, _, _):
                message += ": \(problem)"
            default:
                message += ": \(y)"
            }
        } else {
            message += ": \(error)"
        }
        set.errors.append(ManifestError(location: SourceLocation(file: file, document: index, line: line),
                                        path: "", line: line, message: message))
    }

    private mutating func decodeDocument(_ root: Node, file: String, index: Int) {
        if root.isNull { return } // empty document: only comments or `---`
        let loc = SourceLocation(file: file, document: index, line: root.mark?.line)
        guard case .mapping = root else {
            set.errors.append(ManifestError(location: loc, path: "", line: root.mark?.line,
                                            message: "expected a mapping (a Kubernetes object), found \(root.kindDescription)"))
            return
        }
        // `kind: List` (what `kubectl get -o yaml` prints for several objects).
        if root["kind"]?.scalarText == "List" {
            decodeList(root, location: loc)
            return
        }
        decodeObject(root, location: loc)
    }

    private mutating func decodeList(_ root: Node, location: SourceLocation) {
        let r = DocumentReader(location: location)
        guard let f = r.fields(root, "", allowed: ["apiVersion", "kind", "metadata", "items"]) else { return }
        if let v = r.optionalString(f, "apiVersion"), v != "v1" {
            r.fail("apiVersion", f["apiVersion"], "kind List needs apiVersion v1, found \"\(v)\"")
        }
        var items: [Node] = []
        if let n = f["items"] {
            if case .sequence(let s) = n { items = Array(s) } else {
                r.fail("items", n, "expected a list, found \(n.kindDescription)")
            }
        }
        set.errors.append(contentsOf: r.errors)
        for (i, item) in items.enumerated() {
            var loc = location
            loc.listItem = i
            loc.line = item.mark?.line ?? location.line
            guard case .mapping = item else {
                set.errors.append(ManifestError(location: loc, path: "", line: loc.line,
                                                message: "expected a mapping (a Kubernetes object), found \(item.kindDescription)"))
                continue
            }
            decodeObject(item, location: loc)
        }
    }

    private mutating func decodeObject(_ node: Node, location: SourceLocation) {
        let r = DocumentReader(location: location)
        switch ObjectDecoder.decode(node, reader: r) {
        case .resource(let res) where !r.hasErrors:
            if let first = seen[res.ref] {
                set.errors.append(ManifestError(location: location, resource: res.ref, path: "metadata.name",
                                                line: node["metadata"]?["name"]?.mark?.line,
                                                message: "duplicate \(res.ref): already defined at \(first)"))
            } else {
                seen[res.ref] = location
                set.resources.append(res)
            }
        case .ignored(let kind):
            set.warnings.append(ManifestWarning(location: location, message: "ignored: kind \(kind) is not read by Membrane"))
        default:
            break
        }
        set.errors.append(contentsOf: r.errors)
    }
}

/// Dispatch on `apiVersion` / `kind`.
enum ObjectDecoder {
    enum Outcome { case resource(Resource), ignored(String), failed }

    static func decode(_ node: Node, reader r: DocumentReader) -> Outcome {
        let kindNode = node["kind"]
        guard let kindNode, !kindNode.isNull else {
            r.fail("kind", node, "missing required field \"kind\"")
            return .failed
        }
        guard let kindText = r.string(kindNode, "kind") else { return .failed }
        guard let kind = ResourceKind(rawValue: kindText) else {
            return .ignored(kindText)
        }
        // Resource reference first, so that every later error names the object.
        let meta = node["metadata"]
        let name = meta?["name"]?.scalarText
        var namespace: String? = nil
        if kind.isNamespaced {
            let ns = meta?["namespace"]?.scalarText
            namespace = (ns?.isEmpty ?? true) ? "default" : ns
        }
        if let name, !name.isEmpty { r.resource = ResourceRef(kind: kind, namespace: namespace, name: name) }

        if let v = node["apiVersion"], !v.isNull {
            if let text = r.string(v, "apiVersion"), text != kind.apiVersion {
                r.fail("apiVersion", v, "kind \(kind.rawValue) needs apiVersion \(kind.apiVersion), found \"\(text)\"")
            }
        } else {
            r.fail("apiVersion", node, "missing required field \"apiVersion\" (kind \(kind.rawValue) needs \(kind.apiVersion))")
        }

        let body: ResourceBody?
        switch kind {
        case .ciliumNetworkPolicy, .ciliumClusterwideNetworkPolicy:
            body = CiliumPolicyDecoder(reader: r, kind: kind).decode(node).map(ResourceBody.ciliumPolicy)
        case .networkPolicy:
            body = NetworkPolicyDecoder(reader: r).decode(node).map(ResourceBody.networkPolicy)
        case .ciliumCIDRGroup:
            body = NetworkPolicyDecoder(reader: r).decodeCIDRGroup(node).map(ResourceBody.cidrGroup)
        case .namespace, .pod, .node, .service, .endpoints:
            body = ClusterObjectDecoder(reader: r, kind: kind).decode(node)
        }
        guard let body, let ref = r.resource, !r.hasErrors else { return .failed }
        return .resource(Resource(ref: ref, location: r.location, body: body))
    }
}
