import Foundation
import Testing
@testable import PolicyAPI

/// The invalid-policy corpus: every file in `Invalid/` starts with comment lines
///
///     # expect-path: spec.egress[0].toPorts[0].ports[0].endPort
///     # expect-message: is less than port
///     # expect-line: 12            (optional, applies to the pair above)
///
/// and must produce each listed error (exact path, message substring) and no resource at all.
struct CorpusCase: CustomTestStringConvertible, Sendable {
    struct Expectation: Sendable { var path: String; var message: String; var line: Int? }
    var name: String
    var text: String
    var expectations: [Expectation]
    var testDescription: String { name }

    static func load(_ dir: String) -> [CorpusCase] {
        let base = testsDirectory.appendingPathComponent(dir)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
        return files.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".json") }.sorted().map { file in
            let text = (try? String(contentsOf: base.appendingPathComponent(file), encoding: .utf8)) ?? ""
            var exps: [Expectation] = []
            var pendingPath: String?
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                guard line.hasPrefix("#") else { continue }
                let body = line.dropFirst().trimmingCharacters(in: .whitespaces)
                if body.hasPrefix("expect-path:") {
                    let p = body.dropFirst("expect-path:".count).trimmingCharacters(in: .whitespaces)
                    pendingPath = p == "(none)" ? "" : p
                } else if body.hasPrefix("expect-message:"), let p = pendingPath {
                    exps.append(.init(path: p, message: body.dropFirst("expect-message:".count).trimmingCharacters(in: .whitespaces)))
                } else if body.hasPrefix("expect-line:"), !exps.isEmpty {
                    exps[exps.count - 1].line = Int(body.dropFirst("expect-line:".count).trimmingCharacters(in: .whitespaces))
                }
            }
            return CorpusCase(name: file, text: text, expectations: exps)
        }
    }
}

@Suite struct CorpusTests {
    static let invalid = CorpusCase.load("Invalid")

    @Test func corpusIsLargeEnough() {
        #expect(Self.invalid.count >= 45)
        #expect(Self.invalid.allSatisfy { !$0.expectations.isEmpty }, "every corpus file declares at least one expectation")
    }

    @Test(arguments: CorpusTests.invalid)
    func invalidPolicyIsRejected(_ c: CorpusCase) {
        let set = ManifestDecoder.decode(yaml: c.text, file: c.name)
        #expect(set.resources.isEmpty, "\(c.name) decoded \(set.resources.map(\.ref))")
        #expect(!set.errors.isEmpty)
        for e in c.expectations {
            let hit = set.errors.contains { $0.path == e.path && $0.message.contains(e.message) && (e.line == nil || $0.line == e.line) }
            #expect(hit, "\(c.name): expected error at \(e.path.isEmpty ? "(none)" : e.path) containing \"\(e.message)\"\(e.line.map { " on line \($0)" } ?? ""); got:\n\(describe(set.errors))")
        }
        for err in set.errors {
            #expect(err.location.file == c.name)
            #expect(!err.message.isEmpty)
        }
    }

    @Test func validCorpusDecodesWithoutErrors() {
        let set = ManifestDecoder.load(paths: [testsDirectory.appendingPathComponent("Valid").path])
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        #expect(set.resources.count >= 11)
    }
}
