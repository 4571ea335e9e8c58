import Foundation
import Hubble
import HubbleAPI
import SwiftProtobuf
import Testing

/// Filter semantics against a table of cases (reference §2.2): what `hubble observe` flags send, and which
/// flows they select.
@Suite struct FlowFilterTests {
    static func flags(_ args: [String]) throws -> (whitelist: [Flow_FlowFilter], blacklist: [Flow_FlowFilter]) {
        var out: [ObserveFilterBuilder.Flag] = []
        var negate = false
        var i = 0
        while i < args.count {
            if args[i] == "--not" { negate = true; i += 1; continue }
            out.append(.init(String(args[i].dropFirst(2)), args[i + 1], negated: negate))
            negate = false
            i += 2
        }
        return try ObserveFilterBuilder.filters(out)
    }

    static func json(_ fs: [Flow_FlowFilter]) -> [String] {
        var o = JSONEncodingOptions(); o.preserveProtoFieldNames = true
        return fs.map { try! $0.jsonString(options: o) }
    }

    /// The flag → FlowFilter table of the reference (`--print-raw-filters`).
    @Test(arguments: [
        (["--verdict", "DROPPED", "--verdict", "AUDIT"], [#"{"verdict":["DROPPED","AUDIT"]}"#], [String]()),
        (["--namespace", "prod"], [#"{"source_pod":["prod/"]}"#, #"{"destination_pod":["prod/"]}"#], []),
        (["--from-namespace", "prod"], [#"{"source_pod":["prod/"]}"#], []),
        (["--pod", "client"], [#"{"source_pod":["client"]}"#, #"{"destination_pod":["client"]}"#], []),
        (["--namespace", "prod", "--pod", "backend"], [#"{"source_pod":["prod/backend"]}"#, #"{"destination_pod":["prod/backend"]}"#], []),
        (["--from-pod", "default/client", "--to-pod", "prod/backend"], [#"{"source_pod":["default/client"],"destination_pod":["prod/backend"]}"#], []),
        (["--from-identity", "world"], [#"{"source_identity":[2]}"#], []),
        (["--to-port", "8080"], [#"{"destination_port":["8080"]}"#], []),
        (["--type", "policy-verdict"], [#"{"event_type":[{"type":5}]}"#], []),
        (["--type", "trace:to-endpoint"], [#"{"event_type":[{"type":4,"match_sub_type":true}]}"#], []),
        (["--traffic-direction", "ingress"], [#"{"traffic_direction":["INGRESS"]}"#], []),
        (["--drop-reason-desc", "POLICY_DENIED"], [#"{"drop_reason_desc":["POLICY_DENIED"]}"#], []),
        (["--verdict", "DROPPED", "--to-namespace", "prod"], [#"{"verdict":["DROPPED"],"destination_pod":["prod/"]}"#], []),
        (["--not", "--verdict", "FORWARDED"], [], [#"{"verdict":["FORWARDED"]}"#]),
    ])
    func flagsBecomeHubbleFilters(args: [String], white: [String], black: [String]) throws {
        let (w, b) = try Self.flags(args)
        #expect(Self.json(w).map(parsed) == white.map(parsed))
        #expect(Self.json(b).map(parsed) == black.map(parsed))
    }

    func parsed(_ s: String) -> NSDictionary { try! JSONSerialization.jsonObject(with: Data(s.utf8)) as! NSDictionary }

    static let sample: [Flow_Flow] = [
        flow(0, .forwarded, src: ("default", "client-1"), dst: ("prod", "backend-7"), port: 8080, srcID: 300, dstID: 400),
        flow(1, .dropped, src: ("default", "client-1"), dst: ("prod", "db-0"), port: 5432, srcID: 300, dstID: 500),
        flow(2, .dropped, src: ("", ""), dst: ("prod", "backend-7"), port: 8080, srcID: 2, dstID: 400),
        flow(3, .audit, src: ("prod", "backend-7"), dst: ("", ""), port: 53, srcID: 400, dstID: 2),
    ]

    /// Which of the sample flows each set of flags selects.
    @Test(arguments: [
        (["--verdict", "DROPPED"], [1, 2]),
        (["--namespace", "prod"], [0, 1, 2, 3]),
        (["--from-namespace", "prod"], [3]),
        (["--pod", "prod/backend"], [0, 2, 3]),
        (["--from-pod", "default/client", "--to-pod", "prod/backend"], [0]),
        (["--pod", "client"], [0, 1]),
        (["--from-identity", "world"], [2]),
        (["--identity", "world"], [2, 3]),
        (["--to-port", "8080"], [0, 2]),
        (["--port", "53"], [3]),
        (["--not", "--verdict", "FORWARDED"], [1, 2, 3]),
        (["--verdict", "DROPPED", "--not", "--from-identity", "world"], [1]),
        (["--to-ip", "10.0.0.0/24"], [0, 1, 2, 3]),
        (["--to-ip", "10.0.1.0/24"], []),
        (["--type", "drop"], [1, 2]),
        (["--protocol", "udp"], []),
        (["--protocol", "TCP"], [0, 1, 2, 3]),
    ])
    func filtersSelect(args: [String], expected: [Int]) throws {
        let (w, b) = try Self.flags(args)
        let set = try FlowFilterSet(whitelist: w, blacklist: b)
        #expect(Self.sample.indices.filter { set.matches(Self.sample[$0]) } == expected)
    }

    @Test func labelSelectors() throws {
        let labels = ["k8s:app=backend", "k8s:io.kubernetes.pod.namespace=prod", "reserved:world"]
        for (selector, expected) in [("app=backend", true), ("k8s:app=backend", true), ("any:app=backend", true),
                                     ("cidr:app=backend", false), ("app in (a, backend)", true), ("app notin (backend)", false),
                                     ("!app", false), ("tier", false), ("!tier", true), ("app!=db", true),
                                     ("reserved:world", true), ("app=backend,io.kubernetes.pod.namespace=prod", true),
                                     ("app=backend,io.kubernetes.pod.namespace=dev", false)] {
            #expect(try LabelSelectorFilter(parsing: selector).matches(labels) == expected, "\(selector)")
        }
        #expect(throws: LabelSelectorFilter.ParseError.self) { try LabelSelectorFilter(parsing: "app in backend") }
    }

    @Test func badValuesAreErrors() {
        #expect(throws: FilterError.self) { try Self.flags(["--verdict", "MAYBE"]) }
        #expect(throws: FilterError.self) { try Self.flags(["--to-port", "70000"]) }
        #expect(throws: FilterError.self) { try Self.flags(["--from-identity", "galaxy"]) }
        #expect(throws: FilterError.self) { try Self.flags(["--drop-reason-desc", "NOPE"]) }
        var f = Flow_FlowFilter(); f.dnsQuery = ["("]
        #expect(throws: FilterError.self) { try FlowFilterSet(whitelist: [f]) }
    }
}
