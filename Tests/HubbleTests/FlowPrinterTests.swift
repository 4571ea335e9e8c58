import Foundation
import Hubble
import HubbleAPI
import SwiftProtobuf
import Testing

/// Compact output, line for line as `hubble observe` prints the reference's examples (§5.1).
@Suite struct FlowPrinterTests {
    func base(_ ts: String) -> Flow_Flow {
        var f = Flow_Flow()
        f.time = timestamp(ts)
        f.ip.source = "10.0.1.10"; f.ip.destination = "10.0.2.20"; f.ip.ipVersion = .ipv4
        f.source.identity = 12345; f.source.namespace = "default"; f.source.podName = "client-7d4b9c-abcde"
        f.destination.identity = 23456; f.destination.namespace = "prod"; f.destination.podName = "backend-5f6d7-xyz12"
        var tcp = Flow_TCP(); tcp.sourcePort = 43210; tcp.destinationPort = 8080; tcp.flags.syn = true
        f.l4.protocol = .tcp(tcp)
        f.summary = "TCP Flags: SYN"
        return f
    }

    @Test func policyVerdictAllowedWithPolicyNames() {
        var f = base("2025-01-15T10:00:00.123Z")
        f.verdict = .forwarded
        f.eventType.type = 5
        f.trafficDirection = .ingress
        f.policyMatchType = 2
        f.isReply = Google_Protobuf_BoolValue(false)
        var p = Flow_Policy(); p.name = "allow-client"; p.namespace = "prod"; p.kind = "CiliumNetworkPolicy"
        f.ingressAllowedBy = [p]
        #expect(FlowPrinter(format: .compact).render(f) ==
                "Jan 15 10:00:00.123: default/client-7d4b9c-abcde:43210 (ID:12345) -> prod/backend-5f6d7-xyz12:8080 (ID:23456) policy-verdict:L3-L4 INGRESS ALLOWED (TCP Flags: SYN)")
        #expect(FlowPrinter(format: .compact, printPolicyNames: true).render(f) ==
                "Jan 15 10:00:00.123: default/client-7d4b9c-abcde:43210 (ID:12345) -> prod/backend-5f6d7-xyz12:8080 (ID:23456) policy-verdict:L3-L4 INGRESS ALLOWED BY allow-client (CiliumNetworkPolicy) (TCP Flags: SYN)")
    }

    @Test func worldDropAndReplySwap() {
        var f = base("2025-01-15T10:00:01.001Z")
        f.source = Flow_Endpoint(); f.source.identity = 2
        f.ip.source = "203.0.113.7"
        var tcp = Flow_TCP(); tcp.sourcePort = 55555; tcp.destinationPort = 8080; tcp.flags.syn = true
        f.l4.protocol = .tcp(tcp)
        f.verdict = .dropped
        f.eventType.type = 1; f.eventType.subType = 133
        #expect(FlowPrinter(format: .compact).render(f) ==
                "Jan 15 10:00:01.001: 203.0.113.7:55555 (world) <> prod/backend-5f6d7-xyz12:8080 (ID:23456) Policy denied DROPPED (TCP Flags: SYN)")

        var r = base("2025-01-15T10:00:00.125Z")
        (r.source, r.destination) = (r.destination, r.source)
        r.ip.source = "10.0.2.20"; r.ip.destination = "10.0.1.10"
        var t = Flow_TCP(); t.sourcePort = 8080; t.destinationPort = 43210; t.flags.syn = true; t.flags.ack = true
        r.l4.protocol = .tcp(t)
        r.summary = "TCP Flags: SYN, ACK"
        r.verdict = .forwarded; r.eventType.type = 4; r.eventType.subType = 5
        r.isReply = Google_Protobuf_BoolValue(true)
        #expect(FlowPrinter(format: .compact).render(r) ==
                "Jan 15 10:00:00.125: default/client-7d4b9c-abcde:43210 (ID:12345) <- prod/backend-5f6d7-xyz12:8080 (ID:23456) from-endpoint FORWARDED (TCP Flags: SYN, ACK)")
    }

    @Test func bareFlowAndSingleDigitDay() {
        var f = Flow_Flow()
        f.time = timestamp("2025-01-05T10:00:07.000Z")
        f.verdict = .forwarded
        f.ip.source = "192.0.2.1"; f.ip.destination = "192.0.2.2"
        #expect(FlowPrinter(format: .compact).render(f) == "Jan  5 10:00:07.000: 192.0.2.1 (unknown) <> 192.0.2.2 (unknown) UNKNOWN FORWARDED ()")
    }

    /// JSON as `hubble observe -o json`: proto names, enum names, 64-bit integers as strings.
    @Test func jsonUsesProtoNames() throws {
        var f = base("2025-01-15T10:00:00.123Z")
        f.verdict = .dropped; f.dropReason = 181; f.dropReasonDesc = .policyDeny
        f.type = .l3L4; f.eventType.type = 5; f.trafficDirection = .egress; f.policyMatchType = 1
        var p = Flow_Policy(); p.name = "deny-world"; p.namespace = "prod"; p.revision = 7; p.kind = "CiliumNetworkPolicy"
        f.egressDeniedBy = [p]
        var r = Observer_GetFlowsResponse(); r.flow = f; r.nodeName = "test-node"; r.time = f.time
        let line = FlowPrinter(format: .json).render(r)
        let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        let flow = obj["flow"] as! [String: Any]
        #expect(obj["node_name"] as? String == "test-node")
        #expect(obj["time"] as? String == "2025-01-15T10:00:00.123Z")
        #expect(flow["verdict"] as? String == "DROPPED")
        #expect(flow["drop_reason_desc"] as? String == "POLICY_DENY")
        #expect(flow["Type"] as? String == "L3_L4")
        #expect(flow["Summary"] as? String == "TCP Flags: SYN")
        #expect((flow["IP"] as? [String: Any])?["ipVersion"] as? String == "IPv4")
        #expect(((flow["l4"] as? [String: Any])?["TCP"] as? [String: Any])?["destination_port"] as? Int == 8080)
        #expect(((flow["egress_denied_by"] as? [[String: Any]])?.first?["revision"]) as? String == "7")
        #expect((flow["source"] as? [String: Any])?["pod_name"] as? String == "client-7d4b9c-abcde")
    }
}

/// An exact timestamp for `2025-01-15T10:00:00.123Z` (whole seconds parsed, milliseconds kept as integers).
func timestamp(_ text: String) -> Google_Protobuf_Timestamp {
    let f = ISO8601DateFormatter()
    let dot = text.firstIndex(of: ".")!
    let seconds = f.date(from: String(text[..<dot]) + "Z")!.timeIntervalSince1970
    let millis = Int32(text[text.index(after: dot)...].dropLast())!
    return Google_Protobuf_Timestamp(seconds: Int64(seconds), nanos: millis * 1_000_000)
}
