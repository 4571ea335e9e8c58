import Foundation
import HubbleAPI
import SwiftProtobuf

/// Renders flows the way the `hubble observe` CLI does (reference §5), so that operators read the same
/// lines from `membrane observe` and tools that parse them keep working.
public struct FlowPrinter: Sendable {
    public enum Format: String, Sendable, CaseIterable { case compact, json, jsonpb, table, dict }

    public var format: Format
    public var printPolicyNames = false
    public var printNodeName = false
    /// `--numeric`: IPs instead of pod names.
    public var numeric = false

    public init(format: Format, printPolicyNames: Bool = false, printNodeName: Bool = false, numeric: Bool = false) {
        self.format = format; self.printPolicyNames = printPolicyNames; self.printNodeName = printNodeName; self.numeric = numeric
    }

    /// Column titles for `table` (printed once, before the first row).
    public var tableHeader: String? {
        guard format == .table else { return nil }
        return tableRow((printNodeName ? ["TIMESTAMP", "NODE"] : ["TIMESTAMP"]) + ["SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"])
    }

    /// One response as text: a line (compact, json, table) or a block (dict). Lost events print as Hubble
    /// prints them (compact: `EVENTS LOST: …`).
    public func render(_ response: Observer_GetFlowsResponse) -> String {
        if format == .json || format == .jsonpb {
            var options = JSONEncodingOptions()
            options.preserveProtoFieldNames = true
            return (try? response.jsonString(options: options)) ?? "{}"
        }
        if case .lostEvents(let lost)? = response.responseTypes {
            return "EVENTS LOST: \(FlowPrinter.lostSourceName(lost.source)) CPU(\(lost.hasCpu ? String(lost.cpu.value) : "unknown")) \(lost.numEventsLost)"
        }
        guard case .flow(let flow)? = response.responseTypes else { return "" }
        return render(flow)
    }

    public func render(_ f: Flow_Flow) -> String {
        let time = FlowPrinter.stampMilli(f)
        let reply = f.hasIsReply ? f.isReply.value : nil
        var (src, srcID, dst, dstID) = (host(f, source: true), FlowPrinter.identityText(f.hasSource ? f.source.identity : nil),
                                        host(f, source: false), FlowPrinter.identityText(f.hasDestination ? f.destination.identity : nil))
        let arrow: String
        switch reply {
        case nil: arrow = "<>"
        case false?: arrow = "->"
        case true?: arrow = "<-"; swap(&src, &dst); swap(&srcID, &dstID)
        }
        let type = FlowPrinter.typeText(f)
        let verdict = verdictText(f)
        let summary = FlowPrinter.summaryText(f)
        switch format {
        case .table:
            return tableRow((printNodeName ? [time, f.nodeName] : [time]) + [src, dst, type, verdict, summary])
        case .dict:
            var rows = [("TIMESTAMP", time)]
            if printNodeName { rows.append(("NODE", f.nodeName)) }
            rows += [("SOURCE", src), ("DESTINATION", dst), ("TYPE", type), ("VERDICT", verdict), ("SUMMARY", summary)]
            return rows.map { String(repeating: " ", count: 11 - $0.0.count) + $0.0 + ": " + $0.1 }.joined(separator: "\n")
                + "\n------------"
        default:
            let node = printNodeName ? " [\(f.nodeName)]" : ""
            return "\(time)\(node): \(src) \(srcID) \(arrow) \(dst) \(dstID) \(type) \(verdict) (\(summary))"
        }
    }

    func tableRow(_ cells: [String]) -> String {
        // Fixed widths stand in for Go's tabwriter (which needs all rows first); wide cells just push on.
        let widths = printNodeName ? [24, 16, 48, 48, 24, 10] : [24, 48, 48, 24, 10]
        return cells.enumerated().map { i, c in
            i < widths.count ? c.padding(toLength: max(widths[i], c.count + 1), withPad: " ", startingAt: 0) : c
        }.joined()
    }

    // MARK: Pieces

