import AgentAPI
import Cluster
import Datapath
import Foundation
import Hubble
import Logging
import Policy
import PolicyAPI

/// An endpoint the agent manages, as persisted for adoption after a restart.
struct EndpointRecord: Codable, Sendable {
    var id: UInt16
    var namespace: String
    var name: String
    var labels: [String: String]
    var serviceAccount: String
    var plumbing: EndpointPlumbing
    /// The container runtime's ID, for endpoints the CNI plugin added (absent in older state files).
    var containerID: String?
    /// The CNI network (config `name`) the endpoint was added to.
    var cniNetwork: String?
}

/// What survives an agent restart besides the pinned maps.
struct PersistedState: Codable {
    var endpoints: [EndpointRecord] = []
    /// YAML documents applied through the API, by `Kind namespace/name`.
    var apiPolicies: [String: String] = [:]
}

/// The agent: endpoints, identities, the policy engine, and the datapath it programs.
///
/// Every operation runs under one lock, in order; each ends by programming exactly the endpoints whose
/// map state changed. Invalid input is rejected before anything changes.
public final class Agent: @unchecked Sendable {
    public let config: AgentConfig
    let logger: Logger
    private let lock = NSLock()
    private(set) var engine: PolicyEngine
    let datapath: BPFDatapath
    var records: [UInt16: EndpointRecord] = [:]
    var identities: [UInt16: Identity] = [:]
    private var persisted = PersistedState()
    /// Resources from the manifests directory, by file.
    private var manifestResources: [String: [Resource]] = [:]
    private var policySource: [ResourceRef: String] = [:]
    private var overflowed = Set<UInt16>()
    var ipcacheEntries: [IPPrefix: NumericIdentity] = [:]
    /// Hubble's flow ring buffer, fed from the datapath's events.
    public let flows: FlowStore
    /// Prometheus metrics (`/metrics`).
    public let metrics = MetricRegistry()
    let flowContext = FlowContextBox()
    private var pipeline: FlowPipeline?
    /// Datapath events lost since the agent started (the ring buffer was full).
    var lostEvents: UInt64 { pipeline?.lostSinceStart ?? 0 }

