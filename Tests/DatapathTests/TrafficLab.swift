import Cluster
import Foundation
import Policy
import PolicyAPI
import Testing
@testable import Datapath

// A small cluster on one host for tests that send real packets: every pod is a network namespace behind a
// veth with Membrane's tc programs attached; "outside" addresses live in one extra namespace that is not a
// Membrane endpoint (the world, or a remote node); the host is the root namespace. The datapath is
// programmed from the same manifests that `PolicyTracer` (`membrane policy trace`) reads, so a test can
// compare what the kernel does with what the engine says.

/// One workload of a traffic lab.
struct LabPod: Sendable {
    var namespace: String
    var name: String
    var labels: [String: String]
    var ip: String
    var ref: String { "\(namespace)/\(name)" }
}

/// One side of a probe: a pod (`namespace/name`), the host (its own address, from the root namespace), or an
/// address of the outside namespace.
enum LabPeer: Hashable, Sendable, CustomStringConvertible {
    case pod(String)
    case host
    case outside(String)

    var description: String {
        switch self {
        case .pod(let ref): ref
        case .host: "host"
        case .outside(let ip): ip
        }
    }
}

enum LabProto: String, Sendable, CaseIterable { case tcp = "TCP", udp = "UDP", icmp = "ICMP" }

/// A connection attempt: TCP connect, UDP echo, or ICMP echo (port 0).
struct Probe: Hashable, Sendable, CustomStringConvertible {
    var from: LabPeer
    var to: LabPeer
    var proto: LabProto
    var port: UInt16

    init(_ from: LabPeer, _ to: LabPeer, _ proto: LabProto, _ port: UInt16 = 0) {
        self.from = from; self.to = to; self.proto = proto; self.port = proto == .icmp ? 0 : port
    }

    var description: String { "\(from) → \(to) \(proto.rawValue)\(proto == .icmp ? " echo" : "/\(port)")" }
}

/// What a probe saw: "open" (connected / echoed), "timeout" (dropped), "refused", or "error:…".
typealias ProbeOutcome = String

final class TrafficLab: @unchecked Sendable {
    static let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
    static let pid = getpid()

    let tag: String
    let bpfRoot: String
    let pods: [LabPod]
    let namespaceLabels: [String: [String: String]]
    let outsideAddresses: [String]
    let outsideSubnet: String
    let outsideNetns: String
    let outsideLink: String
    let firstID: UInt16
    let tcpPorts: [UInt16], udpPorts: [UInt16]
    let hostTCPPorts: [UInt16], hostUDPPorts: [UInt16]
    private(set) var hostIP = ""
    private(set) var plumbing: [String: EndpointPlumbing] = [:]
    private(set) var plumbingID: [String: UInt16] = [:]
    private(set) var datapath: BPFDatapath!
    private var installedIdentity: [String: NumericIdentity] = [:]
    private var servers: [Process] = []
    private var outsideCreated = false
    private var object: URL
    private var icmpID: UInt16
    private let lock = NSLock()

    /// The model built from the last `apply`, and the YAML it was built from.
    private(set) var cluster: ClusterModel!
    private(set) var manifests = ""
    private(set) var policyYAML = ""

    /// Builds the lab: endpoints `firstID...`, the outside namespace, servers everywhere, the datapath under
    /// `/sys/fs/bpf/membrane-<tag>test-<pid>`. On failure everything created so far is removed again.
    init(tag: String, pods: [LabPod], namespaceLabels: [String: [String: String]] = [:], outsideAddresses: [String],
         outsideSubnet: String, firstID: UInt16, tcpPorts: [UInt16], udpPorts: [UInt16],
         hostTCPPorts: [UInt16] = [], hostUDPPorts: [UInt16] = []) throws {
        self.tag = tag
        self.pods = pods
        self.namespaceLabels = namespaceLabels
        self.outsideAddresses = outsideAddresses
        self.outsideSubnet = outsideSubnet
        self.firstID = firstID
        self.tcpPorts = tcpPorts; self.udpPorts = udpPorts
        self.hostTCPPorts = hostTCPPorts; self.hostUDPPorts = hostUDPPorts
        bpfRoot = "/sys/fs/bpf/membrane-\(tag)test-\(Self.pid)"
        outsideNetns = "mbst-\(tag)-\(Self.pid)"
        outsideLink = "mst\(tag.prefix(1))\(Self.pid)"
        object = FileManager.default.temporaryDirectory.appendingPathComponent("membrane-\(tag)test-\(Self.pid).o")
        icmpID = UInt16(truncatingIfNeeded: Int(Self.pid) &* 7919 &+ tag.utf8.reduce(0) { Int($0) &+ Int($1) })
        removeStale()
        do {
            try build()
        } catch {
            tearDown()
            throw error
        }
    }

