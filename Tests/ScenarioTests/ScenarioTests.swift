import Cluster
import Foundation
import Policy
import PolicyAPI
import Testing
import Yams

/// Scenario tests: each folder under `Scenarios/` is ordinary Kubernetes YAML plus `expect.yaml`, the
/// expected trace results, written from Cilium's documented semantics (not from this implementation).
struct Scenario: CustomTestStringConvertible, Sendable {
    var name: String
    var directory: URL
    var testDescription: String { name }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Scenarios")

    static var all: [Scenario] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.sorted().filter { !$0.hasPrefix(".") }.map { Scenario(name: $0, directory: root.appendingPathComponent($0)) }
    }
}

struct ExpectedDirection {
    var verdict: String?
    var policies: [String]?
}

func string(_ node: Node?) -> String? { node?.scalar?.string }

func expectedDirection(_ node: Node?) -> ExpectedDirection? {
    guard let m = node?.mapping else { return nil }
    return ExpectedDirection(verdict: string(m["verdict"]), policies: m["policies"]?.sequence?.compactMap { string($0) })
}

@Suite("Scenarios")
struct ScenarioTests {
    @Test("every scenario folder has cases", arguments: [0])
    func corpusIsLarge(_: Int) {
        #expect(Scenario.all.count >= 80, "expected at least 80 scenarios, found \(Scenario.all.count)")
    }

    @Test(arguments: Scenario.all)
    func scenario(_ s: Scenario) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: s.directory.path).sorted()
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && $0 != "expect.yaml" }
        let manifests = ManifestDecoder.load(paths: files.map { s.directory.appendingPathComponent($0).path })
        #expect(manifests.errors.isEmpty, "manifest errors: \(manifests.errors.map(\.description))")

        let text = try String(contentsOf: s.directory.appendingPathComponent("expect.yaml"), encoding: .utf8)
        guard let root = try Yams.compose(yaml: text)?.mapping else { Issue.record("expect.yaml is not a mapping"); return }
        var settings = EngineSettings()
        if let st = root["settings"]?.mapping {
            if let m = string(st["enforcementMode"]) { settings.enforcementMode = EnforcementMode(rawValue: m) ?? .default }
            settings.auditMode = st["auditMode"]?.bool ?? false
            settings.hostFirewall = st["hostFirewall"]?.bool ?? false
        }
        let cluster = ClusterModel(manifests: manifests, settings: settings)
        let cases = root["cases"]?.sequence ?? []
        #expect(!cases.isEmpty, "no cases")
        for (i, c) in cases.enumerated() {
            guard let m = c.mapping else { continue }
            let name = string(m["name"]) ?? "case \(i)"
            var l7: L7Request?
            if let h = m["http"]?.mapping {
                let headers = (h["headers"]?.sequence ?? []).compactMap { string($0) }.map { hv -> (String, String) in
                    guard let colon = hv.firstIndex(of: ":") else { return (hv, "") }
                    return (String(hv[..<colon]), String(hv[hv.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
                }
                l7 = .http(method: string(h["method"]) ?? "GET", path: string(h["path"]) ?? "/", host: string(h["host"]) ?? "", headers: headers)
            } else if let q = string(m["dnsQuery"]) {
                l7 = .dns(query: q)
            } else if let k = m["kafka"]?.mapping {
                l7 = .kafka(apiKey: string(k["apiKey"]) ?? "", apiVersion: k["apiVersion"]?.int, clientID: string(k["clientID"]), topic: string(k["topic"]))
            }
            let dns = (m["dns"]?.sequence ?? []).compactMap { string($0) }.compactMap { d -> (name: String, address: IPAddress)? in
                let p = d.split(separator: "=", maxSplits: 1).map(String.init)
                guard p.count == 2, let ip = IPAddress(p[1]) else { return nil }
                return (p[0], ip)
            }
            let req = TraceRequest(from: string(m["from"]) ?? "", to: string(m["to"]) ?? "",
                                   port: m["port"]?.int.map { UInt16($0) }, proto: string(m["protocol"]) ?? "TCP",
                                   icmpType: m["icmpType"]?.int.map { UInt8($0) }, l7: l7, dns: dns)
            var tracer = PolicyTracer(cluster: cluster)
            let result: TraceResult
            do { result = try tracer.trace(req) } catch {
                Issue.record("\(s.name) / \(name): trace failed: \(error)"); continue
            }
            guard let exp = m["expect"]?.mapping else { continue }
            let ctx = "\(s.name) / \(name)"
            let detail = "egress=\(result.egress.verdict) [\(result.egress.explanation)] ingress=\(result.ingress.verdict) [\(result.ingress.explanation)] l7=\(result.l7?.verdict ?? "-") [\(result.l7?.explanation ?? "")]"
            if let v = string(exp["verdict"]) { #expect(result.verdict == v, "\(ctx): verdict \(result.verdict), expected \(v); \(detail)") }
            let reason = string(exp["dropReason"])
            #expect(result.dropReason == reason, "\(ctx): dropReason \(result.dropReason ?? "none"), expected \(reason ?? "none"); \(detail)")
            for (key, actual) in [("egress", result.egress), ("ingress", result.ingress)] {
                guard let e = expectedDirection(exp[Node(key)]) else { continue }
                if let v = e.verdict { #expect(actual.verdict == v, "\(ctx): \(key) verdict \(actual.verdict), expected \(v); \(detail)") }
                if let p = e.policies {
                    let got = Set(actual.policies.map(\.display))
                    #expect(got == Set(p), "\(ctx): \(key) policies \(got.sorted()), expected \(p.sorted()); \(detail)")
                }
            }
            if let l7e = exp["l7"]?.mapping, let v = string(l7e["verdict"]) {
                #expect(result.l7?.verdict == v, "\(ctx): l7 verdict \(result.l7?.verdict ?? "none"), expected \(v); \(detail)")
            }
        }
    }
}
