import Yams

/// `metadata` of every kind. Policies are read strictly (a misspelled `namespce` would silently make a
/// namespaced policy land in `default`), cluster objects leniently (kubectl output has many more fields).
extension DocumentReader {
    /// The ObjectMeta fields Kubernetes defines; only name, namespace, labels, annotations and uid are kept.
    static let objectMetaFields = [
        "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
        "finalizers", "ownerReferences", "generateName", "selfLink",
    ]

    /// Decodes `metadata`. `namespaced` says whether `metadata.namespace` is allowed; a namespaced
    /// object without one lands in `default`, as with `kubectl apply`.
    func objectMeta(_ object: Fields, kind: ResourceKind, strict: Bool) -> ObjectMeta? {
        guard let node = object["metadata"] else {
            fail("metadata", object.node, "missing required field \"metadata\"")
            return nil
        }
        guard let f = fields(node, "metadata", allowed: DocumentReader.objectMetaFields,
                             unknown: strict ? .reject : .ignore) else { return nil }
        var ok = true
        let name = requiredString(f, "name")
        if let name {
            if name.isEmpty { fail(f.path("name"), f["name"], "metadata.name must not be empty"); ok = false }
            else if name.count > 253 { fail(f.path("name"), f["name"], "metadata.name is longer than 253 characters"); ok = false }
        } else { ok = false }

        var namespace: String?
        if let nsNode = f["namespace"] {
            if let ns = string(nsNode, f.path("namespace")) {
                if !kind.isNamespaced {
                    fail(f.path("namespace"), nsNode,
                         "\(kind.rawValue) is cluster-scoped: metadata.namespace must not be set (found \"\(ns)\")")
                    ok = false
                } else if !ns.isEmpty {
                    if !LabelSyntax.isDNSLabel(ns) {
                        fail(f.path("namespace"), nsNode, "invalid namespace \"\(ns)\": expected a DNS label (lowercase letters, digits and '-', at most 63 characters)")
                        ok = false
                    }
                    namespace = ns
                }
            } else { ok = false }
        }
        if kind.isNamespaced && namespace == nil { namespace = "default" }

        var labels: [String: String] = [:]
        if let n = f["labels"] {
            if let m = stringMap(n, f.path("labels")) { labels = m } else { ok = false }
        }
        var annotations: [String: String] = [:]
        if let n = f["annotations"] {
            if let m = stringMap(n, f.path("annotations")) { annotations = m } else { ok = false }
        }
        var uid: String?
        if let n = f["uid"] { uid = string(n, f.path("uid")) }
        guard ok, let name else { return nil }
        return ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations, uid: uid)
    }
}
