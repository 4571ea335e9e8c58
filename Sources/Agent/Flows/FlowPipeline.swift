import Datapath
import Foundation
import Hubble
import HubbleAPI
import Policy

/// Datapath events → the flow store (as `EventFlows`, built into flows only when read), and the flow metrics
/// (Hubble's and Cilium's policy verdicts).
///
/// Runs on the event reader's thread: one context snapshot, one store append and one metrics update per
/// batch of events, so the cost per event is its decoding and a few table increments.
public final class FlowPipeline: @unchecked Sendable {
    let store: FlowStore
    let metrics: MetricRegistry
    private let context: FlowContextBox
    private let cookies: CookieTable
    private var ids = FlowIDs()
    private let wallClockOffsetNs = DatapathEvent.monotonicToWallOffset()
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
        let batch = EventFlows(events, snapshot: context.snapshot, cookies: cookies.snapshot,
                               wallClockOffsetNs: wallClockOffsetNs, ids: &ids)
        store.append(batch)
        count(batch)
    }

    /// hubble_flows_processed_total, hubble_drop_total and cilium_policy_verdict_total, aggregated per batch in
    /// small integer-indexed tables (label dictionaries are built once per batch, not once per flow).
    private func count(_ batch: EventFlows) {
        var processed = [Int](repeating: 0, count: 3 * 8 * 8)      // type × verdict × protocol
        var verdicts = [Int](repeating: 0, count: 2 * 7 * 3)       // direction × match × action
        var drops: [Int: Int] = [:]                                // reason × 8 + protocol
        for i in 0..<batch.count {
            let f = batch.eventFlow(i)
            let verdict = f.verdict
            let proto = FlowPipeline.protocolIndex(f.event.proto)
            processed[((f.kind == .drop ? 2 : 1) * 8 + min(7, verdict.rawValue)) * 8 + proto] += 1
            if f.kind == .drop {
                let reason = Flow_DropReason(rawValue: Int(f.dropReason)) ?? .unknown
                drops[reason.rawValue * 8 + proto, default: 0] += 1
            } else {
                let action = verdict == .forwarded ? 0 : verdict == .audit ? 2 : 1
                verdicts[((f.egress ? 1 : 0) * 7 + min(6, Int(f.policyMatchType))) * 3 + action] += 1
            }
        }
        let types = ["L3_L4", "PolicyVerdict", "Drop"], actions = ["allow", "deny", "audit"]
        for (i, n) in processed.enumerated() where n > 0 {
            let verdict = FlowPrinter.verdictName(Flow_Verdict(rawValue: i / 8 % 8) ?? .unknown)
            metrics.add("hubble_flows_processed_total", ["type": types[i / 64], "subtype": "", "verdict": verdict,
                                                         "protocol": FlowPipeline.protocolNames[i % 8]], Double(n))
        }
        for (key, n) in drops {
            let reason = FlowPipeline.dropReasonName(Flow_DropReason(rawValue: key / 8) ?? .unknown)
            metrics.add("hubble_drop_total", ["protocol": FlowPipeline.protocolNames[key % 8], "reason": reason], Double(n))
        }
        for (i, n) in verdicts.enumerated() where n > 0 {
            let labels = ["direction": i / 21 == 0 ? "ingress" : "egress", "match": FlowPipeline.matchNames[i / 3 % 7], "action": actions[i % 3]]
            metrics.add("cilium_policy_verdict_total", labels, Double(n))
            metrics.add("hubble_policy_verdicts_total", labels, Double(n))
        }
    }

    static let protocolNames = ["Unknown", "TCP", "UDP", "SCTP", "ICMPv4", "ICMPv6", "Unknown", "Unknown"]

    static func protocolIndex(_ proto: UInt8) -> Int {
        switch proto {
        case 6: 1; case 17: 2; case 132: 3; case 1: 4; case 58: 5
        default: 0
        }
    }

    static let matchNames = ["none", "l3-only", "l3-l4", "l4-only", "all", "l3-proto", "proto-only"]

    /// The enum name, as Hubble's drop metric labels it (`POLICY_DENIED`).
    static func dropReasonName(_ r: Flow_DropReason) -> String {
        switch r {
        case .policyDenied: "POLICY_DENIED"; case .policyDeny: "POLICY_DENY"; case .unknownSender: "UNKNOWN_SENDER"
        case .proxyRedirectionNotSupportedForProtocol: "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL"
        default: "\(r.rawValue)"
        }
    }
}
