import Foundation

/// The agent's REST API: JSON bodies exchanged over the unix socket, shared by the agent and its clients.
///
/// Routes (all under `/v1`): `GET status`; `GET|POST endpoints`; `GET|DELETE endpoints/{id or ns/name}`;
/// `PATCH endpoints/{id}/labels`; `GET|PUT policies` (PUT takes YAML); `DELETE policies/{Kind}/{ns or -}/{name}`;
/// `GET identities`; `GET bpf/policy/{endpoint}`.
///
/// For the CNI plugin: `POST endpoints` with `netnsPath` wires an endpoint into a runtime's namespace;
/// `GET endpoints?containerID=ID` lists the endpoints of a container (zero or one), with `&verify=true` each
/// carries the problems found in its plumbing; `DELETE endpoints?containerID=ID` removes them (404 when none).
public enum AgentAPI {
    public static let defaultSocket = "/run/membrane/membrane.sock"
    public static let socketEnvironment = "MEMBRANE_SOCKET"
}

public struct EndpointJSON: Codable, Sendable, Hashable {
    public var id: UInt16
    public var namespace: String
    public var name: String
    public var labels: [String: String]
    public var serviceAccount: String
    public var identity: UInt32
    public var identityLabels: [String]
    public var ipv4: String
    public var netns: String
    public var hostInterface: String
    public var ingressEnforcement: String
    public var egressEnforcement: String
    public var state: String
    /// The container runtime's ID, for endpoints the CNI plugin created.
    public var containerID: String?
    /// The runtime's network namespace path (the agent does not own it), for endpoints the CNI plugin created.
    public var netnsPath: String?
    /// The interface inside the namespace (`eth0`, or what the runtime asked for).
    public var interfaceName: String?
    /// The MAC address of `interfaceName`.
    public var mac: String?
    /// The CNI network (the config's `name`) the endpoint was added to.
    public var cniNetwork: String?
    /// Only with `verify=true`: what is wrong with the endpoint's plumbing (empty when nothing is).
    public var problems: [String]?
    public init(id: UInt16, namespace: String, name: String, labels: [String: String], serviceAccount: String, identity: UInt32,
                identityLabels: [String], ipv4: String, netns: String, hostInterface: String, ingressEnforcement: String,
                egressEnforcement: String, state: String, containerID: String? = nil, netnsPath: String? = nil,
                interfaceName: String? = nil, mac: String? = nil, cniNetwork: String? = nil, problems: [String]? = nil) {
        self.id = id; self.namespace = namespace; self.name = name; self.labels = labels; self.serviceAccount = serviceAccount
        self.identity = identity; self.identityLabels = identityLabels; self.ipv4 = ipv4; self.netns = netns
        self.hostInterface = hostInterface; self.ingressEnforcement = ingressEnforcement; self.egressEnforcement = egressEnforcement
        self.state = state; self.containerID = containerID; self.netnsPath = netnsPath; self.interfaceName = interfaceName
        self.mac = mac; self.cniNetwork = cniNetwork; self.problems = problems
    }
}

/// Creates an endpoint. Without `netnsPath` the agent creates the network namespace itself; with it (the CNI
/// plugin's ADD) it wires a veth named `interfaceName` (default `eth0`) into that existing namespace, which it
/// never removes. `containerID` finds the endpoint again (CHECK, DEL); `cniNetwork` scopes GC.
public struct CreateEndpointRequest: Codable, Sendable {
    public var namespace: String
    public var name: String
    public var labels: [String: String]?
    public var serviceAccount: String?
    public var netnsPath: String?
    public var interfaceName: String?
    public var containerID: String?
    public var cniNetwork: String?
    public init(namespace: String, name: String, labels: [String: String]? = nil, serviceAccount: String? = nil,
                netnsPath: String? = nil, interfaceName: String? = nil, containerID: String? = nil, cniNetwork: String? = nil) {
        self.namespace = namespace; self.name = name; self.labels = labels; self.serviceAccount = serviceAccount
        self.netnsPath = netnsPath; self.interfaceName = interfaceName; self.containerID = containerID; self.cniNetwork = cniNetwork
    }
}

public struct LabelsRequest: Codable, Sendable {
    public var labels: [String: String]
    public init(labels: [String: String]) { self.labels = labels }
}

public struct PolicyJSON: Codable, Sendable, Hashable {
    public var kind: String
    public var namespace: String?
    public var name: String
    public var revision: UInt64
    /// `api` or the manifest file it came from.
    public var source: String
    public init(kind: String, namespace: String?, name: String, revision: UInt64, source: String) {
        self.kind = kind; self.namespace = namespace; self.name = name; self.revision = revision; self.source = source
    }
}

public struct PolicyApplyResult: Codable, Sendable {
    public var applied: [String]
    public var errors: [String]
    public var revision: UInt64
    public init(applied: [String], errors: [String], revision: UInt64) { self.applied = applied; self.errors = errors; self.revision = revision }
}

public struct IdentityJSON: Codable, Sendable {
    public var id: UInt32
    public var labels: [String]
    public init(id: UInt32, labels: [String]) { self.id = id; self.labels = labels }
}

public struct BPFPolicyEntryJSON: Codable, Sendable {
    public var policy: String
    public var direction: String
    public var identity: UInt32
    public var labels: [String]
    public var port: String
    public var proxyPort: UInt16
    public var authType: String
    public var key: String
    public var value: String
    public init(policy: String, direction: String, identity: UInt32, labels: [String], port: String, proxyPort: UInt16,
                authType: String, key: String, value: String) {
        self.policy = policy; self.direction = direction; self.identity = identity; self.labels = labels; self.port = port
        self.proxyPort = proxyPort; self.authType = authType; self.key = key; self.value = value
    }
}

public struct StatusJSON: Codable, Sendable {
    public struct Component: Codable, Sendable {
        public var name: String
        public var state: String
        public var message: String
        public init(name: String, state: String, message: String) { self.name = name; self.state = state; self.message = message }
    }
    public struct MapPressure: Codable, Sendable {
        public var map: String
        public var entries: Int
        public var capacity: Int
        public init(map: String, entries: Int, capacity: Int) { self.map = map; self.entries = entries; self.capacity = capacity }
    }
    public var node: String
    public var components: [Component]
    public var endpoints: Int
    public var identities: Int
    public var policies: Int
    public var policyRevision: UInt64
    public var mapPressure: [MapPressure]
    /// Endpoints whose policy did not fit their map: their traffic is dropped (fail closed).
    public var overflowedEndpoints: [UInt16]
    public var forwarded: UInt64
    public var dropped: [String: UInt64]
    public init(node: String, components: [Component], endpoints: Int, identities: Int, policies: Int, policyRevision: UInt64,
                mapPressure: [MapPressure], overflowedEndpoints: [UInt16], forwarded: UInt64, dropped: [String: UInt64]) {
        self.node = node; self.components = components; self.endpoints = endpoints; self.identities = identities
        self.policies = policies; self.policyRevision = policyRevision; self.mapPressure = mapPressure
        self.overflowedEndpoints = overflowedEndpoints; self.forwarded = forwarded; self.dropped = dropped
    }
}

/// An error answer: `{"error": "..."}` with an HTTP status.
public struct ErrorJSON: Codable, Sendable {
    public var error: String
    public init(error: String) { self.error = error }
}
