import Datapath
import Foundation
import HubbleAPI
import Policy
import PolicyAPI

/// What the flow pipeline needs to know about the agent to describe an event: endpoints, identity labels,
/// the policies behind map entries, and which policies put each endpoint into default deny.
///
/// An immutable snapshot, published by the agent after every change it programs, so that the event thread
/// never takes the agent's lock (policy computation can hold it for milliseconds).
struct FlowContext: Sendable {
    struct LocalEndpoint: Sendable {
        var endpoint: Flow_Endpoint
        var interfaceName: String
    }

    var nodeName = ""
    var endpoints: [UInt16: LocalEndpoint] = [:]
    var endpointsByIP: [IPAddress: UInt16] = [:]
    var identityLabels: [NumericIdentity: [String]] = [:]
    var origins = OriginTable()
    var policyRevisions: [ResourceRef: UInt64] = [:]
    var defaultDenyBy: [UInt16: [TrafficDirection: [ResourceRef]]] = [:]

    /// Hubble's Policy message for one contributing rule's policy. Cilium's policy labels, without the uid
    /// label when the policy has no uid (an empty `…policy.uid` label says nothing).
    func policy(_ origin: PolicyOrigin) -> Flow_Policy {
        var p = Flow_Policy()
        p.labels = origin.labels.filter { $0.key != WellKnownLabel.policyUID || !$0.value.isEmpty }.map(\.description)
        guard let ref = origin.ref else {
            p.name = origin.derived ?? ""
            p.kind = "Derived"
            return p
        }
        p.name = ref.name
        p.namespace = ref.namespace ?? ""
        p.kind = ref.kind.rawValue
        p.revision = policyRevisions[ref] ?? origin.revision
        return p
    }

    /// The policies (each once, in a stable order) behind a set of origins.
    func policies(_ ids: [OriginID]) -> [Flow_Policy] {
        var seen = Set<String>(), out: [Flow_Policy] = []
        for id in ids where Int(id) < origins.origins.count {
            let o = origins[id]
            let key = o.ref?.description ?? ("derived " + (o.derived ?? ""))
            if seen.insert(key).inserted { out.append(policy(o)) }
        }
        return out
    }

    /// The Policy messages of whole policies (those that put an endpoint into default deny).
    func policies(_ refs: [ResourceRef]) -> [Flow_Policy] {
        refs.map { policy(PolicyOrigin(ref: $0, rulePath: "")) }
    }
}

/// Publishes the latest FlowContext to the event thread.
final class FlowContextBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = FlowContext()
    var current: FlowContext {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