    static func stampMilli(_ f: Flow_Flow) -> String {
        guard f.hasTime else { return "N/A" }
        let date = Date(timeIntervalSince1970: Double(f.time.seconds))   // whole seconds: exact in a Double
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.month, .day, .hour, .minute, .second, .nanosecond], from: date)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let ms = Int(f.time.nanos) / 1_000_000
        let day = c.day! < 10 ? " \(c.day!)" : "\(c.day!)"
        return String(format: "%@ %@ %02d:%02d:%02d.%03d", months[c.month! - 1], day, c.hour!, c.minute!, c.second!, ms)
    }

    func host(_ f: Flow_Flow, source: Bool) -> String {
        guard f.hasIp else {
            guard f.hasEthernet else { return "" }
            return source ? f.ethernet.source : f.ethernet.destination
        }
        let ip = source ? f.ip.source : f.ip.destination
        let ep = source ? f.source : f.destination
        let service = source ? f.sourceService : f.destinationService
        let names = source ? f.sourceNames : f.destinationNames
        var name = ip
        if !numeric {
            if !ep.podName.isEmpty { name = "\(ep.namespace)/\(ep.podName)" }
            else if !service.name.isEmpty { name = "\(service.namespace)/\(service.name)" }
            else if !names.isEmpty { name = names.joined(separator: ",") }
        }
        let port = f.l4Ports.map { source ? $0.source : $0.destination } ?? 0
        guard port != 0 else { return name }
        return (name == ip && ip.contains(":") ? "[\(ip)]" : name) + ":\(port)"
    }

    static let reservedIdentityNames = ["unknown", "host", "world", "unmanaged", "health", "init", "remote-node",
                                        "kube-apiserver", "ingress", "world-ipv4", "world-ipv6"]

    static func identityText(_ id: UInt32?) -> String {
        guard let id else { return "(unknown)" }
        return id < reservedIdentityNames.count ? "(\(reservedIdentityNames[Int(id)]))" : "(ID:\(id))"
    }

    static let observationPoints = ["to-endpoint", "to-proxy", "to-host", "to-stack", "to-overlay", "from-endpoint", "from-proxy",
                                    "from-host", "from-stack", "from-overlay", "from-network", "to-network", "from-crypto", "to-crypto"]
    static let matchTypes = ["none", "L3-Only", "L3-L4", "L4-Only", "all", "L3-Proto", "Proto-Only"]

    static func typeText(_ f: Flow_Flow) -> String {
        if f.hasL7 {
            let record: String
            switch f.l7.record {
            case .dns?: record = "dns"
            case .http?: record = "http"
            case .kafka?: record = "kafka"
            case nil: record = "l7"
            }
            let kind: String
            switch f.l7.type {
            case .request: kind = "request"
            case .response: kind = "response"
            case .sample: kind = "sample"
            default: kind = "unknown_l7_type"
            }
            if case .dns(let dns)? = f.l7.record { return "\(record)-\(kind) \(dns.observationSource)" }
            return "\(record)-\(kind)"
        }
        guard f.hasEventType else { return "UNKNOWN" }
        let sub = Int(f.eventType.subType)
        switch f.eventType.type {
        case 4: return sub >= 0 && sub < observationPoints.count ? observationPoints[sub] : "UNKNOWN"
        case 1: return DropReasonText.text(UInt32(max(0, sub)))
        case 5:
            let m = Int(f.policyMatchType)
            let match = m < matchTypes.count ? matchTypes[m] : "none"
            let dir = f.trafficDirection == .ingress ? "INGRESS" : f.trafficDirection == .egress ? "EGRESS" : "TRAFFIC_DIRECTION_UNKNOWN"
            return "policy-verdict:\(match) \(dir)"
        default: return "UNKNOWN"
        }
    }

    func verdictText(_ f: Flow_Flow) -> String {
        let name = FlowPrinter.verdictName(f.verdict)
        guard f.hasEventType, f.eventType.type == 5 else { return name }
        var text = name
        switch f.verdict {
        case .forwarded, .redirected: text = "ALLOWED"
        case .dropped, .error: text = "DENIED"
        case .audit: text = "AUDITED"
        default: break
        }
        if printPolicyNames {
            let ingress = f.trafficDirection == .ingress
            let allowed = ingress ? f.ingressAllowedBy : f.egressAllowedBy
            let denied = ingress ? f.ingressDeniedBy : f.egressDeniedBy
            let policies = text == "ALLOWED" ? allowed : text == "DENIED" ? denied : (denied.isEmpty ? allowed : denied)
            let named = policies.filter { !$0.name.isEmpty && !$0.kind.isEmpty }.map { "\($0.name) (\($0.kind))" }
            if !named.isEmpty { text += " BY " + named.joined(separator: ", ") }
        }
        return text
    }

    public static func verdictName(_ v: Flow_Verdict) -> String {
        switch v {
        case .forwarded: "FORWARDED"; case .dropped: "DROPPED"; case .error: "ERROR"; case .audit: "AUDIT"
        case .redirected: "REDIRECTED"; case .traced: "TRACED"; case .translated: "TRANSLATED"
        default: "VERDICT_UNKNOWN"
        }
    }

    static func summaryText(_ f: Flow_Flow) -> String {
        var s = ""
        if f.ipTraceID.traceID > 0 { s += "IP Trace ID: \(f.ipTraceID.traceID); " }
        s += f.summary
        if f.authType != .disabled { s += "; Auth: \(f.authType == .spire ? "SPIRE" : "TEST_ALWAYS_FAIL")" }
        return s
    }

    static func lostSourceName(_ s: Flow_LostEventSource) -> String {
        switch s {
        case .perfEventRingBuffer: "PERF_EVENT_RING_BUFFER"
        case .observerEventsQueue: "OBSERVER_EVENTS_QUEUE"
        case .hubbleRingBuffer: "HUBBLE_RING_BUFFER"
        default: "UNKNOWN_LOST_EVENT_SOURCE"
        }
    }
}

/// The text compact output prints for a drop reason (Hubble's table).
public enum DropReasonText {
    static let texts: [UInt32: String] = [
        0: "Success", 132: "Invalid source ip", 133: "Policy denied", 134: "Invalid packet",
        135: "CT: Truncated or invalid header", 136: "Fragmentation needed", 137: "CT: Unknown L4 protocol",
        139: "Unsupported L3 protocol", 142: "Unknown L4 protocol", 151: "Stale or unroutable IP",
        158: "Service backend not found", 165: "No configuration available to perform policy decision",
        171: "Invalid identity", 172: "Unknown sender", 177: "Denied by LB src range check",
        180: "Proxy redirection not supported for protocol", 181: "Policy denied by denylist",
        182: "VLAN traffic disallowed by VLAN filter", 189: "Authentication required", 195: "Traffic is unencrypted",
        196: "TTL exceeded", 198: "Rate limited", 202: "Host datapath not ready", 203: "Endpoint policy program not available",
        204: "No Egress IP configured", 205: "Punt to proxy",
    ]
    public static func text(_ code: UInt32) -> String { texts[code] ?? "\(code), 0" }
}
