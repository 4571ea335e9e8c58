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

    /// The policies that decided a flow. A cookie the batch's table does not hold yet names none.
    func policies(_ source: EventFlow.Policies, cookies: [[OriginID]]) -> [Flow_Policy] {
        switch source {
        case .none: []
        case .cookie(let c): Int(c) < cookies.count ? policies(cookies[Int(c)]) : []
        case .defaultDeny(let id, let direction): policies(defaultDenyBy[id]?[direction] ?? [])
        }
    }

    /// The event's own endpoint; one this node no longer knows is named by its ID and identity alone.
    func localEndpoint(_ e: DatapathEvent) -> Flow_Endpoint {
        if let known = endpoints[e.endpointID] { return known.endpoint }
        var ep = Flow_Endpoint()
        ep.id = UInt32(e.endpointID)
        ep.identity = e.localIdentity
        return ep
    }

    /// The other side: a local endpoint when the address is one, else its identity and the identity's labels.
    func peerEndpoint(_ ip: IPAddress, identity: NumericIdentity) -> Flow_Endpoint {
        if let id = endpointsByIP[ip], let ep = endpoints[id] { return ep.endpoint }
        var ep = Flow_Endpoint()
        ep.identity = identity
        ep.labels = identityLabels[identity] ?? []
        return ep
    }
}

/// A published FlowContext with what its flows encode to, cached: flows name the same few endpoints and
/// policies over and over, so their serialized sub-messages are built once per snapshot, when first needed.
final class FlowContextSnapshot: @unchecked Sendable {
    let context: FlowContext
    /// Namespaces of the endpoints flows can name (for GetNamespaces).
    let namespaces: [String]
    private let lock = NSLock()
    private var encoded: [Fragment: [UInt8]] = [:]

    /// A cached sub-message body.
    enum Fragment: Hashable {
        case local(UInt16), peerIdentity(NumericIdentity)
        /// A repeated Policy field (its number is part of the bytes).
        case cookie(UInt32, field: Int), defaultDeny(UInt16, TrafficDirection, field: Int)
    }

    init(_ context: FlowContext) {
        self.context = context
        namespaces = Set(context.endpoints.values.map(\.endpoint.namespace)).filter { !$0.isEmpty }.sorted()
    }

    /// The fragment's bytes, made by `make` the first time (made again, not cached, when `cacheable` is false).
    func fragment(_ key: Fragment, cacheable: Bool = true, _ make: () -> [UInt8]) -> [UInt8] {
        if let bytes = lock.withLock({ encoded[key] }) { return bytes }
        let bytes = make()
        if cacheable { lock.withLock { encoded[key] = bytes } }
        return bytes
    }
}

/// Publishes the latest FlowContext to the event thread.
final class FlowContextBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = FlowContextSnapshot(FlowContext())
    var current: FlowContext {
        get { snapshot.context }
        set { let s = FlowContextSnapshot(newValue); lock.withLock { value = s } }
    }
    var snapshot: FlowContextSnapshot { lock.withLock { value } }
}