    private func build() throws {
        try Plumbing.prepareHost()
        try BPFDatapath.compile(source: EnforcementTests.repo.appendingPathComponent("bpf/membrane.c"), output: object)
        datapath = try BPFDatapath(objectFile: object, root: bpfRoot)
        for (i, pod) in pods.enumerated() {
            let id = firstID + UInt16(i)
            let p = try Plumbing.createEndpoint(id: id, name: pod.ref, ipv4: pod.ip)
            plumbing[pod.ref] = p
            plumbingID[pod.ref] = id
            try disableIPv6(p.netns)
        }
        try createOutside()
        try disableIPv6(outsideNetns)
        hostIP = try Self.sourceAddress(toward: pods[0].ip)
        // Until the first apply, endpoints have empty policy maps: everything is dropped.
        for pod in pods {
            let p = plumbing[pod.ref]!
            try datapath.installEndpoint(ifindex: p.hostIfindex, id: plumbingID[pod.ref]!, identity: 0, audit: false)
        }
        for pod in pods {
            servers.append(try startServer(netns: plumbing[pod.ref]!.netns, tcpBind: pod.ip, udpBinds: [pod.ip], tcp: tcpPorts, udp: udpPorts))
        }
        // UDP answers from the address it was asked on only when bound to it (the namespace has several).
        servers.append(try startServer(netns: outsideNetns, tcpBind: "0.0.0.0", udpBinds: outsideAddresses, tcp: tcpPorts, udp: udpPorts))
        if !hostTCPPorts.isEmpty || !hostUDPPorts.isEmpty {
            servers.append(try startServer(netns: nil, tcpBind: hostIP, udpBinds: [hostIP], tcp: hostTCPPorts, udp: hostUDPPorts))
        }
    }

    // MARK: The outside namespace

    private func ip(_ args: [String]) throws {
        let r = try PlumbingRunner.run("ip", args, timeout: 30)
        guard r.status == 0 else {
            throw PlumbingError.command("ip " + args.joined(separator: " "), status: r.status, stderr: r.stderr)
        }
    }

