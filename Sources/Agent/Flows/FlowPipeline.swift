import Datapath
import Foundation
import Hubble
import HubbleAPI
import Policy

/// Datapath events → flows → the flow store, and the flow metrics (Hubble's and Cilium's policy verdicts).
///
/// Runs on the event reader's thread: one context snapshot, one store append and one metrics update per
/// batch of events, so the cost per event is the flow conversion alone.
public final class FlowPipeline: @unchecked Sendable {
    let store: FlowStore
    let metrics: MetricRegistry
    private let context: FlowContextBox
    private let cookies: CookieTable
    private var builder = FlowBuilder()
    private var reader: EventReader?
    /// Reads the datapath's count of events it could not queue (the ring buffer was full).
    private let kernelLost: @Sendable () -> UInt64
    private var lastKernelLost: UInt64 = 0
    private let kernelLostAtStart: UInt64

    /// A pipeline with no agent behind it (benchmarks): flows name addresses and identities only.
    public convenience init(datapath: BPFDatapath, store: FlowStore, metrics: MetricRegistry = MetricRegistry()) {
        self.init(store: store, metrics: metrics, context: FlowContextBox(), cookies: datapath.cookies,
                  kernelLost: { datapath.lostEvents })
    }

    init(store: FlowStore, metrics: MetricRegistry, context: FlowContextBox, cookies: CookieTable,
         kernelLost: @escaping @Sendable () -> UInt64) {
        self.store = store; self.metrics = metrics; self.context = context; self.cookies = cookies; self.kernelLost = kernelLost
        lastKernelLost = kernelLost()
        kernelLostAtStart = lastKernelLost
    }

    /// Events the kernel could not queue since this pipeline started (read now, not at the last batch).
    public var lostSinceStart: UInt64 { kernelLost() - kernelLostAtStart }

    public func start(events: BPFMap) throws {
        reader = try EventReader(events: events) { [unowned self] batch in self.process(batch) }
    }

    public func stop() { reader?.stop(); reader = nil }

    /// Events received from the kernel so far.
    public var received: UInt64 { reader?.counts.received ?? 0 }

    func process(_ events: [DatapathEvent]) {
        let lost = kernelLost()
        if lost > lastKernelLost {
            store.recordLost(lost - lastKernelLost, source: .perfEventRingBuffer)
            lastKernelLost = lost
        }
        let c = context.current
        let k = cookies.snapshot
        var flows: [Flow_Flow] = []
        flows.reserveCapacity(events.count * 2)
        for e in events { builder.flows(e, context: c, cookies: k, into: &flows) }
        store.append(flows)
        count(flows)
    }

    /// hubble_flows_processed_total, hubble_drop_total and cilium_policy_verdict_total, aggregated per batch.
    private func count(_ flows: [Flow_Flow]) {
        var processed: [[String: String]: Double] = [:], drops: [[String: String]: Double] = [:], verdicts: [[String: String]: Double] = [:]
        for f in flows {
            let type = f.eventType.type == 5 ? "PolicyVerdict" : f.eventType.type == 1 ? "Drop" : "L3_L4"
            processed[["type": type, "subtype": "", "verdict": FlowPrinter.verdictName(f.verdict)], default: 0] += 1
            if f.eventType.type == 1 {
                drops[["protocol": FlowPipeline.protocolName(f), "reason": FlowPipeline.dropReasonName(f.dropReasonDesc)], default: 0] += 1
            }
            if f.eventType.type == 5 {
                let action = f.verdict == .forwarded ? "allow" : f.verdict == .audit ? "audit" : "deny"
                let match = Int(f.policyMatchType) < FlowPipeline.matchNames.count ? FlowPipeline.matchNames[Int(f.policyMatchType)] : "none"
                verdicts[["direction": f.trafficDirection == .ingress ? "ingress" : "egress", "match": match, "action": action], default: 0] += 1
            }
        }
        for (l, v) in processed { metrics.add("hubble_flows_processed_total", l, v) }
        for (l, v) in drops { metrics.add("hubble_drop_total", l, v) }
        for (l, v) in verdicts {
            metrics.add("cilium_policy_verdict_total", l, v)
            metrics.add("hubble_policy_verdicts_total", ["direction": l["direction"]!, "match": l["match"]!, "action": l["action"]!], v)
        }
    }

    static let matchNames = ["none", "l3-only", "l3-l4", "l4-only", "all", "l3-proto", "proto-only"]

    static func protocolName(_ f: Flow_Flow) -> String {
        switch f.l4.protocol {
        case .tcp?: "TCP"; case .udp?: "UDP"; case .sctp?: "SCTP"; case .icmpv4?: "ICMPv4"; case .icmpv6?: "ICMPv6"
        default: "Unknown"
        }
    }

    /// The enum name, as Hubble's drop metric labels it (`POLICY_DENIED`).
    static func dropReasonName(_ r: Flow_DropReason) -> String {
        switch r {
        case .policyDenied: "POLICY_DENIED"; case .policyDeny: "POLICY_DENY"; case .unknownSender: "UNKNOWN_SENDER"
        case .proxyRedirectionNotSupportedForProtocol: "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL"
        default: "\(r.rawValue)"
        }
    }
}
