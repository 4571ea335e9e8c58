// membrane-bench datapath: the kernel datapath's cost and its policy-change latency, on this host.
//
//   membrane-bench datapath [--rounds N] [--tput-seconds S] [--rr-seconds S] [--crr-seconds S]
//                           [--fleet N] [--changes N] [--no-fleet] [--no-profile] [--no-drain] [--json-only]
//
// Needs root, bpffs, clang (the Swift toolchain's does) and, from Debian:
//   apt-get install -y iperf3 sockperf wrk nginx-light iptables iproute2 python3   (nginx works as well as nginx-light)
// The benchmark checks for them and stops with a message naming the missing packages; it installs nothing.
// scripts/bench.sh installs them and runs it.
//
// Two endpoints (network namespaces behind veths, Sources/Datapath/Plumbing): client 10.201.0.1 and server
// 10.201.0.2. Every address used is in 10.201.0.0/16 and lives only in namespaces this run creates; the 10,000
// ipcache entries of (c) are 10.201.128.0/17 map entries that no packet is ever sent to.
//
// Measured between them, SIDE BY SIDE in one run, in rounds that interleave the configurations (the order
// rotates every round) so that the drift of this noisy 2-core machine hits all of them alike:
//   tput  TCP throughput, one iperf3 stream (Gbit/s)
//   rr    request/response rate, `sockperf ping-pong --tcp`: one message outstanding on one connection,
//         i.e. netperf TCP_RR (netperf is not packaged in Debian). A C tool, so that the per-transaction cost
//         is the kernel's and not an interpreter's (a Python ping-pong loop would dilute the datapath cost).
//   crr   new-connection rate, `wrk -t1 -c1 -H 'Connection: close'` against nginx in the server namespace:
//         connect, one request, one response, close, one at a time, i.e. netperf TCP_CRR. Membrane's conntrack map
//         is emptied (untimed) before each CRR sample of (b) and (c): it never removes a flow, and the client's
//         ports cycle through ~27k 4-tuples, so without that most "new" connections would hit stale entries.
// under four configurations:
//   (a) no Membrane programs attached (clsact removed),
//   (b) Membrane on both endpoints, an L3/L4 policy of 10 entries per direction that allows the traffic,
//   (c) (b) plus a policy that gives the server's policy map 10,000 more entries (10,000 peer identities,
//       generated through the engine) and 10,000 more ipcache entries,
//   (d) no Membrane, the policy of (b) as iptables rules in FORWARD with conntrack (removed afterwards).
// Then a profile of (a), (b) and (c) (kernel BPF run-time statistics, machine CPU per transaction, ring-buffer
// events per connection), and the policy-change latency with 100 endpoints: a policy selecting all of them changes
// its port 50 times (engine upsertPolicy, then syncPolicy of the affected endpoints); the time runs until
// the kernel's LPM lookup in every endpoint's map returns the new entry and no longer the old one. Samples
// are checked by traffic (the new port is delivered, the old one dropped).
//
// A ring-buffer reader drains the datapath's events during the whole run, as the agent would.
// Everything created is removed at the end, on error, and on SIGINT/SIGTERM.

import CLibbpf
import Datapath
import Foundation
import Policy
import PolicyAPI

// MARK: - Options

struct DatapathBenchOptions {
    var rounds = 4
    var tputSeconds = 4
    var rrSeconds = 3
    var crrSeconds = 3
    var fleet = 100
    var changes = 50
    var runFleet = true
    var profile = true
    var drain = true
    var jsonOnly = false
}

func datapathUsage() -> Never {
    print("""
        usage: membrane-bench datapath [--rounds N] [--tput-seconds S] [--rr-seconds S] [--crr-seconds S]
                                       [--fleet N] [--changes N] [--no-fleet] [--no-profile] [--no-drain] [--json-only]
        needs root and: apt-get install -y iperf3 sockperf wrk nginx-light iptables iproute2 python3
        (scripts/bench.sh installs them and runs the benchmark)
        """)
    exit(2)
}

// MARK: - Small helpers

private let dpClock = ContinuousClock()

private func msSince(_ t: ContinuousClock.Instant) -> Double {
    let c = (dpClock.now - t).components
    return Double(c.seconds) * 1e3 + Double(c.attoseconds) * 1e-15
}

private func dpLocate(_ tool: String) -> String? {
    var dirs = ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"]
    if let path = ProcessInfo.processInfo.environment["PATH"] { dirs += path.split(separator: ":").map(String.init) }
    for d in dirs where !d.isEmpty && FileManager.default.isExecutableFile(atPath: d + "/" + tool) { return d + "/" + tool }
    return nil
}

/// Runs a host command; stdout and stderr together. Never throws.
@discardableResult
private func dpRun(_ tool: String, _ args: [String], stdin: String? = nil) -> (status: Int32, out: String) {
    guard let exe = dpLocate(tool) else { return (-1, "\(tool): not found") }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    let input = Pipe()
    p.standardInput = stdin == nil ? FileHandle.nullDevice : input
    do { try p.run() } catch { return (-1, "\(error)") }
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try? input.fileHandleForWriting.close()
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

private func median(_ xs: [Double]) -> Double {
    let s = xs.filter { $0.isFinite }.sorted()
    guard !s.isEmpty else { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

private func firstMatch(_ pattern: String, in text: String) -> [String]? {
    guard let re = try? NSRegularExpression(pattern: pattern),
          let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return nil }
    return (1..<m.numberOfRanges).map { i in Range(m.range(at: i), in: text).map { String(text[$0]) } ?? "" }
}

private func num(_ d: Double) -> JSON { d.isFinite ? .num(d) : .null }

/// CPU time of the whole machine (busy jiffies) and of this process (seconds).
private func machineBusyJiffies() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
          let line = s.split(separator: "\n").first else { return .nan }
    let v = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard v.count >= 5 else { return .nan }
    return v.reduce(0, +) - v[3] - v[4]   // minus idle and iowait
}

private func selfCPUSeconds() -> Double {
    var u = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}

// MARK: - Cleanup (normal exit, error, SIGINT/SIGTERM)

final class DatapathCleanup: @unchecked Sendable {
    private let lock = NSLock()
    private var children: [Process] = []
    private var endpoints: [EndpointPlumbing] = []
    private var iptables: (() -> Void)?
    private var bpfRoot: String?
    private var tmpDir: String?
    private var done = false
    private var signalSources: [DispatchSourceSignal] = []

    func add(_ p: Process) { lock.lock(); children.append(p); lock.unlock() }
    var stopping: Bool { lock.lock(); defer { lock.unlock() }; return done }

    /// `Plumbing.exec`, unless a cleanup has started: then the calling thread waits for the exit (the signal
    /// handler's), so that the benchmark starts nothing in namespaces that are being deleted.
    func exec(_ e: EndpointPlumbing, _ argv: [String], timeout: Double = 10) throws -> (status: Int32, stdout: String, stderr: String) {
        while stopping { sleep(1) }
        return try Plumbing.exec(e, argv, timeout: timeout)
    }
    func add(_ e: EndpointPlumbing) { lock.lock(); endpoints.append(e); lock.unlock() }

    /// `Plumbing.createEndpoint`, registered for cleanup; one that completes during a cleanup is removed at once.
    func createEndpoint(id: UInt16, name: String, ipv4: String) throws -> EndpointPlumbing {
        while stopping { sleep(1) }
        let e = try Plumbing.createEndpoint(id: id, name: name, ipv4: ipv4)
        lock.lock()
        let late = done
        if !late { endpoints.append(e) }
        lock.unlock()
        if late { try? Plumbing.deleteEndpoint(e); while true { sleep(1) } }
        return e
    }
    func forget(_ e: EndpointPlumbing) { lock.lock(); endpoints.removeAll { $0.netns == e.netns }; lock.unlock() }
    func setIptables(_ undo: (() -> Void)?) { lock.lock(); iptables = undo; lock.unlock() }
    func setRoot(_ r: String) { lock.lock(); bpfRoot = r; lock.unlock() }
    func setTmp(_ t: String) { lock.lock(); tmpDir = t; lock.unlock() }

    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { [self] in
                FileHandle.standardError.write(Data("\nmembrane-bench datapath: signal \(sig), cleaning up…\n".utf8))
                run()
                exit(130)
            }
            src.resume()
            signalSources.append(src)
        }
    }

    /// Idempotent; every step best effort.
    func run() {
        lock.lock()
        if done { lock.unlock(); return }
        done = true
        let (kids, eps, undo, root, tmp) = (children, endpoints, iptables, bpfRoot, tmpDir)
        lock.unlock()
        usleep(200_000)   // a command the benchmark was starting has entered its namespace by now
        for p in kids where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(2)
        for p in kids { while p.isRunning && Date() < deadline { usleep(20_000) } }
        for p in kids where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        // Anything still running inside our own namespaces was started by this run.
        for e in eps {
            for pid in dpRun("ip", ["netns", "pids", e.netns]).out.split(separator: "\n").compactMap({ Int32($0) }) {
                kill(pid, SIGKILL)
            }
        }
        undo?()
        for e in eps { try? Plumbing.deleteEndpoint(e) }
        if let root { BPFDatapath.unpinAll(root: root) }
        if let tmp { try? FileManager.default.removeItem(atPath: tmp) }
    }
}