    /// A namespace holding every outside address on one interface, routed from the host through a veth:
    /// not an endpoint, so the ipcache sees its addresses as world, CIDR identities or nodes.
    private func createOutside() throws {
        let peer = "msp\(tag.prefix(1))\(Self.pid)"
        try ip(["netns", "add", outsideNetns])
        outsideCreated = true
        try ip(["link", "add", outsideLink, "type", "veth", "peer", "name", peer])
        try ip(["link", "set", "dev", peer, "netns", outsideNetns])
        try ip(["-n", outsideNetns, "link", "set", "dev", peer, "name", "eth0"])
        try ip(["link", "set", "dev", outsideLink, "up"])
        try ip(["-n", outsideNetns, "link", "set", "dev", "lo", "up"])
        for a in outsideAddresses { try ip(["-n", outsideNetns, "addr", "add", "\(a)/32", "dev", "eth0"]) }
        try ip(["-n", outsideNetns, "link", "set", "dev", "eth0", "up"])
        let mac = try Plumbing.linkInfo(outsideLink, netns: nil).mac
        try ip(["-n", outsideNetns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"])
        try ip(["-n", outsideNetns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0", "onlink"])
        try ip(["-n", outsideNetns, "neigh", "replace", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent"])
        try ip(["route", "add", outsideSubnet, "dev", outsideLink, "scope", "link"])
    }

    /// The lab speaks IPv4 only: without IPv6 the namespaces send no router solicitations or MLD reports,
    /// which the datapath would count as drops (to world) and blur the drop-reason checks.
    private func disableIPv6(_ netns: String) throws {
        let r = try PlumbingRunner.run("ip", ["netns", "exec", netns, PlumbingRunner.locate("sysctl") ?? "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                                              "net.ipv6.conf.default.disable_ipv6=1"], timeout: 30)
        guard r.status == 0 else { throw PlumbingError.command("sysctl disable_ipv6 in \(netns)", status: r.status, stderr: r.stderr) }
    }

    /// The address the host uses toward `ip` (the source of host → pod traffic).
    static func sourceAddress(toward ip: String) throws -> String {
        let out = try PlumbingRunner.check("ip", ["-o", "-4", "route", "get", ip])
        let tokens = out.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\\" }).map(String.init)
        guard let i = tokens.firstIndex(of: "src"), i + 1 < tokens.count else {
            throw PlumbingError.invalid("no source address toward \(ip): \(out)")
        }
        return tokens[i + 1]
    }

    /// Leftovers of an interrupted earlier run: endpoints with our IDs, outside namespaces and links of dead
    /// processes with our tag.
    private func removeStale() {
        for (i, pod) in pods.enumerated() {
            let id = firstID + UInt16(i)
            try? Plumbing.deleteEndpoint(EndpointPlumbing(name: "stale", netns: "mb-ep-\(id)", hostInterface: "mbh\(id)",
                                                          hostIfindex: 0, containerInterface: "eth0", ipv4: pod.ip, mac: ""))
        }
        func deadOwner(_ name: String, prefix: String) -> Bool {
            guard name.hasPrefix(prefix), let owner = Int32(name.dropFirst(prefix.count)) else { return false }
            return owner != Self.pid && kill(owner, 0) != 0
        }
        for ns in Plumbing.netnsNames() where deadOwner(ns, prefix: "mbst-\(tag)-") {
            _ = try? PlumbingRunner.run("ip", ["netns", "del", ns], timeout: 30)
        }
        for link in Plumbing.linkNames() where deadOwner(link, prefix: "mst\(tag.prefix(1))") || deadOwner(link, prefix: "msp\(tag.prefix(1))") {
            _ = try? PlumbingRunner.run("ip", ["link", "del", "dev", link], timeout: 30)
        }
        if let stale = try? PlumbingRunner.run("ip", ["-4", "route", "show", "exact", outsideSubnet]), !stale.stdout.isEmpty {
            _ = try? PlumbingRunner.run("ip", ["route", "del", outsideSubnet], timeout: 30)
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/bpf")) ?? []
        where deadOwner(name, prefix: "membrane-\(tag)test-") {
            BPFDatapath.unpinAll(root: "/sys/fs/bpf/" + name)
        }
        let tmp = FileManager.default.temporaryDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] where name.hasSuffix(".o")
        && deadOwner(String(name.dropLast(2)), prefix: "membrane-\(tag)test-") {
            try? FileManager.default.removeItem(at: tmp.appendingPathComponent(name))
        }
    }

    /// Removes every namespace, link, route, pinned map and process the lab created. Safe to call twice.
    func tearDown() {
        // SIGKILL: children spawned from a test thread may inherit a mask that blocks SIGTERM.
        for s in servers where s.isRunning { kill(s.processIdentifier, SIGKILL) }
        for s in servers { s.waitUntilExit() }
        servers = []
        for (ref, p) in plumbing {
            try? datapath?.removeEndpoint(ifindex: p.hostIfindex, id: plumbingID[ref]!)
            do { try Plumbing.deleteEndpoint(p) } catch { Issue.record("cleanup of \(ref): \(error)") }
        }
        plumbing = [:]
        _ = try? PlumbingRunner.run("ip", ["link", "del", "dev", outsideLink], timeout: 30)
        if outsideCreated { _ = try? PlumbingRunner.run("ip", ["netns", "del", outsideNetns], timeout: 30) }
        outsideCreated = false
        datapath = nil
        BPFDatapath.unpinAll(root: bpfRoot)
        try? FileManager.default.removeItem(at: object)
    }

    // MARK: Manifests and programming

    static func flow(_ labels: [String: String]) -> String {
        "{" + labels.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ") + "}"
    }

    /// Namespaces, the local Node (the host's address), and the pods, as Kubernetes YAML.
    var clusterYAML: String {
        var docs: [String] = []
        let names = Set(pods.map(\.namespace)).union(namespaceLabels.keys).sorted()
        for ns in names {
            var labels = namespaceLabels[ns] ?? [:]
            labels["kubernetes.io/metadata.name"] = ns
            docs.append("""
                apiVersion: v1
                kind: Namespace
                metadata: {name: \(ns), labels: \(Self.flow(labels))}
                """)
        }
        docs.append("""
            apiVersion: v1
            kind: Node
            metadata: {name: local, labels: {kubernetes.io/hostname: local}}
            status:
              addresses:
              - {type: InternalIP, address: \(hostIP)}
            """)
        for p in pods {
            docs.append("""
                apiVersion: v1
                kind: Pod
                metadata: {name: \(p.name), namespace: \(p.namespace), labels: \(Self.flow(p.labels))}
                spec:
                  nodeName: local
                  containers:
                  - {name: main, image: example/app}
                status: {podIP: \(p.ip)}
                """)
        }
        return docs.joined(separator: "\n---\n")
    }

    /// Loads the cluster, `extraCluster` (more nodes, services, endpoints) and `policies`, computes the model
    /// and programs the kernel from it: the ipcache as the local node sees it, and every pod's policy map.
    /// Returns the manifest errors (nothing is programmed when there are any).
    @discardableResult
    func apply(policies: String, extraCluster: String = "", settings: EngineSettings = EngineSettings()) throws -> [String] {
        let yaml = [clusterYAML, extraCluster, policies].filter { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }
            .joined(separator: "\n---\n")
        let set = ManifestDecoder.decode(yaml: yaml, file: "lab.yaml")
        guard set.errors.isEmpty else { return set.errors.map(\.description) }
        manifests = yaml
        policyYAML = policies
        let model = ClusterModel(manifests: set, settings: settings)
        cluster = model

        let view = IPCache(cluster: model, node: "local")
        var cache: [IPPrefix: NumericIdentity] = [:]
        for e in view.exact.values { cache[e.prefix] = e.identity }
        for e in view.prefixes { cache[e.prefix] = e.identity }
        try datapath.syncIPCache(cache)
        for pod in pods {
            guard let eid = model.endpointByPod[ResourceRef(kind: .pod, namespace: pod.namespace, name: pod.name)],
                  let info = model.endpoints[eid], let state = model.engine.mapState(eid) else {
                return ["the model has no endpoint for \(pod.ref)"]
            }
            let id = plumbingID[pod.ref]!
            if installedIdentity[pod.ref] != info.identity.id {
                try datapath.installEndpoint(ifindex: plumbing[pod.ref]!.hostIfindex, id: id, identity: info.identity.id,
                                             audit: settings.auditMode)
                installedIdentity[pod.ref] = info.identity.id
            }
            let result = try datapath.syncPolicy(endpoint: id, state: state)
            if result.overflow { return ["the policy map of \(pod.ref) overflowed"] }
        }
        return []
    }

    // MARK: Trace

    func address(_ peer: LabPeer) -> String {
        switch peer {
        case .pod(let ref): pods.first { $0.ref == ref }!.ip
        case .host: hostIP
        case .outside(let ip): ip
        }
    }

    /// What `membrane policy trace` says for the probe, on the manifests of the last `apply`.
    func trace(_ p: Probe) throws -> TraceResult {
        var tracer = PolicyTracer(cluster: cluster)
        let name: (LabPeer) -> String = { peer in if case .pod(let ref) = peer { ref } else { self.address(peer) } }
        return try tracer.trace(TraceRequest(from: name(p.from), to: name(p.to), port: p.proto == .icmp ? nil : p.port,
                                             proto: p.proto.rawValue, icmpType: p.proto == .icmp ? 8 : nil))
    }

    /// Whether a trace result means the packets pass the kernel today: forwarded, and not redirected to an L7
    /// proxy (there is none yet; the datapath drops redirected traffic — fail closed).
    static func passesKernel(_ r: TraceResult) -> Bool {
        r.verdict != "DROPPED" && r.egress.entry?.decision != "redirect" && r.ingress.entry?.decision != "redirect"
    }

    static func summary(_ r: TraceResult) -> String {
        "trace \(r.verdict)\(r.dropReason.map { " (\($0))" } ?? ""): egress \(r.egress.verdict) [\(r.egress.explanation)]"
            + " ingress \(r.ingress.verdict) [\(r.ingress.explanation)]" + (r.l7.map { " l7 \($0.verdict)" } ?? "")
    }

    // MARK: Traffic

    /// Long-lived servers on every port: TCP accepts and closes, UDP echoes. They stop by themselves after
    /// ten minutes should the test process die.
    private func startServer(netns: String?, tcpBind: String, udpBinds: [String], tcp: [UInt16], udp: [UInt16]) throws -> Process {
        let script = """
            import signal,socket,selectors,sys,time
            signal.pthread_sigmask(signal.SIG_UNBLOCK,signal.valid_signals())
            sel=selectors.DefaultSelector()
            try:
                for p in [\(tcp.map(String.init).joined(separator: ","))]:
                    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("\(tcpBind)",p)); s.listen(512); s.setblocking(False); sel.register(s,selectors.EVENT_READ,"t")
                for a in [\(udpBinds.map { "\"\($0)\"" }.joined(separator: ","))]:
                    for p in [\(udp.map(String.init).joined(separator: ","))]:
                        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((a,p)); s.setblocking(False); sel.register(s,selectors.EVENT_READ,"u")
            except Exception as e:
                print("error",e,flush=True); sys.exit(1)
            print("ready",flush=True)
            end=time.time()+600
            while time.time()<end:
                for k,_ in sel.select(1):
                    try:
                        if k.data=="t":
                            c,_=k.fileobj.accept(); c.close()
                        else:
                            d,a=k.fileobj.recvfrom(512); k.fileobj.sendto(d,a)
                    except OSError: pass
            """
        let p = Process()
        if let netns {
            p.executableURL = URL(fileURLWithPath: PlumbingRunner.locate("ip") ?? "/usr/sbin/ip")
            p.arguments = ["netns", "exec", netns, Self.python, "-c", script]
        } else {
            p.executableURL = URL(fileURLWithPath: Self.python)
            p.arguments = ["-c", script]
        }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let line = Self.firstLine(out.fileHandleForReading, timeout: 30)
        guard line == "ready" else {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw PlumbingError.invalid("server in \(netns ?? "the host") on \(tcpBind) did not start: \(line ?? "no answer")")
        }
        return p
    }

    private static func firstLine(_ handle: FileHandle, timeout: Double) -> String? {
        final class Box: @unchecked Sendable { var line: String? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread {
            var data = Data()
            while !data.contains(UInt8(ascii: "\n")), let chunk = try? handle.read(upToCount: 1), !chunk.isEmpty { data.append(chunk) }
            box.line = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            done.signal()
        }.start()
        return done.wait(timeout: .now() + timeout) == .timedOut ? nil : box.line
    }

    /// Runs every probe at once (one prober process per source, all sources in parallel) and waits at most
    /// `timeout` seconds for answers.
    func run(_ probes: [Probe], timeout: Double) -> [Probe: ProbeOutcome] {
        let bySource = Dictionary(grouping: Array(Set(probes)), by: \.from)
        var jobs: [(netns: String?, probes: [Probe], json: String)] = []
        for (source, list) in bySource {
            var entries: [String] = []
            for (i, p) in list.enumerated() {
                lock.lock(); icmpID = icmpID == UInt16.max ? 1 : icmpID + 1; let ident = icmpID; lock.unlock()
                let src: String
                if case .outside(let a) = source { src = "\"\(a)\"" } else { src = "null" }
                entries.append("{\"id\":\(i),\"dst\":\"\(address(p.to))\",\"proto\":\"\(p.proto.rawValue.lowercased())\",\"port\":\(p.port),\"src\":\(src),\"icmp\":\(ident)}")
            }
            let netns: String? = switch source {
            case .pod(let ref): plumbing[ref]!.netns
            case .outside: outsideNetns
            case .host: nil
            }
            jobs.append((netns, list, "{\"timeout\":\(timeout),\"probes\":[\(entries.joined(separator: ","))]}"))
        }
        let results = LockedResults()
        let group = DispatchGroup()
        // One thread per prober: they block for up to `timeout`, so a pool sized to the cores would serialize them.
        for job in jobs {
            group.enter()
            Thread {
                defer { group.leave() }
                Self.runProber(job, timeout: timeout, into: results)
            }.start()
        }
        group.wait()
        return results.all
    }

    private static func runProber(_ job: (netns: String?, probes: [Probe], json: String), timeout: Double, into results: LockedResults) {
        let argv = [Self.python, "-c", Self.prober]
        let outcome: PlumbingRunOutcome?
        if let ns = job.netns {
            outcome = try? PlumbingRunner.run("ip", ["netns", "exec", ns] + argv, timeout: timeout + 30, stdin: job.json)
        } else {
            outcome = try? PlumbingRunner.run(Self.python, Array(argv.dropFirst()), timeout: timeout + 30, stdin: job.json)
        }
        let parsed = outcome.flatMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) as? [String: String] } ?? [:]
        for (i, p) in job.probes.enumerated() {
            results.set(p, parsed[String(i)] ?? "error:prober failed: \(outcome?.stderr ?? "not started")")
        }
    }

    /// Runs the probes; those expected to connect that did not are tried once more, alone in a slower batch,
    /// so that a loaded machine does not pass for a drop. A connection that should not exist is never retried.
    func observe(_ probes: [Probe], expected: [Probe: Bool], timeout: Double = 1.0) -> [Probe: ProbeOutcome] {
        var outcomes = run(probes, timeout: timeout)
        let again = probes.filter { expected[$0] == true && outcomes[$0] != "open" }
        if !again.isEmpty {
            for (p, o) in run(again, timeout: timeout * 4) { outcomes[p] = o }
        }
        return outcomes
    }

    /// Sums of the datapath's drop counters, to tell an explicit deny from a default deny from a fail-closed
    /// L7 redirect.
    func drops(_ reason: DropReason, _ direction: TrafficDirection) -> UInt64 {
        datapath.dropCount(reason, direction: direction)
    }

    /// Reads a JSON list of probes on stdin, runs them concurrently, prints {"index": outcome}.
    static let prober = #"""
        import sys,json,socket,selectors,time,struct,errno
        req=json.load(sys.stdin); T=req["timeout"]
        sel=selectors.DefaultSelector(); res={}; raws={}; icmp={}
        def csum(b):
            s=sum(struct.unpack("!%dH"%(len(b)//2),b)); s=(s>>16)+(s&0xffff); s+=s>>16; return (~s)&0xffff
        for p in req["probes"]:
            i=str(p["id"]); res[i]="timeout"; src=p["src"]
            try:
                if p["proto"]=="tcp":
                    s=socket.socket(); s.setblocking(False)
                    if src: s.bind((src,0))
                    e=s.connect_ex((p["dst"],p["port"]))
                    if e not in (0,errno.EINPROGRESS): res[i]="error:%s"%errno.errorcode.get(e,e); s.close(); continue
                    sel.register(s,selectors.EVENT_WRITE,("tcp",i))
                elif p["proto"]=="udp":
                    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setblocking(False)
                    if src: s.bind((src,0))
                    s.connect((p["dst"],p["port"])); s.send(("p"+i).encode())
                    sel.register(s,selectors.EVENT_READ,("udp",i))
                else:
                    k=src or ""
                    if k not in raws:
                        r=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP); r.setblocking(False)
                        if src: r.bind((src,0))
                        raws[k]=r; sel.register(r,selectors.EVENT_READ,("icmp",None))
                    ident=p["icmp"]; body=b"membrane"
                    c=csum(struct.pack("!BBHHH",8,0,0,ident,1)+body)
                    raws[k].sendto(struct.pack("!BBHHH",8,0,c,ident,1)+body,(p["dst"],0)); icmp[(p["dst"],ident)]=i
            except Exception as ex:
                res[i]="error:"+type(ex).__name__+":"+str(ex)
        end=time.time()+T
        while any(v=="timeout" for v in res.values()) and time.time()<end:
            for key,_ in sel.select(max(0.01,end-time.time())):
                kind,i=key.data; s=key.fileobj
                if kind=="tcp":
                    e=s.getsockopt(socket.SOL_SOCKET,socket.SO_ERROR)
                    res[i]="open" if e==0 else ("refused" if e==errno.ECONNREFUSED else "error:%s"%errno.errorcode.get(e,e))
                    sel.unregister(s); s.close()
                elif kind=="udp":
                    try:
                        d=s.recv(100); res[i]="open" if d==("p"+i).encode() else "garbled"
                    except ConnectionRefusedError: res[i]="refused"
                    except OSError as ex: res[i]="error:%s"%errno.errorcode.get(ex.errno,ex.errno)
                    sel.unregister(s); s.close()
                else:
                    while True:
                        try: d,a=s.recvfrom(4096)
                        except (BlockingIOError,InterruptedError): break
                        h=(d[0]&15)*4
                        if len(d)>=h+8 and d[h]==0:
                            j=icmp.pop((a[0],struct.unpack("!H",d[h+4:h+6])[0]),None)
                            if j is not None: res[j]="open"
        print(json.dumps(res))
        """#
}

final class LockedResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Probe: ProbeOutcome] = [:]
    func set(_ p: Probe, _ o: ProbeOutcome) { lock.lock(); values[p] = o; lock.unlock() }
    var all: [Probe: ProbeOutcome] { lock.lock(); defer { lock.unlock() }; return values }
}
