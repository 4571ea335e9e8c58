import Datapath
import Foundation
import Policy

/// The agent's metrics, with Cilium's and Hubble's names and labels so existing dashboards work:
/// counters updated as things happen (policy changes, flows) and gauges read from the agent and the
/// kernel's counters at scrape time.
extension Agent {
    static let implementationDelayBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    func registerMetrics() {
        let m = metrics
        m.declare("cilium_policy_change_total", .counter, help: "Number of policy changes by outcome")
        m.declare("cilium_policy_implementation_delay", .histogram,
                  help: "Time between a policy change and its enforcement in the datapath, in seconds",
                  buckets: Agent.implementationDelayBuckets)
        m.declare("cilium_policy_verdict_total", .counter, help: "Total number of allowed, denied and audited policy verdicts")
        m.declare("hubble_flows_processed_total", .counter, help: "Total number of flows processed")
        m.declare("hubble_drop_total", .counter, help: "Number of drops")
        m.declare("hubble_policy_verdicts_total", .counter, help: "Total number of Cilium network policy verdicts")

        m.collect("cilium_drop_count_total", .counter, help: "Total dropped packets, tagged by drop reason and ingress/egress direction") { [weak self] in
            guard let self else { return [] }
            return TrafficDirection.allCases.flatMap { dir in
                DropReason.allCases.map { reason in
                    (["reason": Agent.dropReasonText(reason), "direction": dir.upper],
                     Double(self.kernelCounter(direction: dir, slot: reason.rawValue)))
                }
            }
        }
        m.collect("cilium_forward_count_total", .counter, help: "Total forwarded packets, tagged by ingress/egress direction") { [weak self] in
            guard let self else { return [] }
            return TrafficDirection.allCases.map { dir in
                (["direction": dir.upper], Double(self.kernelCounter(direction: dir, slot: 0) + self.kernelCounter(direction: dir, slot: 1)
                                                   + self.kernelCounter(direction: dir, slot: 2)))
            }
        }
        m.collect("cilium_policy_endpoint_enforcement_status", .gauge, help: "Number of endpoints labeled by policy enforcement status") { [weak self] in
            guard let self else { return [] }
            var counts = ["ingress": 0.0, "egress": 0.0, "both": 0.0, "none": 0.0]
            for ep in self.listEndpoints() {
                let i = ep.ingressEnforcement == "Enabled", e = ep.egressEnforcement == "Enabled"
                counts[i && e ? "both" : i ? "ingress" : e ? "egress" : "none"]! += 1
            }
            return counts.map { (["enforcement": $0.key], $0.value) }
        }
        m.collect("cilium_endpoint_state", .gauge, help: "Count of all endpoints, tagged by different endpoint states") { [weak self] in
            guard let self else { return [] }
            var counts = ["ready": 0.0, "policy-overflow": 0.0]
            for ep in self.listEndpoints() { counts[ep.state, default: 0] += 1 }
            return counts.map { (["endpoint_state": $0.key], $0.value) }
        }
        m.collect("cilium_identity", .gauge, help: "Number of identities currently allocated") { [weak self] in
            guard let self else { return [] }
            var counts = ["reserved": 0.0, "cluster_local": 0.0, "node_local": 0.0]
            for id in self.listIdentities() {
                counts[id.id < 256 ? "reserved" : id.id >= 16_777_216 ? "node_local" : "cluster_local"]! += 1
            }
            return counts.map { (["type": $0.key], $0.value) }
        }
        m.collect("cilium_bpf_map_pressure", .gauge, help: "Fill percentage of maps, tagged by map name") { [weak self] in
            guard let self else { return [] }
            return self.status().mapPressure.map { (["map_name": $0.map], Double($0.entries) / Double(max(1, $0.capacity))) }
        }
        m.collect("hubble_lost_events_total", .counter, help: "Number of lost events") { [weak self] in
            guard let self else { return [] }
            return [(["source": "PERF_EVENT_RING_BUFFER"], Double(self.lostEvents))]
        }
    }

    /// Cilium's drop reason text, as `cilium_drop_count_total{reason}` carries it.
    static func dropReasonText(_ r: DropReason) -> String {
        switch r {
        case .policyDenied: "Policy denied"
        case .policyDeny: "Policy denied by denylist"
        case .unknownSender: "Unknown sender"
        case .proxyUnavailable: "Proxy redirection not supported for protocol"
        }
    }

    /// Records one policy change: its outcome, and for a success the time until the datapath enforced it.
    func recordPolicyChange(success: Bool, source: String, since start: ContinuousClock.Instant) {
        metrics.add("cilium_policy_change_total", ["outcome": success ? "success" : "failure"])
        if success {
            let d = ContinuousClock.now - start
            let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
            metrics.observe("cilium_policy_implementation_delay", ["source": source], seconds)
        }
    }
}