let datapathCleanup = DatapathCleanup()

// MARK: - Ring buffer drain (the agent's event reader)

final class EventDrain: @unchecked Sendable {
    private let lock = NSLock()
    private var _count: UInt64 = 0
    private var stopFlag = false
    private var rb: OpaquePointer?
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    var count: UInt64 { lock.lock(); defer { lock.unlock() }; return _count }
    fileprivate func bump() { lock.lock(); _count &+= 1; lock.unlock() }
    private var stopped: Bool { lock.lock(); defer { lock.unlock() }; return stopFlag }

    init(fd: Int32) throws {
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        rb = ring_buffer__new(fd, { ctx, _, _ in
            Unmanaged<EventDrain>.fromOpaque(ctx!).takeUnretainedValue().bump()
            return 0
        }, ctx, nil)
        guard rb != nil else { throw DrainError() }
        // The datapath submits events without waking the reader (BPF_RB_NO_WAKEUP) until an eighth of the ring is
        // waiting, so epoll reports the ring only then: after a poll that timed out, drain what is there.
        let t = Thread { [self] in
            while !stopped {
                if ring_buffer__poll(rb, 100) == 0 { _ = ring_buffer__consume(rb) }
            }
            _ = ring_buffer__consume(rb)
            finished.signal()
        }
        thread = t
        t.start()
    }

    func stop() {
        lock.lock(); let was = stopFlag; stopFlag = true; lock.unlock()
        guard !was else { return }
        finished.wait()
        ring_buffer__free(rb)
        rb = nil
    }
}

struct DrainError: Error, CustomStringConvertible { var description: String { "ring_buffer__new on the events map failed" } }

/// Attaches Membrane to an endpoint's interface.
private func attach(_ dp: BPFDatapath, ifindex: Int32, id: UInt16, identity: NumericIdentity, notes: inout [String]) throws {
    try dp.installEndpoint(ifindex: ifindex, id: id, identity: identity, audit: false)
}

/// libbpf's log, less the message this benchmark provokes on purpose: "Parent Qdisc doesn't exist" from
/// querying an interface whose clsact is gone (to check that removal detached the programs).
private func quietLibbpf() {
    _ = libbpf_set_print { level, format, args in
        guard let format, let args, level != LIBBPF_DEBUG else { return 0 }
        var buf = [CChar](repeating: 0, count: 2048)
        let n = vsnprintf(&buf, buf.count, format, args)
        let text = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.contains("Parent Qdisc doesn't exist") { return 0 }
        FileHandle.standardError.write(Data(text.utf8))
        return n
    }
}

// MARK: - BPF program statistics (kernel.bpf_stats through BPF_ENABLE_STATS)

private func tcProgramID(ifindex: Int32, ingress: Bool) -> UInt32? {
    var hook = bpf_tc_hook()
    withUnsafeMutableBytes(of: &hook) { _ = memset($0.baseAddress!, 0, $0.count) }
    hook.sz = MemoryLayout<bpf_tc_hook>.size
    hook.ifindex = ifindex
    hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS
    var opts = bpf_tc_opts()
    withUnsafeMutableBytes(of: &opts) { _ = memset($0.baseAddress!, 0, $0.count) }
    opts.sz = MemoryLayout<bpf_tc_opts>.size
    opts.handle = 1
    opts.priority = 1
    return bpf_tc_query(&hook, &opts) == 0 && opts.prog_id != 0 ? opts.prog_id : nil
}

private func programRunStats(_ id: UInt32) -> (runs: UInt64, ns: UInt64) {
    let fd = bpf_prog_get_fd_by_id(id)
    guard fd >= 0 else { return (0, 0) }
    defer { close(fd) }
    var info = bpf_prog_info()
    var len = UInt32(MemoryLayout<bpf_prog_info>.size)
    guard bpf_obj_get_info_by_fd(fd, &info, &len) == 0 else { return (0, 0) }
    return (info.run_cnt, info.run_time_ns)
}

// MARK: - The benchmark

private enum DPConfig: String, CaseIterable {
    case a, b, c, d
    var title: String {
        switch self {
        case .a: "(a) no Membrane"
        case .b: "(b) Membrane, 10-entry L3/L4 policy"
        case .c: "(c) Membrane, +10k policy, +10k ipcache"
        case .d: "(d) iptables FORWARD + conntrack"
        }
    }
}

private struct Measurement {
    var tput: [Double] = []     // Gbit/s
    var rr: [Double] = []       // transactions/s
    var crr: [Double] = []      // connections/s
    var crrErrors = 0
    var eventsPerConn: [Double] = []
}

private final class DatapathBench {
    let o: DatapathBenchOptions
    let cleanup = datapathCleanup
    let tmp: String
    let root: String
    var datapath: BPFDatapath!
    var drain: EventDrain?
    var engine = PolicyEngine()
    var client: EndpointPlumbing!
    var server: EndpointPlumbing!
    let clientID: UInt16 = 51000, serverID: UInt16 = 51001
    let clientIP = "10.201.0.1", serverIP = "10.201.0.2"
    var clientIdentity: Identity!, serverIdentity: Identity!
    var stateClient = MapState(), stateServerB = MapState(), stateServerC = MapState()
    var ipcacheB: [IPPrefix: NumericIdentity] = [:], ipcacheC: [IPPrefix: NumericIdentity] = [:]
    var membraneOn = false, bigOn = false, iptablesOn = false
    var problems: [String] = []
    var figures: [(String, JSON)] = []
    var switchMs: [String: [Double]] = [:]
    var kernelCounts: [String: Int] = [:]
    var sanity: [String: String] = [:]

