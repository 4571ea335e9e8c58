import Foundation
import HubbleAPI
import SwiftProtobuf
import Testing

/// `hubble observe -o json` prints protojson with proto field names. Our generated types,
/// encoded by swift-protobuf with `preserveProtoFieldNames`, must produce the same keys and
/// value shapes (reference §5.2), so Membrane's own JSON export matches the CLI's.
@Suite("Flow JSON shape")
struct JSONShapeTests {
    static var options: JSONEncodingOptions {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return options
    }

    static func object(_ json: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    }

    /// The deny-policy drop example from the reference, as the CLI prints it.
    static let referenceDrop = #"""
    {"flow":{"time":"2025-01-15T10:00:02Z","verdict":"DROPPED","drop_reason":181,"IP":{"source":"10.0.2.20","destination":"198.51.100.9","ipVersion":"IPv4"},"l4":{"UDP":{"source_port":40000,"destination_port":53}},"source":{"ID":2345,"identity":23456,"namespace":"prod","labels":["k8s:app=backend","k8s:io.kubernetes.pod.namespace=prod"],"pod_name":"backend-5f6d7-xyz12","workloads":[{"name":"backend","kind":"Deployment"}]},"destination":{"identity":2,"labels":["reserved:world"]},"Type":"L3_L4","node_name":"test-node","event_type":{"type":5},"traffic_direction":"EGRESS","policy_match_type":1,"drop_reason_desc":"POLICY_DENY","Summary":"UDP","egress_denied_by":[{"name":"deny-world","namespace":"prod","revision":"7","kind":"CiliumNetworkPolicy"}]},"node_name":"test-node","time":"2025-01-15T10:00:02Z"}
    """#

    /// The policy-verdict allow example from the reference.
    static let referenceAllow = #"""
    {"flow":{"time":"2025-01-15T10:00:00.123Z","uuid":"11111111-0000-0000-0000-000000000001","verdict":"FORWARDED","IP":{"source":"10.0.1.10","destination":"10.0.2.20","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":43210,"destination_port":8080,"flags":{"SYN":true}}},"source":{"ID":1234,"identity":12345,"namespace":"default","labels":["k8s:app=client","k8s:io.kubernetes.pod.namespace=default"],"pod_name":"client-7d4b9c-abcde","workloads":[{"name":"client","kind":"Deployment"}]},"destination":{"ID":2345,"identity":23456,"namespace":"prod","labels":["k8s:app=backend","k8s:io.kubernetes.pod.namespace=prod"],"pod_name":"backend-5f6d7-xyz12","workloads":[{"name":"backend","kind":"Deployment"}]},"Type":"L3_L4","node_name":"test-node","event_type":{"type":5},"traffic_direction":"INGRESS","policy_match_type":2,"is_reply":false,"Summary":"TCP Flags: SYN","ingress_allowed_by":[{"name":"allow-client","namespace":"prod","labels":["k8s:io.cilium.k8s.policy.name=allow-client","k8s:io.cilium.k8s.policy.namespace=prod"],"revision":"7","kind":"CiliumNetworkPolicy"}]},"node_name":"test-node","time":"2025-01-15T10:00:00.123Z"}
    """#

    @Test func builtFlowHasProtoFieldNames() throws {
        var flow = Flow_Flow()
        flow.time = Google_Protobuf_Timestamp(seconds: 1_736_935_201, nanos: 0)
        flow.verdict = .dropped
        flow.dropReason = 133
        flow.dropReasonDesc = .policyDenied
        flow.ip.source = "203.0.113.7"
        flow.ip.destination = "10.0.2.20"
        flow.ip.ipVersion = .ipv4
        flow.l4.tcp.sourcePort = 55555
        flow.l4.tcp.destinationPort = 8080
        flow.l4.tcp.flags.syn = true
        flow.type = .l3L4
        flow.isReply = Google_Protobuf_BoolValue(false)
        flow.summary = "TCP Flags: SYN"
        flow.source.id = 0
        flow.source.identity = 2
        flow.eventType.type = 1
        flow.eventType.subType = 133
        var policy = Flow_Policy()
        policy.name = "deny"
        policy.revision = 7
        flow.ingressDeniedBy = [policy]

        let json = try Self.object(flow.jsonString(options: Self.options))
        for key in ["time", "verdict", "drop_reason", "drop_reason_desc", "IP", "l4", "Type", "is_reply", "Summary",
                    "event_type", "ingress_denied_by", "source"] {
            #expect(json[key] != nil, "missing key \(key)")
        }
        let ip = try #require(json["IP"] as? [String: Any])
        #expect(ip["ipVersion"] as? String == "IPv4")
        let tcp = try #require((json["l4"] as? [String: Any])?["TCP"] as? [String: Any])
        #expect(tcp["source_port"] as? Int == 55555)
        #expect((tcp["flags"] as? [String: Any])?["SYN"] as? Bool == true)
        #expect(json["Type"] as? String == "L3_L4")
        #expect(json["verdict"] as? String == "DROPPED")
        #expect(json["drop_reason_desc"] as? String == "POLICY_DENIED")
        #expect(json["is_reply"] as? Bool == false)
        #expect(json["Summary"] as? String == "TCP Flags: SYN")
        #expect(json["time"] as? String == "2025-01-15T10:00:01Z")
        #expect((json["event_type"] as? [String: Any])?["sub_type"] as? Int == 133)
        let revision = (json["ingress_denied_by"] as? [[String: Any]])?.first?["revision"]
        #expect(revision as? String == "7", "uint64 must be a JSON string")
        #expect((json["source"] as? [String: Any])?["identity"] as? Int == 2)
    }

    @Test("Reference JSON lines round-trip through our types unchanged", arguments: [referenceDrop, referenceAllow])
    func referenceRoundTrip(line: String) throws {
        let response = try Observer_GetFlowsResponse(jsonString: line)
        #expect(response.flow.nodeName == "test-node")
        let again = try response.jsonString(options: Self.options)
        let expected = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? NSDictionary
        let actual = try JSONSerialization.jsonObject(with: Data(again.utf8)) as? NSDictionary
        #expect(actual == expected, "\(again)")
    }

    @Test func referenceDropDecodesToExpectedFields() throws {
        let response = try Observer_GetFlowsResponse(jsonString: Self.referenceDrop)
        let flow = response.flow
        #expect(flow.verdict == .dropped)
        #expect(flow.dropReasonDesc == .policyDeny)
        #expect(flow.dropReason == 181)
        #expect(flow.l4.udp.destinationPort == 53)
        #expect(flow.trafficDirection == .egress)
        #expect(flow.egressDeniedBy.first?.revision == 7)
        #expect(!flow.hasIsReply)
        // And the binary form survives a round trip too.
        let binary: [UInt8] = try response.serializedBytes()
        #expect(try Observer_GetFlowsResponse(serializedBytes: binary) == response)
    }

    @Test func statusJSONUsesStringsForUInt64() throws {
        var status = Observer_ServerStatusResponse()
        status.numFlows = 12
        status.maxFlows = 4095
        status.numConnectedNodes = Google_Protobuf_UInt32Value(1)
        let json = try Self.object(status.jsonString(options: Self.options))
        #expect(json["num_flows"] as? String == "12")
        #expect(json["max_flows"] as? String == "4095")
        #expect(json["num_connected_nodes"] as? Int == 1)
    }
}