    public init(config: AgentConfig, logger: Logger = Logger(label: "membrane-agent")) throws {
        self.config = config
        self.logger = logger
        engine = PolicyEngine(settings: config.settings, context: PolicyContext())
        guard let source = config.resolvedBPFSource() else {
            throw AgentError.failed("bpf/membrane.c not found: pass --bpf-source")
        }
        try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true)
        let object = URL(fileURLWithPath: config.stateDirectory).appendingPathComponent("membrane.o")
        try BPFDatapath.compile(source: URL(fileURLWithPath: source), output: object)
        try Plumbing.prepareHost()
        datapath = try BPFDatapath(objectFile: object, root: config.bpfRoot)
        flows = FlowStore(capacity: config.flowBufferCapacity, nodeName: config.nodeName)
        if let directory = config.manifestsDirectory { loadManifests(directory) }
        try adopt()
        registerMetrics()
        try startFlowPipeline()
    }

    deinit { pipeline?.stop() }

    /// Starts turning datapath events into flows (after adoption, so that the context is complete).
    private func startFlowPipeline() throws {
        let datapath = self.datapath
        let p = FlowPipeline(store: flows, metrics: metrics, context: flowContext, cookies: datapath.cookies,
                             kernelLost: { datapath.lostEvents })
        try p.start(events: datapath.events)
        pipeline = p
    }

    /// Reads the manifests directory before adopting endpoints, so that a restarted agent reprograms them with
    /// the policies, namespace labels and Pod labels in force, not without them until the watcher's first pass.
    /// Files with errors are skipped here; the watcher reports them.
    private func loadManifests(_ directory: String) {
        for path in ManifestWatcher.scan(directory).keys.sorted() {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let set = ManifestDecoder.decode(yaml: text, file: path)
            guard set.errors.isEmpty, !set.resources.isEmpty else { continue }
            manifestResources[path] = set.resources
            for r in set.resources { apply(r, source: path) }
        }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }

    // MARK: Restart

    var statePath: String { config.stateDirectory + "/state.json" }

    /// Takes over what a previous agent left: endpoints whose interfaces still exist are re-registered and
    /// their maps reprogrammed in place (programs replaced atomically), the rest is removed.
    private func adopt() throws {
        if let data = FileManager.default.contents(atPath: statePath) {
            persisted = (try? JSONDecoder().decode(PersistedState.self, from: data)) ?? PersistedState()
        }
        for (key, yaml) in persisted.apiPolicies {
            let set = ManifestDecoder.decode(yaml: yaml, file: "api")
            if !set.errors.isEmpty { logger.warning("dropping persisted policy \(key): \(set.errors)"); continue }
            for r in set.resources { apply(r, source: "api") }
        }
        var kept: [EndpointRecord] = []
        for r in persisted.endpoints {
            guard let ifindex = Agent.ifindex(r.plumbing.hostInterface), ifindex == r.plumbing.hostIfindex else {
                logger.info("endpoint \(r.id) (\(r.namespace)/\(r.name)) is gone; removing what is left of it")
                try? datapath.removeEndpoint(ifindex: r.plumbing.hostIfindex, id: r.id)
                try? Plumbing.deleteEndpoint(r.plumbing)
                continue
            }
            kept.append(r)
            register(r)
        }
        persisted.endpoints = kept
        // Stale kernel state: interfaces and policy maps no endpoint owns.
        let known = Set(kept.map(\.plumbing.hostIfindex))
        for key in datapath.endpoints.keys() {
            let ifindex = Int32(bitPattern: UInt32(key[0]) | UInt32(key[1]) << 8 | UInt32(key[2]) << 16 | UInt32(key[3]) << 24)
            if !known.contains(ifindex) { _ = try? datapath.endpoints.delete(key) }
        }
        let ids = Set(kept.map(\.id))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: config.bpfRoot)) ?? [] where name.hasPrefix("policy_") {
            if let id = UInt16(name.dropFirst("policy_".count)), !ids.contains(id) { try? datapath.removePolicyMap(endpoint: id) }
        }
        try program()
        for r in kept {
            try datapath.installEndpoint(ifindex: r.plumbing.hostIfindex, id: r.id, identity: identities[r.id]!.id,
                                         audit: config.settings.auditMode)
        }
        try save()
        logger.info("adopted \(kept.count) endpoint(s)")
    }

    static func ifindex(_ name: String) -> Int32? {
        let i = if_nametoindex(name)
        return i == 0 ? nil : Int32(i)
    }

    private func save() throws {
        let data = try JSONEncoder().encode(persisted)
        let tmp = statePath + ".tmp"
        try data.write(to: URL(fileURLWithPath: tmp))
        _ = rename(tmp, statePath)
    }

    // MARK: Programming the datapath

    private func identityLabels(_ r: EndpointRecord) -> LabelSet {
        let nsLabels = namespaceLabels(r.namespace)
        return LabelFilter.cilium.filter(WorkloadLabels.of(namespace: r.namespace, labels: effectiveLabels(r), namespaceLabels: nsLabels,
                                                           serviceAccount: effectiveServiceAccount(r), clusterName: config.clusterName))
    }

    /// The Pod of that namespace and name in the manifests, if any.
    private func manifestPod(namespace: String, name: String) -> PodObject? {
        for file in manifestResources.keys.sorted() {
            for r in manifestResources[file]! {
                if case .pod(let p) = r.body, (p.meta.namespace ?? "default") == namespace, p.meta.name == name { return p }
            }
        }
        return nil
    }

    /// The endpoint's labels: those it was created (or relabelled) with, and over them the labels of the Pod of
    /// the same namespace and name in the manifests, which win.
    private func effectiveLabels(_ r: EndpointRecord) -> [String: String] {
        guard let pod = manifestPod(namespace: r.namespace, name: r.name) else { return r.labels }
        return r.labels.merging(pod.meta.labels) { _, fromPod in fromPod }
    }

    /// The Pod's service account when the manifests have the Pod, else the endpoint's own.
    private func effectiveServiceAccount(_ r: EndpointRecord) -> String {
        manifestPod(namespace: r.namespace, name: r.name)?.serviceAccountName ?? r.serviceAccount
    }

    private func namespaceLabels(_ ns: String) -> [String: String] {
        for resources in manifestResources.values {
            for r in resources { if case .namespace(let n) = r.body, n.meta.name == ns { return n.meta.labels } }
        }
        return [:]
    }

    /// Gives an endpoint its identity and computes its policy (no datapath work).
    private func register(_ r: EndpointRecord) {
        let identity = engine.allocateIdentity(identityLabels(r))
        if let old = identities[r.id], old.id != identity.id { engine.releaseIdentity(old.id) }
        identities[r.id] = identity
        records[r.id] = r
        engine.upsertEndpoint(EndpointSubject(id: r.id, identity: identity))
    }

    /// The host's own addresses (every interface), which the ipcache maps to `reserved:host`: traffic the
    /// host sends to an endpoint is `host` (allow-localhost), not `world`.
    static func hostAddresses() -> [IPAddress] {
        var out: [IPAddress] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return out }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let ifa = cursor {
            defer { cursor = ifa.pointee.ifa_next }
            guard let sa = ifa.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let v4 = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            out.append(IPAddress(ipv4: v4))
        }
        return out
    }

    /// Programs the ipcache and the policy maps of the endpoints whose policy changed.
    private func program() throws {
        var cache: [IPPrefix: NumericIdentity] = [:]
        for a in Agent.hostAddresses() { cache[IPPrefix(address: a, length: 32)] = ReservedIdentity.host.rawValue }
        for (id, r) in records { if let p = IPPrefix(r.plumbing.ipv4 + "/32"), let i = identities[id] { cache[p] = i.id } }
        for (p, id) in engine.cidrIdentities { cache[p] = id }
        if cache != ipcacheEntries { try datapath.syncIPCache(cache); ipcacheEntries = cache }
        for id in engine.takeChangedEndpoints().sorted() {
            guard records[id] != nil, let state = engine.mapState(id) else { continue }
            let result = try datapath.syncPolicy(endpoint: id, state: state)
            if result.overflow {
                overflowed.insert(id)
                logger.error("endpoint \(id): \(state.count) policy entries exceed the map's \(BPFDatapath.policyMapCapacity); its traffic is dropped")
            } else {
                overflowed.remove(id)
            }
        }
        publishFlowContext()
    }

    // MARK: Endpoints

    private func allocateAddress() throws -> String {
        let used = Set(records.values.map(\.plumbing.ipv4))
        let base = UInt32(truncatingIfNeeded: config.podCIDR.address.low)
        let size = config.podCIDR.length >= 31 ? 1 : (UInt32(1) << UInt32(32 - config.podCIDR.length)) - 2
        for offset in 1...max(size, 1) {
            let a = IPAddress(ipv4: base + offset).description
            if !used.contains(a) { return a }
        }
        throw AgentError.conflict("the pod CIDR \(config.podCIDR) is exhausted")
    }

    /// The lowest free endpoint ID, skipping IDs whose interface or namespace exists on the host already
    /// (another agent's, or another program's).
    private func allocateID(excluding: Set<UInt16> = []) -> UInt16 {
        var id: UInt16 = 1
        while records[id] != nil || excluding.contains(id) || Agent.idTaken(id) { id += 1 }
        return id
    }

    /// Whether an endpoint ID's host interface names or namespace exist on the host.
    static func idTaken(_ id: UInt16) -> Bool {
        ifindex("mbh\(id)") != nil || ifindex("mbc\(id)") != nil || FileManager.default.fileExists(atPath: "/run/netns/mb-ep-\(id)")
    }

    static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 253 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
    }

    public func createEndpoint(_ req: CreateEndpointRequest) throws -> EndpointJSON {
        try locked {
            guard Agent.validName(req.namespace), Agent.validName(req.name) else {
                throw AgentError.invalid(["namespace and name must be DNS names, got \"\(req.namespace)/\(req.name)\""])
            }
            if req.netnsPath == nil && (req.interfaceName != nil || req.containerID != nil) {
                throw AgentError.invalid(["interfaceName and containerID need netnsPath (an existing network namespace)"])
            }
            if let cid = req.containerID, let other = records.values.first(where: { $0.containerID == cid }) {
                throw AgentError.conflict("container \(cid) already has endpoint \(other.id) (\(other.namespace)/\(other.name))")
            }
            if let old = records.values.first(where: { $0.namespace == req.namespace && $0.name == req.name }) {
                // A runtime that lost a sandbox without DEL, then adds the pod again: the old endpoint's namespace
                // or veth is gone, so it is replaced. Anything else is a conflict.
                if req.containerID != nil, old.containerID != nil, !Agent.isAlive(old.plumbing) {
                    logger.info("endpoint \(old.id) \(old.namespace)/\(old.name) of container \(old.containerID!) is gone; replacing it")
                    try removeLocked(old.id)
                } else {
                    throw AgentError.conflict("endpoint \(req.namespace)/\(req.name) already exists")
                }
            }
            // Another agent (or program) on the host may take the same interface names between the check and
            // the creation: then the next free ID is tried.
            var tried = Set<UInt16>()
            var id: UInt16 = 0
            var created: EndpointPlumbing?
            while created == nil {
                id = allocateID(excluding: tried)
                do {
                    let name = "\(req.namespace)-\(req.name)", ipv4 = try allocateAddress()
                    if let path = req.netnsPath {
                        created = try Plumbing.attachEndpoint(id: id, name: name, ipv4: ipv4, netnsPath: path,
                                                              interfaceName: req.interfaceName ?? "eth0")
                    } else {
                        created = try Plumbing.createEndpoint(id: id, name: name, ipv4: ipv4)
                    }
                } catch {
                    if Agent.idTaken(id), tried.count < 16 {
                        logger.info("endpoint ID \(id) was taken on the host meanwhile; trying another")
                        tried.insert(id)
                        continue
                    }
                    if case PlumbingError.invalid(let message) = error { throw AgentError.invalid([message]) }
                    throw error
                }
            }
            let plumbing = created!
            let r = EndpointRecord(id: id, namespace: req.namespace, name: req.name, labels: req.labels ?? [:],
                                   serviceAccount: req.serviceAccount ?? "default", plumbing: plumbing,
                                   containerID: req.containerID, cniNetwork: req.cniNetwork)
            do {
                register(r)
                try program()   // the policy map exists before the programs see the interface: fail closed
                try datapath.installEndpoint(ifindex: plumbing.hostIfindex, id: id, identity: identities[id]!.id,
                                             audit: config.settings.auditMode)
                persisted.endpoints.append(r)
                try save()
            } catch {
                try? removeLocked(id)
                throw AgentError.failed("creating endpoint \(req.namespace)/\(req.name): \(error)")
            }
            logger.info("endpoint \(id) \(req.namespace)/\(req.name) created: \(plumbing.ipv4), identity \(identities[id]!.id)")
            return json(id)
        }
    }

    private func resolve(_ selector: String) throws -> UInt16 {
        if let id = UInt16(selector), records[id] != nil { return id }
        let parts = selector.split(separator: "/", maxSplits: 1).map(String.init)
        if parts.count == 2, let r = records.values.first(where: { $0.namespace == parts[0] && $0.name == parts[1] }) { return r.id }
        throw AgentError.notFound("no endpoint \(selector)")
    }

    public func endpoint(_ selector: String) throws -> EndpointJSON { try locked { json(try resolve(selector)) } }

    public func plumbing(_ selector: String) throws -> EndpointPlumbing { try locked { records[try resolve(selector)]!.plumbing } }

    public func listEndpoints() -> [EndpointJSON] { locked { records.keys.sorted().map { json($0) } } }

    /// The endpoints of a container (zero or one); with `verify`, each carries what is wrong with its plumbing.
    public func endpoints(containerID: String, verify: Bool = false) -> [EndpointJSON] {
        locked {
            records.values.filter { $0.containerID == containerID }.map(\.id).sorted().map { id in
                json(id, problems: verify ? Plumbing.verify(records[id]!.plumbing) : nil)
            }
        }
    }

    /// Removes the endpoints of a container; throws `notFound` when it has none.
    public func deleteEndpoints(containerID: String) throws {
        try locked {
            let ids = records.values.filter { $0.containerID == containerID }.map(\.id)
            if ids.isEmpty { throw AgentError.notFound("no endpoint of container \(containerID)") }
            for id in ids { try removeLocked(id) }
            try program()
            try save()
        }
    }

    /// Whether an endpoint's veth still exists (and, for a runtime's namespace, the namespace too).
    static func isAlive(_ p: EndpointPlumbing) -> Bool {
        if let path = p.netnsPath, !FileManager.default.fileExists(atPath: path) { return false }
        return ifindex(p.hostInterface) == p.hostIfindex
    }

    public func deleteEndpoint(_ selector: String) throws {
        try locked {
            let id = try resolve(selector)
            try removeLocked(id)
            try program()
            try save()
        }
    }

    private func removeLocked(_ id: UInt16) throws {
        guard let r = records.removeValue(forKey: id) else { return }
        try datapath.removeEndpoint(ifindex: r.plumbing.hostIfindex, id: id)
        try Plumbing.deleteEndpoint(r.plumbing)
        engine.removeEndpoint(id)
        if let i = identities.removeValue(forKey: id) { engine.releaseIdentity(i.id) }
        persisted.endpoints.removeAll { $0.id == id }
        logger.info("endpoint \(id) \(r.namespace)/\(r.name) deleted")
    }

    /// New labels give the endpoint a new identity; its maps and every map that selects it follow.
    public func setLabels(_ selector: String, labels: [String: String]) throws -> EndpointJSON {
        try locked {
            let id = try resolve(selector)
            var r = records[id]!
            r.labels = labels
            register(r)
            try program()
            try datapath.installEndpoint(ifindex: r.plumbing.hostIfindex, id: id, identity: identities[id]!.id, audit: config.settings.auditMode)
            if let i = persisted.endpoints.firstIndex(where: { $0.id == id }) { persisted.endpoints[i] = r }
            try save()
            return json(id)
        }
    }

    private func json(_ id: UInt16, problems: [String]? = nil) -> EndpointJSON {
        let r = records[id]!
        let identity = identities[id]!
        func enforcement(_ d: TrafficDirection) -> String { engine.posture(id, d)?.enforced == true ? "Enabled" : "Disabled" }
        return EndpointJSON(id: id, namespace: r.namespace, name: r.name, labels: effectiveLabels(r), serviceAccount: effectiveServiceAccount(r),
                            identity: identity.id, identityLabels: identity.labels.labels.map(\.description), ipv4: r.plumbing.ipv4,
                            netns: r.plumbing.netns, hostInterface: r.plumbing.hostInterface,
                            ingressEnforcement: enforcement(.ingress), egressEnforcement: enforcement(.egress),
                            state: overflowed.contains(id) ? "policy-overflow" : "ready",
                            containerID: r.containerID, netnsPath: r.plumbing.netnsPath, interfaceName: r.plumbing.containerInterface,
                            mac: r.plumbing.mac, cniNetwork: r.cniNetwork, problems: problems)
    }

    // MARK: Policies

    private func apply(_ r: Resource, source: String) {
        switch r.body {
        case .ciliumPolicy, .networkPolicy:
            engine.apply(r.body, ref: r.ref)
            policySource[r.ref] = source
        default:
            break
        }
    }

    /// Applies the policies in a YAML text. Any error rejects the whole request and changes nothing.
    public func applyPolicies(yaml: String, source: String = "api") throws -> PolicyApplyResult {
        let start = ContinuousClock.now
        do {
            let result = try applyPoliciesLocked(yaml: yaml, source: source)
            recordPolicyChange(success: true, source: "api", since: start)
            return result
        } catch {
            recordPolicyChange(success: false, source: "api", since: start)
            throw error
        }
    }

    private func applyPoliciesLocked(yaml: String, source: String) throws -> PolicyApplyResult {
        try locked {
            let set = ManifestDecoder.decode(yaml: yaml, file: source)
            if !set.errors.isEmpty { throw AgentError.invalid(set.errors.map(\.description)) }
            let policies = set.resources.filter { [.ciliumNetworkPolicy, .ciliumClusterwideNetworkPolicy, .networkPolicy].contains($0.ref.kind) }
            if policies.isEmpty { throw AgentError.invalid(["\(source): no CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy"]) }
            for r in policies {
                apply(r, source: "api")
                persisted.apiPolicies[r.ref.description] = Agent.yamlDocument(of: r, in: yaml)
            }
            try program()
            try save()
            return PolicyApplyResult(applied: policies.map(\.ref.description), errors: [], revision: engine.revision)
        }
    }

    /// The document of `r` within a multi-document text (documents are kept as written, for persistence).
    static func yamlDocument(of r: Resource, in yaml: String) -> String {
        let docs = yaml.components(separatedBy: "\n---")
        return r.location.document < docs.count ? docs[r.location.document] : yaml
    }

    public func deletePolicy(_ ref: ResourceRef) throws {
        let start = ContinuousClock.now
        do {
            try deletePolicyLocked(ref)
            recordPolicyChange(success: true, source: "api", since: start)
        } catch {
            recordPolicyChange(success: false, source: "api", since: start)
            throw error
        }
    }

    private func deletePolicyLocked(_ ref: ResourceRef) throws {
        try locked {
            guard engine.policies[ref] != nil else { throw AgentError.notFound("no policy \(ref)") }
            engine.removePolicy(ref)
            policySource[ref] = nil
            persisted.apiPolicies[ref.description] = nil
            try program()
            try save()
        }
    }

    public func listPolicies() -> [PolicyJSON] {
        locked {
            engine.policies.keys.sorted().map {
                PolicyJSON(kind: $0.kind.rawValue, namespace: $0.namespace, name: $0.name,
                           revision: engine.policyRevisions[$0] ?? 0, source: policySource[$0] ?? "api")
            }
        }
    }

    /// Replaces the resources of one manifest file (a file removed is an empty list). A file with errors
    /// changes nothing: its previous contents stay in force.
    @discardableResult
    public func syncManifestFile(_ file: String, contents: String?) -> [String] {
        let start = ContinuousClock.now
        let errors = syncManifestFileLocked(file, contents: contents)
        recordPolicyChange(success: errors.isEmpty, source: "manifests", since: start)
        return errors
    }

    private func syncManifestFileLocked(_ file: String, contents: String?) -> [String] {
        locked {
            var resources: [Resource] = []
            if let contents {
                let set = ManifestDecoder.decode(yaml: contents, file: file)
                if !set.errors.isEmpty {
                    for e in set.errors { logger.error("\(e)") }
                    return set.errors.map(\.description)
                }
                resources = set.resources
            }
            let old = manifestResources[file] ?? []
            manifestResources[file] = resources.isEmpty ? nil : resources
            let newRefs = Set(resources.map(\.ref))
            for r in old where !newRefs.contains(r.ref) && policySource[r.ref] == file {
                engine.removePolicy(r.ref); policySource[r.ref] = nil
            }
            for r in resources { apply(r, source: file) }
            // Namespace or Pod labels may have changed: endpoints of those namespaces, and of those pods, get
            // their identity again.
            let namespaces = Set((old + resources).compactMap { r -> String? in
                if case .namespace(let n) = r.body { return n.meta.name } else { return nil }
            })
            let pods = Set((old + resources).compactMap { r -> String? in
                if case .pod(let p) = r.body { return "\(p.meta.namespace ?? "default")/\(p.meta.name)" } else { return nil }
            })
            let affected = records.values.filter { namespaces.contains($0.namespace) || pods.contains("\($0.namespace)/\($0.name)") }
            for r in affected { register(r) }
            do {
                try program()
                for r in affected {
                    try datapath.installEndpoint(ifindex: r.plumbing.hostIfindex, id: r.id, identity: identities[r.id]!.id,
                                                 audit: config.settings.auditMode)
                }
            } catch {
                logger.error("programming the datapath after \(file): \(error)")
                return ["\(error)"]
            }
            return []
        }
    }

    // MARK: Inspection

    public func listIdentities() -> [IdentityJSON] {
        locked { engine.selectorCache.allIdentities.map { IdentityJSON(id: $0.id, labels: $0.labels.labels.map(\.description)) } }
    }

    /// An endpoint's policy map as the kernel holds it.
    public func bpfPolicy(_ selector: String) throws -> [BPFPolicyEntryJSON] {
        try locked {
            let id = try resolve(selector)
            return try datapath.readPolicy(endpoint: id).map { key, value in
                let labels = key.identity == 0 ? ["reserved:unknown"]
                    : (engine.identity(key.identity)?.labels.labels.map(\.description) ?? ["identity \(key.identity)"])
                let proxy = UInt16(value[0]) << 8 | UInt16(value[1])
                return BPFPolicyEntryJSON(policy: value[2] & 1 == 1 ? "Deny" : "Allow", direction: key.direction.description,
                                          identity: key.identity, labels: labels, port: key.l4.description, proxyPort: proxy,
                                          authType: value[3] == 0 ? "disabled" : "required",
                                          key: key.encoded.map { String(format: "%02x", $0) }.joined(),
                                          value: value.map { String(format: "%02x", $0) }.joined())
            }
        }
    }

    public func status() -> StatusJSON {
        locked {
            var pressure = [StatusJSON.MapPressure(map: "ipcache", entries: ipcacheEntries.count, capacity: 65536)]
            for id in records.keys.sorted() {
                pressure.append(.init(map: "policy_\(id)", entries: engine.mapState(id)?.count ?? 0, capacity: BPFDatapath.policyMapCapacity))
            }
            var dropped: [String: UInt64] = [:]
            var forwarded: UInt64 = 0
            for dir in TrafficDirection.allCases {
                forwarded += datapath.forwardCount(direction: dir)
                for reason in DropReason.allCases { dropped[reason.name, default: 0] += datapath.dropCount(reason, direction: dir) }
            }
            let components = [
                StatusJSON.Component(name: "Datapath", state: "Ok", message: "tc programs on \(records.count) endpoint(s), maps pinned at \(config.bpfRoot)"),
                StatusJSON.Component(name: "Policy", state: overflowed.isEmpty ? "Ok" : "Degraded",
                                     message: overflowed.isEmpty ? "revision \(engine.revision)" : "policy maps overflowed for endpoints \(overflowed.sorted()): traffic dropped"),
                StatusJSON.Component(name: "Manifests", state: "Ok", message: config.manifestsDirectory.map { "watching \($0)" } ?? "disabled"),
            ]
            return StatusJSON(node: config.nodeName, components: components, endpoints: records.count,
                              identities: engine.selectorCache.identityCount, policies: engine.policies.count,
                              policyRevision: engine.revision, mapPressure: pressure, overflowedEndpoints: overflowed.sorted(),
                              forwarded: forwarded, dropped: dropped)
        }
    }
}