    static let ports: [(proto: String, port: UInt16)] = [
        ("TCP", 5201), ("TCP", 11111), ("TCP", 8080), ("TCP", 443), ("TCP", 8443),
        ("TCP", 9090), ("TCP", 6379), ("TCP", 5432), ("TCP", 3306), ("UDP", 53)]

    init(_ o: DatapathBenchOptions) {
        self.o = o
        tmp = NSTemporaryDirectory() + "membrane-bench-datapath-\(getpid())"
        root = "/sys/fs/bpf/membrane-bench-\(getpid())"
    }

    func log(_ s: String) { say(s); flush() }

    // MARK: Prerequisites and setup

    func checkPrerequisites() throws {
        guard getuid() == 0 else { throw BenchError("needs root (network namespaces, tc, BPF, iptables)") }
        // Each tool and the Debian package it comes from.
        let tools: [(tool: String, package: String)] = [
            ("ip", "iproute2"), ("tc", "iproute2"), ("ss", "iproute2"), ("iperf3", "iperf3"), ("sockperf", "sockperf"),
            ("wrk", "wrk"), ("nginx", "nginx-light"), ("iptables", "iptables"), ("iptables-restore", "iptables"), ("python3", "python3")]
        let missing = tools.filter { dpLocate($0.tool) == nil }
        if !missing.isEmpty {
            var packages: [String] = []
            for m in missing where !packages.contains(m.package) { packages.append(m.package) }
            throw BenchError("missing tools: " + missing.map { "\($0.tool) (Debian package \($0.package))" }.joined(separator: ", ")
                + ". Install them with:\n    apt-get install -y \(packages.joined(separator: " "))\n"
                + "or run scripts/bench.sh, which installs everything the benchmark needs and runs it.")
        }
        if dpLocate("clang") == nil { throw BenchError("clang not found (the Swift toolchain's clang compiles bpf/membrane.c)") }
    }

    func bpfSource() throws -> URL {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for base in [here, URL(fileURLWithPath: FileManager.default.currentDirectoryPath)] {
            let u = base.appendingPathComponent("bpf/membrane.c")
            if FileManager.default.fileExists(atPath: u.path) { return u }
        }
        throw BenchError("bpf/membrane.c not found (run from the package root)")
    }

    /// Removes what an earlier, killed run of this benchmark may have left (only our own ids).
    func removeLeftovers() {
        let left = Plumbing.leftovers()
        for ns in left.netns {
            guard let id = Int(ns.dropFirst("mb-ep-".count)), (51000...51399).contains(id) else { continue }
            let e = EndpointPlumbing(name: "leftover", netns: ns, hostInterface: "mbh\(id)", hostIfindex: 0,
                                     containerInterface: "eth0", ipv4: "", mac: "")
            try? Plumbing.deleteEndpoint(e)
            problems.append("removed a leftover namespace \(ns) from an earlier run")
        }
        for link in left.links {
            guard let id = Int(link.dropFirst(3)), (51000...51399).contains(id) else { continue }
            _ = dpRun("ip", ["link", "del", "dev", link])
        }
        removeIptables(force: true)
    }

    func labels(app: String, role: String? = nil) -> LabelSet {
        var ls = [Label(source: LabelSource.k8s, key: "app", value: app),
                  Label(source: LabelSource.k8s, key: WellKnownLabel.podNamespace, value: "bench")]
        if let role { ls.append(Label(source: LabelSource.k8s, key: "role", value: role)) }
        return LabelSet(ls)
    }

    func apply(_ yaml: String) throws -> [UInt16] {
        let set = ManifestDecoder.decode(yaml: yaml, file: "datapath-bench.yaml")
        guard set.errors.isEmpty else { throw BenchError("policy does not decode: \(set.errors)") }
        var out: [UInt16] = []
        for r in set.resources { out += engine.apply(r.body, ref: r.ref) }
        return out
    }

    func portList() -> String {
        Self.ports.map { "{port: \"\($0.port)\", protocol: \($0.proto)}" }.joined(separator: ", ")
    }

    func setUp() throws {
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        cleanup.setTmp(tmp)
        cleanup.setRoot(root)
        removeLeftovers()

        var t = dpClock.now
        let object = URL(fileURLWithPath: tmp + "/membrane.o")
        try BPFDatapath.compile(source: try bpfSource(), output: object)
        datapath = try BPFDatapath(objectFile: object, root: root)
        let loadMs = msSince(t)
        if o.drain { drain = try EventDrain(fd: datapath.events.fd) }

        t = dpClock.now
        try Plumbing.prepareHost()
        client = try cleanup.createEndpoint(id: clientID, name: "bench-client", ipv4: clientIP)
        server = try cleanup.createEndpoint(id: serverID, name: "bench-server", ipv4: serverIP)
        // Client side: plenty of ephemeral ports for the connection-rate test (namespace-local sysctls).
        _ = try cleanup.exec(client, ["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=10000 65000", "net.ipv4.tcp_tw_reuse=1"])
        let endpointsMs = msSince(t)

        // The engine: client, server, 10,000 peers; the small policies; then the large one.
        t = dpClock.now
        clientIdentity = engine.allocateIdentity(labels(app: "bench-client"))
        serverIdentity = engine.allocateIdentity(labels(app: "bench-server"))
        var peers: [Identity] = []
        peers.reserveCapacity(10_000)
        for i in 0..<10_000 { peers.append(engine.allocateIdentity(labels(app: "peer-\(i)", role: "bench-peer"))) }
        engine.upsertEndpoint(EndpointSubject(id: clientID, identity: clientIdentity))
        engine.upsertEndpoint(EndpointSubject(id: serverID, identity: serverIdentity))
        _ = try apply("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: bench-server, namespace: bench}
            spec:
              endpointSelector: {matchLabels: {app: bench-server}}
              ingress:
              - fromEndpoints: [{matchLabels: {app: bench-client}}]
                toPorts: [{ports: [\(portList())]}]
            ---
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: bench-client, namespace: bench}
            spec:
              endpointSelector: {matchLabels: {app: bench-client}}
              egress:
              - toEndpoints: [{matchLabels: {app: bench-server}}]
                toPorts: [{ports: [\(portList())]}]
            """)
        stateClient = engine.mapState(clientID)!
        stateServerB = engine.mapState(serverID)!
        let tBig = dpClock.now
        _ = try apply("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: bench-peers, namespace: bench}
            spec:
              endpointSelector: {matchLabels: {app: bench-server}}
              ingress:
              - fromEndpoints: [{matchLabels: {role: bench-peer}}]
                toPorts: [{ports: [{port: "9999", protocol: TCP}]}]
            """)
        let bigPolicyMs = msSince(tBig)
        stateServerC = engine.mapState(serverID)!
        if engine.mapState(clientID)!.count != stateClient.count { problems.append("the large policy changed the client's map state") }
        ipcacheB = [IPPrefix(clientIP + "/32")!: clientIdentity.id, IPPrefix(serverIP + "/32")!: serverIdentity.id]
        ipcacheC = ipcacheB
        for (i, p) in peers.enumerated() {
            ipcacheC[IPPrefix("10.201.\(128 + i / 256).\(i % 256)/32")!] = p.id
        }
        let engineMs = msSince(t)

