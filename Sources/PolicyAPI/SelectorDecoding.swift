import Yams

/// Label selectors (`endpointSelector`, `nodeSelector`, `fromEndpoints[i]`, KNP `podSelector`, …).
extension DocumentReader {
    /// Reads `{matchLabels, matchExpressions}`, checking label syntax and operator/values rules.
    func labelSelector(_ node: Node, _ path: String) -> LabelSelector? {
        guard let f = fields(node, path, allowed: ["matchLabels", "matchExpressions"]) else { return nil }
        let before = errors.count
        var sel = LabelSelector()
        if let n = f["matchLabels"] {
            let p = f.path("matchLabels")
            if case .mapping(let m) = n {
                for (k, v) in m {
                    guard let key = k.scalarText, case .scalar = k else {
                        fail(p, k, "expected a label key, found \(k.kindDescription)")
                        continue
                    }
                    let kp = p + "." + key
                    if let why = LabelSyntax.keyProblem(key) { fail(kp, k, "invalid label key \"\(key)\": \(why)") }
                    var value = ""
                    if !v.isNull {
                        guard case .scalar(let vs) = v else {
                            fail(kp, v, "expected a string label value, found \(v.kindDescription)")
                            continue
                        }
                        value = vs.string
                    }
                    if let why = LabelSyntax.valueProblem(value) { fail(kp, v, "invalid label value \"\(value)\": \(why)") }
                    sel.matchLabels[key] = value
                }
            } else {
                fail(p, n, "expected a mapping of label keys to values, found \(n.kindDescription)")
            }
        }
        if let reqs = optionalList(f, "matchExpressions", requirement) { sel.matchExpressions = reqs }
        return errors.count == before ? sel : nil
    }

    func requirement(_ node: Node, _ path: String) -> LabelSelectorRequirement? {
        guard let f = fields(node, path, allowed: ["key", "operator", "values"]) else { return nil }
        let before = errors.count
        let key = requiredString(f, "key")
        if let key, let why = LabelSyntax.keyProblem(key) { fail(f.path("key"), f["key"], "invalid label key \"\(key)\": \(why)") }
        var op: LabelSelectorRequirement.Operator?
        if let n = f["operator"] {
            op = enumValue(n, f.path("operator"), LabelSelectorRequirement.Operator.allCases)
        } else { missing(f, "operator") }
        let values = optionalList(f, "values") { n, p -> String? in
            guard let s = self.string(n, p) else { return nil }
            if let why = LabelSyntax.valueProblem(s) { self.fail(p, n, "invalid label value \"\(s)\": \(why)") }
            return s
        } ?? []
        if let op {
            switch op {
            case .in, .notIn:
                if values.isEmpty && errors.count == before {
                    fail(f.path("values"), f["values"] ?? f.node, "operator \(op.rawValue) needs a non-empty list of values")
                }
            case .exists, .doesNotExist:
                if !values.isEmpty {
                    fail(f.path("values"), f["values"], "operator \(op.rawValue) must not have values (found \(values.count))")
                }
            }
        }
        guard errors.count == before, let key, let op else { return nil }
        return LabelSelectorRequirement(key: key, operator: op, values: values)
    }
}
