import Datapath
import Foundation
import HubbleAPI
import Policy
import PolicyAPI

extension Agent {
    /// Publishes what the flow pipeline needs after a change (called at the end of `program()`, under the
    /// agent's lock). Identity labels are recomputed only for identities that are new.
    func publishFlowContext() {
        let old = flowContext.current
        var c = FlowContext()
        c.nodeName = config.nodeName
        for (id, r) in records {
            guard let identity = identities[id] else { continue }
            var ep = Flow_Endpoint()
            ep.id = UInt32(id)
            ep.identity = identity.id
            ep.namespace = r.namespace
            ep.podName = r.name
            ep.labels = identity.labels.labels.map(\.description)
            c.endpoints[id] = FlowContext.LocalEndpoint(endpoint: ep, interfaceName: r.plumbing.hostInterface)
            if let a = IPAddress(r.plumbing.ipv4) { c.endpointsByIP[a] = id }
            var deny: [TrafficDirection: [ResourceRef]] = [:]
            for dir in TrafficDirection.allCases { deny[dir] = engine.posture(id, dir)?.defaultDenyBy ?? [] }
            c.defaultDenyBy[id] = deny
        }
        var wanted = Set(ipcacheEntries.values)
        wanted.formUnion(c.endpoints.values.map(\.endpoint.identity))
        for r in ReservedIdentity.allCases { wanted.insert(r.rawValue) }
        for id in wanted {
            if let labels = old.identityLabels[id] { c.identityLabels[id] = labels; continue }
            if let identity = engine.identity(id) { c.identityLabels[id] = identity.labels.labels.map(\.description) }
        }
        c.origins = engine.origins
        c.policyRevisions = engine.policyRevisions
        flowContext.current = c
    }

    /// A kernel counter (summed over CPUs). Safe from any thread: a read of a per-CPU array.
    func kernelCounter(direction: TrafficDirection, slot: UInt8) -> UInt64 {
        datapath.counter(direction: direction, slot: slot)
    }
}