        figures.append(("setup_ms", .obj([("compile_and_load", .num(loadMs)), ("two_endpoints", .num(endpointsMs)),
                                          ("engine_10k_identities_and_policies", .num(engineMs)),
                                          ("engine_upsert_10k_entry_policy", .num(bigPolicyMs))])))
        figures.append(("map_state_entries", .obj([("client", .int(stateClient.count)), ("server_b", .int(stateServerB.count)),
                                                   ("server_c", .int(stateServerC.count)), ("ipcache_b", .int(ipcacheB.count)),
                                                   ("ipcache_c", .int(ipcacheC.count))])))
        log("setup: BPF compile+load \(fmt(loadMs, 0)) ms, 2 endpoints \(fmt(endpointsMs, 0)) ms, engine (10,002 identities, "
            + "3 policies) \(fmt(engineMs, 0)) ms; map entries client \(stateClient.count), server (b) \(stateServerB.count), "
            + "server (c) \(stateServerC.count); ipcache (b) \(ipcacheB.count), (c) \(ipcacheC.count)")

        try startServers()
    }

    // MARK: Servers in the server namespace

    func startServer(_ argv: [String], log name: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: dpLocate("ip")!)
        p.arguments = ["netns", "exec", server.netns] + argv
        let path = tmp + "/" + name + ".log"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let fh = FileHandle(forWritingAtPath: path)!
        p.standardOutput = fh
        p.standardError = fh
        p.standardInput = FileHandle.nullDevice
        try p.run()
        cleanup.add(p)
        return p
    }

    func startServers() throws {
        let ng = tmp + "/nginx"
        try FileManager.default.createDirectory(atPath: ng, withIntermediateDirectories: true)
        try """
            worker_processes 1;
            daemon off;
            pid \(ng)/nginx.pid;
            error_log \(ng)/error.log warn;
            events { worker_connections 4096; }
            http {
              access_log off;
              client_body_temp_path \(ng)/body;
              proxy_temp_path \(ng)/proxy;
              fastcgi_temp_path \(ng)/fastcgi;
              uwsgi_temp_path \(ng)/uwsgi;
              scgi_temp_path \(ng)/scgi;
              server { listen \(serverIP):8080 backlog=4096; location / { return 200 "ok\\n"; } }
            }
            """.write(toFile: ng + "/nginx.conf", atomically: true, encoding: .utf8)
        _ = try startServer(["iperf3", "-s", "-B", serverIP, "-p", "5201"], log: "iperf3")
        _ = try startServer(["sockperf", "server", "--tcp", "-i", serverIP, "-p", "11111"], log: "sockperf")
        _ = try startServer(["nginx", "-c", ng + "/nginx.conf", "-p", ng + "/"], log: "nginx")
        let deadline = Date().addingTimeInterval(10)
        while true {
            let out = try cleanup.exec(server, ["ss", "-Hltn"]).stdout
            let missing = [5201, 11111, 8080].filter { !out.contains("\(serverIP):\($0)") && !out.contains("*:\($0)") }
            if missing.isEmpty { break }
            if Date() > deadline {
                let logs = ["iperf3", "sockperf", "nginx"].map { n in
                    "\(n): " + ((try? String(contentsOfFile: tmp + "/\(n).log", encoding: .utf8)) ?? "") }.joined(separator: "\n")
                throw BenchError("servers did not start listening on \(missing):\n\(logs)")
            }
            usleep(100_000)
        }
    }

    // MARK: Configurations

    func removeMembrane() throws {
        guard membraneOn else { return }
        for (e, id) in [(client!, clientID), (server!, serverID)] { try removeEndpoint(e, id) }
        membraneOn = false; bigOn = false
    }

    /// Removes Membrane from an endpoint, and checks that the programs are really gone (deleting the clsact
    /// qdisc with tc, and noting it, where they are not).
    func removeEndpoint(_ e: EndpointPlumbing, _ id: UInt16) throws {
        try datapath.removeEndpoint(ifindex: e.hostIfindex, id: id)
        if tcProgramID(ifindex: e.hostIfindex, ingress: true) != nil || tcProgramID(ifindex: e.hostIfindex, ingress: false) != nil {
            let note = "BPFDatapath.removeEndpoint left the programs attached on \(e.hostInterface); removed the clsact qdisc with tc"
            if !problems.contains(note) { problems.append(note) }
            _ = dpRun("tc", ["qdisc", "del", "dev", e.hostInterface, "clsact"])
        }
    }

    func installMembrane(big: Bool) throws {
        let t = dpClock.now
        try datapath.syncIPCache(big ? ipcacheC : ipcacheB)
        for (id, state) in [(clientID, stateClient), (serverID, big ? stateServerC : stateServerB)] {
            let r = try datapath.syncPolicy(endpoint: id, state: state)
            if r.overflow { problems.append("policy map overflow on endpoint \(id)") }
        }
        if !membraneOn {
            try attach(datapath, ifindex: client.hostIfindex, id: clientID, identity: clientIdentity.id, notes: &problems)
            try attach(datapath, ifindex: server.hostIfindex, id: serverID, identity: serverIdentity.id, notes: &problems)
        }
        membraneOn = true; bigOn = big
        switchMs[big ? "to_c" : "to_b", default: []].append(msSince(t))
    }

    var iptablesRules: String {
        let c = client.hostInterface, s = server.hostInterface
        var lines = ["*filter", ":MBB-FWD - [0:0]", ":MBB-CEG - [0:0]", ":MBB-SIN - [0:0]",
                     "-A MBB-FWD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                     "-A MBB-FWD -i \(c) -j MBB-CEG",
                     "-A MBB-FWD -o \(s) -j MBB-SIN",
                     "-A MBB-FWD -j ACCEPT"]
        for p in Self.ports {
            let pr = p.proto.lowercased()
            lines.append("-A MBB-CEG -d \(serverIP)/32 -p \(pr) -m \(pr) --dport \(p.port) -m conntrack --ctstate NEW -j RETURN")
        }
        lines.append("-A MBB-CEG -j DROP")
        for p in Self.ports {
            let pr = p.proto.lowercased()
            lines.append("-A MBB-SIN -s \(clientIP)/32 -p \(pr) -m \(pr) --dport \(p.port) -m conntrack --ctstate NEW -j ACCEPT")
        }
        lines.append("-A MBB-SIN -j DROP")
        for (dir, ifc) in [("-i", c), ("-o", c), ("-i", s), ("-o", s)] { lines.append("-I FORWARD 1 \(dir) \(ifc) -j MBB-FWD") }
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    func addIptables() throws {
        guard !iptablesOn else { return }
        let t = dpClock.now
        cleanup.setIptables { [weak self] in self?.removeIptables(force: true) }
        let r = dpRun("iptables-restore", ["--noflush"], stdin: iptablesRules)
        guard r.status == 0 else { throw BenchError("iptables-restore failed: \(r.out)") }
        iptablesOn = true
        switchMs["to_d", default: []].append(msSince(t))
    }

    /// Deletes exactly the jumps and chains this benchmark adds.
    func removeIptables(force: Bool = false) {
        guard iptablesOn || force else { return }
        let names = [51000, 51001].map { "mbh\($0)" }
        for ifc in names {
            for dir in ["-i", "-o"] {
                while dpRun("iptables", ["-D", "FORWARD", dir, ifc, "-j", "MBB-FWD"]).status == 0 {}
            }
        }
        for chain in ["MBB-FWD", "MBB-CEG", "MBB-SIN"] { _ = dpRun("iptables", ["-F", chain]) }
        for chain in ["MBB-FWD", "MBB-CEG", "MBB-SIN"] { _ = dpRun("iptables", ["-X", chain]) }
        iptablesOn = false
        if !force { cleanup.setIptables(nil) }
    }

    func switchTo(_ c: DPConfig) throws {
        if c != .d { removeIptables() }
        switch c {
        case .a: try removeMembrane()
        case .b: try installMembrane(big: false)
        case .c: try installMembrane(big: true)
        case .d: try removeMembrane(); try addIptables()
        }
    }

    // MARK: Traffic

    /// Whether a connection from the client to the server on `port` is delivered (refused counts: the SYN
    /// arrived and the RST came back) or dropped (timeout).
    func probe(from: EndpointPlumbing, _ targets: [(ip: String, port: UInt16)]) throws -> [String] {
        let script = """
            import socket,sys
            for t in sys.argv[1:]:
                ip,port=t.split(':')
                s=socket.socket(); s.settimeout(0.4)
                try:
                    s.connect((ip,int(port))); r='open'
                except ConnectionRefusedError: r='refused'
                except (socket.timeout, TimeoutError): r='timeout'
                except OSError as e: r='error%d' % (e.errno or 0)
                s.close(); print(r)
            """
        let out = try cleanup.exec(from, ["python3", "-c", script] + targets.map { "\($0.ip):\($0.port)" }, timeout: 30)
        return out.stdout.split(separator: "\n").map(String.init)
    }

    func throughput(seconds: Int) throws -> Double {
        for attempt in 0..<2 {
            let r = try cleanup.exec(client, ["iperf3", "-c", serverIP, "-p", "5201", "-t", "\(seconds)", "-J"], timeout: Double(seconds) + 20)
            if let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
               let end = obj["end"] as? [String: Any], let rx = end["sum_received"] as? [String: Any],
               let bps = rx["bits_per_second"] as? Double, bps > 0 {
                return bps / 1e9
            }
            if attempt == 1 { problems.append("iperf3 failed: \(r.stdout.prefix(300)) \(r.stderr.prefix(300))") }
            usleep(500_000)
        }
        return .nan
    }

    func requestResponse(seconds: Int) throws -> Double {
        let r = try cleanup.exec(client, ["sockperf", "ping-pong", "--tcp", "-i", serverIP, "-p", "11111", "-t", "\(seconds)"],
                                  timeout: Double(seconds) + 20)
        let text = r.stdout + r.stderr
        if let m = firstMatch(#"\[Valid Duration\] RunTime=([0-9.]+) sec; SentMessages=[0-9]+; ReceivedMessages=([0-9]+)"#, in: text),
           let secs = Double(m[0]), let n = Double(m[1]), secs > 0 {
            return n / secs
        }
        problems.append("sockperf failed: \(text.suffix(300))")
        return .nan
    }

    func connectionRate(seconds: Int) throws -> (rate: Double, errors: Int) {
        let r = try cleanup.exec(client, ["wrk", "-t1", "-c1", "-d\(seconds)s", "-H", "Connection: close", "http://\(serverIP):8080/"],
                                  timeout: Double(seconds) + 20)
        let text = r.stdout + r.stderr
        var errors = 0
        if let m = firstMatch(#"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)"#, in: text) {
            errors += m.compactMap { Int($0) }.reduce(0, +)
        }
        if let m = firstMatch(#"Non-2xx or 3xx responses: ([0-9]+)"#, in: text) { errors += Int(m[0]) ?? 0 }
        if let m = firstMatch(#"Requests/sec:\s+([0-9.]+)"#, in: text), let v = Double(m[0]) { return (v, errors) }
        problems.append("wrk failed: \(text.suffix(300))")
        return (.nan, errors)
    }

    // MARK: The matrix

    func runMatrix() throws -> [DPConfig: Measurement] {
        var m: [DPConfig: Measurement] = [:]
        let all = DPConfig.allCases
        for round in 0..<o.rounds {
            let order = (0..<all.count).map { all[($0 + round) % all.count] }
            for c in order {
                try switchTo(c)
                if round == 0 {
                    // Enforcement sanity: port 7 is in no policy: delivered (refused) without policy, dropped with one.
                    let r = try probe(from: client, [(serverIP, 7), (serverIP, 5201)])
                    sanity[c.rawValue] = "port7=\(r.first ?? "?") port5201=\(r.dropFirst().first ?? "?")"
                    let wantDrop = c != .a
                    if (r.first == "timeout") != wantDrop || !(r.dropFirst().first == "open") {
                        problems.append("enforcement sanity check failed in \(c.title): \(sanity[c.rawValue]!)")
                    }
                    if c == .c {
                        kernelCounts["server_policy_map_c"] = try datapath.readPolicy(endpoint: serverID).count
                        kernelCounts["ipcache_c"] = datapath.ipcache.keys().count
                    } else if c == .b {
                        kernelCounts["server_policy_map_b"] = try datapath.readPolicy(endpoint: serverID).count
                        kernelCounts["client_policy_map_b"] = try datapath.readPolicy(endpoint: clientID).count
                    }
                }
                var x = m[c] ?? Measurement()
                let tp = try throughput(seconds: o.tputSeconds)
                let rr = try requestResponse(seconds: o.rrSeconds)
                // Membrane's conntrack never forgets a flow, and the client's ports cycle through ~27k 4-tuples: empty it
                // (untimed) so that the connections are new flows to Membrane too, as to nf_conntrack in (d).
                if c == .b || c == .c { for k in datapath.conntrack.keys() { _ = try? datapath.conntrack.delete(k) } }
                let ev0 = drain?.count ?? 0
                let crr = try connectionRate(seconds: o.crrSeconds)
                usleep(150_000)   // let the reader catch up
                let events = Double((drain?.count ?? 0) - ev0)
                x.tput.append(tp); x.rr.append(rr); x.crr.append(crr.rate); x.crrErrors += crr.errors
                if crr.rate > 0 { x.eventsPerConn.append(events / (crr.rate * Double(o.crrSeconds))) }
                m[c] = x
                log("  round \(round + 1)/\(o.rounds) \(pad(c.title, 42)) tput \(pad(fmt(tp, 2), 6, right: true)) Gbit/s   "
                    + "rr \(pad(fmt(rr, 0), 7, right: true))/s   crr \(pad(fmt(crr.rate, 0), 6, right: true))/s"
                    + (crr.errors > 0 ? "  (\(crr.errors) wrk errors)" : ""))
            }
        }
        return m
    }

    // MARK: Profile (a) against (b)

    func runProfile() throws -> JSON {
        let secs = 2
        var rows: [(String, JSON)] = []
        let stats = bpf_enable_stats(BPF_STATS_RUN_TIME)
        if stats < 0 { problems.append("BPF_ENABLE_STATS failed (errno \(-stats)): no per-program run times") }
        defer { if stats >= 0 { close(stats) } }
        log("profile (\(secs) s per test, kernel BPF run-time statistics on; crr-fresh = after emptying the BPF conntrack map):")
        for c in [DPConfig.a, .b, .c] {
            try switchTo(c)
            var ids: [UInt32] = []
            if c != .a {
                for ing in [true, false] { if let id = tcProgramID(ifindex: server.hostIfindex, ingress: ing) { ids.append(id) } }
            }
            var tests: [(String, JSON)] = []
            // crr-fresh: the BPF conntrack map emptied first, so that the connections are new flows to Membrane (ct insert and
            // an event each). Otherwise the client's ports cycle through ~27k 4-tuples whose ct entries are never removed.
            for test in ["tput", "rr", "crr"] + (c == .b ? ["crr-fresh"] : []) {
                if test == "crr-fresh" { for k in datapath.conntrack.keys() { _ = try? datapath.conntrack.delete(k) } }
                let before = ids.map(programRunStats)
                let busy0 = machineBusyJiffies(), self0 = selfCPUSeconds(), ev0 = drain?.count ?? 0
                let t0 = dpClock.now
                var rate = Double.nan, transactions = Double.nan
                switch test {
                case "tput": rate = try throughput(seconds: secs); transactions = rate * 1e9 / 8 * Double(secs) / 1e6   // MB moved
                case "rr": rate = try requestResponse(seconds: secs); transactions = rate * Double(secs)
                default: rate = try connectionRate(seconds: secs).rate; transactions = rate * Double(secs)
                }
                usleep(150_000)
                let wall = msSince(t0) / 1000
                let after = ids.map(programRunStats)
                let busy = (machineBusyJiffies() - busy0) / 100   // USER_HZ
                let selfCPU = selfCPUSeconds() - self0
                let events = Double((drain?.count ?? 0) - ev0)
                var runs = 0.0, ns = 0.0
                for (x, y) in zip(before, after) { runs += Double(y.runs &- x.runs); ns += Double(y.ns &- x.ns) }
                let unit = test == "tput" ? "MB" : (test == "rr" ? "transaction" : "connection")
                let ctAfter = test == "crr-fresh" ? datapath.conntrack.keys().count : 0
                let cpuPer = busy / transactions * 1e6
                var fields: [(String, JSON)] = [("rate", num(rate)), ("per", .str(unit)), ("machine_cpu_us_per", num(cpuPer))]
                var line = "  \(c.rawValue) \(pad(test, 9)): \(pad(fmt(rate, test == "tput" ? 2 : 0), 8, right: true)) "
                    + "\(test == "tput" ? "Gbit/s" : "/s    ")  machine CPU \(fmt(cpuPer, 1)) µs/\(unit) (of \(fmt(busy / wall, 2)) cores busy)"
                if c != .a {
                    let bpfPer = ns / transactions / 1000
                    fields += [("bpf_runs_per", num(runs / transactions)), ("bpf_ns_per_run", num(runs > 0 ? ns / runs : .nan)),
                               ("bpf_us_per", num(bpfPer)), ("bpf_share_of_cpu", num(ns / 1e9 / busy)),
                               ("events_per", num(events / transactions)), ("bench_process_cpu_us_per", num(selfCPU / transactions * 1e6))]
                    line += "; BPF \(fmt(runs / transactions, 1)) runs × \(fmt(runs > 0 ? ns / runs : 0, 0)) ns = \(fmt(bpfPer, 2)) µs/\(unit) "
                        + "(\(fmt(100 * ns / 1e9 / busy, 1))% of CPU); events \(fmt(events / transactions, 2))/\(unit); "
                        + "event reader \(fmt(selfCPU / transactions * 1e6, 2)) µs/\(unit)"
                }
                if test == "crr-fresh" {
                    fields.append(("bpf_conntrack_entries_after", .int(ctAfter)))
                    line += "; ct entries after \(ctAfter)"
                }
                log(line)
                tests.append((test.replacingOccurrences(of: "-", with: "_"), .obj(fields)))
            }
            rows.append((c.rawValue, .obj(tests)))
        }
        let ctEntries = datapath.conntrack.keys().count
        rows.append(("bpf_conntrack_entries_at_end", .int(ctEntries)))
        log("  BPF conntrack map: \(ctEntries) entries of 65,536 (LRU; flows are never removed on FIN/RST)")
        return .obj(rows)
    }

    // MARK: Policy-change latency with many endpoints

    func runFleet() throws -> JSON {
        let n = o.fleet
        log("policy change latency: creating \(n) endpoints…")
        try switchTo(.b)
        var fleet: [(plumbing: EndpointPlumbing, id: UInt16, identity: Identity)] = []
        var t = dpClock.now
        for i in 0..<n {
            let id = UInt16(51100 + i)
            let p = try cleanup.createEndpoint(id: id, name: "bench-fleet-\(i)", ipv4: "10.201.1.\(i + 1)")
            fleet.append((p, id, engine.allocateIdentity(labels(app: "fleet-\(i)", role: "fleet"))))
        }
        let createMs = msSince(t)
        log("  created \(n) endpoints (netns + veth + address + routes) in \(fmt(createMs / 1000, 1)) s (\(fmt(createMs / Double(n), 0)) ms each)")

        t = dpClock.now
        var cache = ipcacheB
        for f in fleet {
            cache[IPPrefix(f.plumbing.ipv4 + "/32")!] = f.identity.id
            engine.upsertEndpoint(EndpointSubject(id: f.id, identity: f.identity))
        }
        try datapath.syncIPCache(cache)
        func fleetPolicy(_ port: Int) -> String {
            """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: bench-fleet, namespace: bench}
            spec:
              endpointSelector: {matchLabels: {role: fleet}}
              ingress:
              - fromEndpoints: [{matchLabels: {app: bench-server}}]
                toPorts: [{ports: [{port: "\(port)", protocol: TCP}]}]
            """
        }
        _ = try apply(fleetPolicy(20000))
        for f in fleet {
            try datapath.syncPolicy(endpoint: f.id, state: engine.mapState(f.id)!)
            try attach(datapath, ifindex: f.plumbing.hostIfindex, id: f.id, identity: f.identity.id, notes: &problems)
        }
        let installMs = msSince(t)
        let maps = try fleet.map { try BPFMap.pinned("\(datapath.root)/policy_\($0.id)") }
        defer { maps.forEach { $0.close() } }
        let mapByID = Dictionary(uniqueKeysWithValues: zip(fleet.map(\.id), maps))
        func key(_ port: Int) -> [UInt8] {
            PolicyMapKey(direction: .ingress, identity: serverIdentity.id, l4: .port(IPProtocol.tcp, UInt16(port))).encoded
        }
        func allows(_ m: BPFMap, _ port: Int) -> Bool {
            guard let v = m.lookup(key(port)) else { return false }
            return v[2] & 1 == 0
        }
        // Pre-decoded changes: the timed part starts where the agent hands the engine a decoded policy.
        var bodies: [(ResourceBody, ResourceRef)] = []
        for k in 1...o.changes {
            let set = ManifestDecoder.decode(yaml: fleetPolicy(20000 + k), file: "fleet.yaml")
            guard set.errors.isEmpty, let r = set.resources.first else { throw BenchError("fleet policy does not decode") }
            bodies.append((r.body, r.ref))
        }

        var allMs: [Double] = [], engineMs: [Double] = [], perEndpointMs: [Double] = [], firstMs: [Double] = []
        var failures = 0
        var traffic: [String] = []
        var trafficOK = true
        let sampleEvery = max(1, o.changes / 5)
        for k in 1...o.changes {
            let port = 20000 + k
            let t0 = dpClock.now
            let affected = engine.apply(bodies[k - 1].0, ref: bodies[k - 1].1)
            engineMs.append(msSince(t0))
            var seen = 0
            for id in affected {
                try datapath.syncPolicy(endpoint: id, state: engine.mapState(id)!)
                if let m = mapByID[id] {
                    // The datapath's own lookup: the new port is allowed, the old one no longer is.
                    if allows(m, port) && !allows(m, port - 1) { seen += 1 } else { failures += 1 }
                    let e = msSince(t0)
                    perEndpointMs.append(e)
                    if seen == 1 { firstMs.append(e) }
                }
            }
            allMs.append(msSince(t0))
            if seen != n { failures += 1; problems.append("change \(k): \(seen) of \(n) endpoints hold the new entry (\(affected.count) affected)") }
            if k % sampleEvery == 0 {
                let sample = [fleet[(k * 7) % n], fleet[(k * 13 + 1) % n]]
                let targets = sample.flatMap { [($0.plumbing.ipv4, UInt16(port)), ($0.plumbing.ipv4, UInt16(port - 1))] }
                let r = try probe(from: server, targets)
                let ok = r.count == targets.count && stride(from: 0, to: r.count, by: 2).allSatisfy {
                    (r[$0] == "refused" || r[$0] == "open") && r[$0 + 1] == "timeout"
                }
                trafficOK = trafficOK && ok
                traffic.append("change \(k): \(sample.map { $0.plumbing.ipv4 }.joined(separator: ",")) new port \(port) → "
                               + "\(stride(from: 0, to: r.count, by: 2).map { r[$0] }.joined(separator: "/")), old port \(port - 1) → "
                               + "\(stride(from: 1, to: r.count, by: 2).map { r[$0] }.joined(separator: "/"))")
            }
        }
        if !trafficOK { problems.append("traffic check after a policy change failed: \(traffic)") }
        let sAll = Stats(allMs), sEngine = Stats(engineMs), sEp = Stats(perEndpointMs), sFirst = Stats(firstMs)
        log("  \(o.changes) changes of a policy selecting all \(n) endpoints (engine upsertPolicy + syncPolicy × \(n), "
            + "checked by the kernel's LPM lookup):")
        row("time until all \(n) maps hold the new entry", ["p50 " + f(sAll.median), "p99 " + f(sAll.p99), "max " + f(sAll.max)],
            "p99 ≤ 50 ms", sAll.p99 <= 50 ? "PASS" : "MISS")
        row("  of which engine (upsertPolicy, \(n) endpoints)", ["p50 " + f(sEngine.median), "p99 " + f(sEngine.p99), "max " + f(sEngine.max)])
        row("time until the first endpoint enforces", ["p50 " + f(sFirst.median), "p99 " + f(sFirst.p99), "max " + f(sFirst.max)])
        row("per endpoint (\(perEndpointMs.count) samples)", ["p50 " + f(sEp.median), "p99 " + f(sEp.p99), "max " + f(sEp.max)])
        log("  traffic checks (from the server; refused/open = delivered, timeout = dropped): " + (trafficOK ? "OK" : "FAILED"))
        for l in traffic { log("    " + l) }

        // Where a sync's time goes: a sync with nothing to change, and its parts done by hand on the same maps.
        var noop: [Double] = [], outer: [Double] = [], plainHash: [Double] = [], objGet: [Double] = [], dump: [Double] = []
        for f in fleet.prefix(20) {
            var t1 = dpClock.now
            try datapath.syncPolicy(endpoint: f.id, state: engine.mapState(f.id)!)
            noop.append(msSince(t1))
            t1 = dpClock.now
            let m = try BPFMap.pinned("\(datapath.root)/policy_\(f.id)")
            objGet.append(msSince(t1))
            t1 = dpClock.now
            _ = m.entries()
            dump.append(msSince(t1))
            var fd = m.fd
            t1 = dpClock.now
            try datapath.policyMaps.update(MapLayouts.endpointID(f.id), withUnsafeBytes(of: &fd) { Array($0) })
            outer.append(msSince(t1))
            m.close()
            t1 = dpClock.now
            try datapath.endpoints.update(MapLayouts.endpointKey(ifindex: f.plumbing.hostIfindex),
                                          MapLayouts.endpointValue(id: f.id, identity: f.identity.id, audit: false))
            plainHash.append(msSince(t1))
        }
        let breakdown: [(String, Double)] = [("sync_policy_nothing_to_change", median(noop)), ("policy_maps_update_same_inner_map", median(outer)),
                                             ("endpoints_hash_update", median(plainHash)), ("bpf_obj_get_pinned_map", median(objGet)),
                                             ("dump_small_policy_map", median(dump))]
        log("  one endpoint's sync, medians of 20: " + breakdown.map { "\($0.0.replacingOccurrences(of: "_", with: " ")) \(f($0.1)) ms" }
            .joined(separator: "; "))

        t = dpClock.now
        for f in fleet {
            try? removeEndpoint(f.plumbing, f.id)
            try Plumbing.deleteEndpoint(f.plumbing)
            cleanup.forget(f.plumbing)
        }
        let deleteMs = msSince(t)
        log("  removed the \(n) endpoints in \(fmt(deleteMs / 1000, 1)) s")
        return .obj([("endpoints", .int(n)), ("changes", .int(o.changes)),
                     ("create_endpoints_s", .num(createMs / 1000)), ("install_and_first_sync_ms", .num(installMs)),
                     ("delete_endpoints_s", .num(deleteMs / 1000)),
                     ("until_all_enforce_ms", sAll.json), ("engine_ms", sEngine.json),
                     ("until_first_enforces_ms", sFirst.json), ("per_endpoint_ms", sEp.json),
                     ("sync_breakdown_median_ms", .obj(breakdown.map { ($0.0, num($0.1)) })),
                     ("kernel_check_failures", .int(failures)), ("traffic_checks_ok", .bool(trafficOK)),
                     ("traffic_checks", .arr(traffic.map { .str($0) })),
                     ("target_p99_le_50ms", .bool(sAll.p99 <= 50))])
    }

    // MARK: Report

    func report(_ m: [DPConfig: Measurement]) -> JSON {
        func med(_ c: DPConfig, _ k: KeyPath<Measurement, [Double]>) -> Double { median(m[c]?[keyPath: k] ?? []) }
        /// Median of the per-round ratios (pairs from the same round), beside the ratio of the medians.
        func paired(_ x: DPConfig, _ y: DPConfig, _ k: KeyPath<Measurement, [Double]>) -> Double {
            guard let a = m[x]?[keyPath: k], let b = m[y]?[keyPath: k] else { return .nan }
            return median(zip(a, b).map { $0 / $1 })
        }
        let metrics: [(String, KeyPath<Measurement, [Double]>, String)] = [("tput", \.tput, "Gbit/s"), ("rr", \.rr, "trans/s"), ("crr", \.crr, "conn/s")]
        log("")
        log("Medians of \(o.rounds) rounds (min–max), \(o.tputSeconds) s throughput / \(o.rrSeconds) s RR / \(o.crrSeconds) s CRR per sample:")
        log("  " + pad("configuration", 42) + pad("TCP throughput", 28, right: true) + pad("TCP RR", 26, right: true) + pad("TCP CRR", 24, right: true))
        for c in DPConfig.allCases {
            var s = "  " + pad(c.title, 42)
            for (_, k, unit) in metrics {
                let xs = (m[c]?[keyPath: k] ?? []).filter { $0.isFinite }
                let places = unit == "Gbit/s" ? 2 : 0
                let body = "\(fmt(med(c, k), places)) \(unit == "Gbit/s" ? "Gb/s" : "/s")"
                let range = xs.isEmpty ? "" : " (\(fmt(xs.min()!, places))–\(fmt(xs.max()!, places)))"
                s += pad(body + range, unit == "Gbit/s" ? 28 : (unit == "trans/s" ? 26 : 24), right: true)
            }
            log(s)
        }
        log("")
        log("Ratios (ratio of medians; median of per-round ratios in brackets):")
        var ratioJSON: [(String, JSON)] = []
        let targets: [(String, DPConfig, DPConfig, String, (Double) -> Bool?)] = [
            ("tput", .b, .a, "≥ 0.95", { $0 >= 0.95 }), ("rr", .b, .a, "(no target)", { _ in nil }), ("crr", .b, .a, "≥ 0.90", { $0 >= 0.90 }),
            ("tput", .c, .b, "within 3%", { abs($0 - 1) <= 0.03 }), ("rr", .c, .b, "within 3%", { abs($0 - 1) <= 0.03 }),
            ("crr", .c, .b, "within 3%", { abs($0 - 1) <= 0.03 }),
            ("tput", .d, .a, "(reference)", { _ in nil }), ("rr", .d, .a, "(reference)", { _ in nil }), ("crr", .d, .a, "(reference)", { _ in nil }),
            ("tput", .b, .d, "(reference)", { _ in nil }), ("rr", .b, .d, "(reference)", { _ in nil }), ("crr", .b, .d, "(reference)", { _ in nil }),
        ]
        for (name, x, y, target, pass) in targets {
            let k = metrics.first { $0.0 == name }!.1
            let r = med(x, k) / med(y, k), p = paired(x, y, k)
            let verdict = pass(r).map { $0 ? "PASS" : "MISS" } ?? ""
            log("  " + pad("(\(x.rawValue))/(\(y.rawValue)) \(name)", 16) + pad(fmt(r, 3), 7, right: true) + "  [" + fmt(p, 3) + "]   "
                + pad(target, 12) + verdict)
            ratioJSON.append(("\(x.rawValue)_over_\(y.rawValue)_\(name)", .obj([("ratio", num(r)), ("paired_median", num(p)),
                                                                               ("pass", pass(r).map { .bool($0) } ?? .null)])))
        }
        var configs: [(String, JSON)] = []
        for c in DPConfig.allCases {
            let x = m[c] ?? Measurement()
            configs.append((c.rawValue, .obj([
                ("title", .str(c.title)),
                ("tput_gbps", .obj([("median", num(med(c, \.tput))), ("samples", .arr(x.tput.map(num)))])),
                ("rr_per_s", .obj([("median", num(med(c, \.rr))), ("samples", .arr(x.rr.map(num)))])),
                ("crr_per_s", .obj([("median", num(med(c, \.crr))), ("samples", .arr(x.crr.map(num))), ("wrk_errors", .int(x.crrErrors))])),
                ("ringbuf_events_per_connection", num(median(x.eventsPerConn))),
                ("sanity", .str(sanity[c.rawValue] ?? "")),
            ])))
        }
        return .obj([("configs", .obj(configs)), ("ratios", .obj(ratioJSON)),
                     ("switch_ms", .obj(switchMs.sorted { $0.key < $1.key }.map { ($0.key, Stats($0.value).json) })),
                     ("kernel_map_entries", .obj(kernelCounts.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }))])
    }

    func run() throws -> JSON {
        let t0 = dpClock.now
        try checkPrerequisites()
        let kernel = dpRun("uname", ["-r"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
        log("Membrane datapath benchmark: client \(clientIP) ⇄ server \(serverIP), kernel \(kernel), \(ProcessInfo.processInfo.activeProcessorCount) CPUs, "
            + "\(o.rounds) rounds × configurations (a) (b) (c) (d), order rotating every round")
        try setUp()
        let matrix = try runMatrix()
        var out: [(String, JSON)] = [("kernel", .str(kernel)), ("cpus", .int(ProcessInfo.processInfo.activeProcessorCount)),
                                     ("rounds", .int(o.rounds)),
                                     ("seconds", .obj([("tput", .int(o.tputSeconds)), ("rr", .int(o.rrSeconds)), ("crr", .int(o.crrSeconds))])),
                                     ("tools", .obj([("tput", .str("iperf3, 1 TCP stream")), ("rr", .str("sockperf ping-pong --tcp")),
                                                     ("crr", .str("wrk -t1 -c1 Connection: close → nginx"))]))]
        out += figures
        out.append(("traffic", report(matrix)))
        if o.profile {
            log("")
            out.append(("profile", try runProfile()))
        }
        if o.runFleet {
            log("")
            out.append(("policy_change", try runFleet()))
        }
        out.append(("events_drained_total", .int(Int(drain?.count ?? 0))))
        out.append(("problems", .arr(problems.map { .str($0) })))
        out.append(("run_seconds", .num(msSince(t0) / 1000)))
        if !problems.isEmpty {
            log("")
            log("Problems:")
            for p in problems { log("  - " + p) }
        }
        log("")
        log("run took \(fmt(msSince(t0) / 1000, 0)) s")
        return .obj(out)
    }

    func tearDown() {
        removeIptables()
        drain?.stop()
        if membraneOn { try? removeMembrane() }
        cleanup.run()
        datapath = nil
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Entry point of `membrane-bench datapath`; returns the exit status.
func runDatapathBenchmark(_ args: [String]) -> Int32 {
    var o = DatapathBenchOptions()
    var i = 0
    while i < args.count {
        func int() -> Int { guard i + 1 < args.count, let v = Int(args[i + 1]), v > 0 else { datapathUsage() }; i += 1; return v }
        switch args[i] {
        case "--rounds": o.rounds = int()
        case "--tput-seconds": o.tputSeconds = int()
        case "--rr-seconds": o.rrSeconds = int()
        case "--crr-seconds": o.crrSeconds = int()
        case "--fleet": o.fleet = min(int(), 250)
        case "--changes": o.changes = int()
        case "--no-fleet": o.runFleet = false
        case "--no-profile": o.profile = false
        case "--no-drain": o.drain = false
        case "--json-only": o.jsonOnly = true
        case "-h", "--help": datapathUsage()
        default: datapathUsage()
        }
        i += 1
    }
    jsonOnly = o.jsonOnly
    signal(SIGPIPE, SIG_IGN)
    quietLibbpf()
    datapathCleanup.installSignalHandlers()
    let bench = DatapathBench(o)
    defer { bench.tearDown() }
    do {
        let result = try bench.run()
        print("JSON: " + result.text)
        return 0
    } catch {
        FileHandle.standardError.write(Data("membrane-bench datapath: \(error)\n".utf8))
        if !bench.problems.isEmpty {
            FileHandle.standardError.write(Data(("problems so far:\n" + bench.problems.map { "  - " + $0 }.joined(separator: "\n") + "\n").utf8))
        }
        return 1
    }
}
