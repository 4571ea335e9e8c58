import Foundation
import Testing
@testable import PolicyAPI

/// The test directory, found from this file's path so that the YAML corpora need no resource declaration.
let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

func decode(_ yaml: String, file: String = "test.yaml") -> ManifestSet {
    ManifestDecoder.decode(yaml: yaml, file: file)
}

/// The Cilium policies of a set, in order.
func ciliumPolicies(_ set: ManifestSet) -> [CiliumPolicy] {
    set.resources.compactMap { if case .ciliumPolicy(let p) = $0.body { return p } else { return nil } }
}

func networkPolicies(_ set: ManifestSet) -> [NetworkPolicy] {
    set.resources.compactMap { if case .networkPolicy(let p) = $0.body { return p } else { return nil } }
}

/// Decodes a single CNP body (under `spec:`) wrapped in a minimal header; returns the set.
func decodeCNP(_ specYAML: String, kind: String = "CiliumNetworkPolicy", name: String = "p") -> ManifestSet {
    let indented = specYAML.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
    return decode("""
    apiVersion: cilium.io/v2
    kind: \(kind)
    metadata:
      name: \(name)
    spec:
    \(indented)
    """)
}

/// The errors as "path: message" lines, for readable failure output.
func describe(_ errors: [ManifestError]) -> String {
    errors.map { "\($0.path) (line \($0.line.map(String.init) ?? "-")): \($0.message)" }.joined(separator: "\n")
}
