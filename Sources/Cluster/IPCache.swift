import PolicyAPI
import Policy

/// IP → identity, as one node sees it (the ipcache of the deep dive).
///
/// Endpoints map to their identity; node addresses to `host` on their own node and `remote-node`
/// elsewhere (the kube-apiserver's addresses to identity 7, or to the host that runs it); addresses that
/// DNS taught us map to their FQDN identity; other addresses to the CIDR identity of the longest prefix
/// that policies name, and failing that to `world`.
public struct IPCache: Sendable {
    public struct Entry: Hashable, Sendable {
        public var prefix: IPPrefix
        public var identity: NumericIdentity
        /// What put the entry there: `endpoint`, `host`, `remote-node`, `kube-apiserver`, `fqdn`, `cidr`.
        public var source: String
    }

    public private(set) var exact: [IPAddress: Entry] = [:]
    public private(set) var prefixes: [Entry] = []

    public init(cluster: ClusterModel, node: String, learned: [IPAddress: NumericIdentity] = [:]) {
        for e in cluster.endpoints.values where !e.isHost {
            for ip in e.addresses { exact[ip] = Entry(prefix: IPPrefix(address: ip, length: ip.bitWidth), identity: e.identity.id, source: "endpoint") }
        }
        let api = cluster.apiServerAddresses
        for (name, n) in cluster.nodes {
            for ip in n.addresses {
                let isLocal = name == node
                let id: NumericIdentity
                if isLocal { id = ReservedIdentity.host.rawValue }
                else if api.contains(ip) { id = ReservedIdentity.kubeAPIServer.rawValue }
                else { id = ReservedIdentity.remoteNode.rawValue }
                exact[ip] = Entry(prefix: IPPrefix(address: ip, length: ip.bitWidth), identity: id,
                                  source: isLocal ? "host" : (api.contains(ip) ? "kube-apiserver" : "remote-node"))
            }
        }
        for ip in api where exact[ip] == nil {
            guard let id = cluster.externalAPIServerIdentity else { continue }
            exact[ip] = Entry(prefix: IPPrefix(address: ip, length: ip.bitWidth), identity: id, source: "kube-apiserver")
        }
        for (ip, id) in learned where exact[ip] == nil {
            exact[ip] = Entry(prefix: IPPrefix(address: ip, length: ip.bitWidth), identity: id, source: "fqdn")
        }
        prefixes = cluster.engine.cidrIdentities.map { Entry(prefix: $0.key, identity: $0.value, source: "cidr") }
            .sorted { $0.prefix.length > $1.prefix.length }
        worldV4 = cluster.engine.worldIdentity(ipv4: true)
        worldV6 = cluster.engine.worldIdentity(ipv4: false)
    }

    private var worldV4: NumericIdentity = 2
    private var worldV6: NumericIdentity = 2

    /// Longest-prefix match.
    public func lookup(_ ip: IPAddress) -> Entry {
        if let e = exact[ip] { return e }
        for e in prefixes where e.prefix.contains(ip) { return e }
        return Entry(prefix: IPPrefix(address: ip, length: 0), identity: ip.isIPv4 ? worldV4 : worldV6, source: "world")
    }
}
