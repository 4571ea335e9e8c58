// membrane-bench bpf-cost: the cost of one run of Membrane's tc programs on synthetic packets, with the kernel's
// BPF_PROG_TEST_RUN (no traffic, no namespaces), so that it is steady on a busy machine.
//
//   membrane-bench bpf-cost [--source bpf/membrane.c] [--repeat N] [--new-flows N]
//
// --source may name an older bpf/membrane.c (with its membrane.h beside it) to compare builds: the maps this
// benchmark fills (endpoints, ipcache, policy_maps, and revisions where the program has it) are found by name.
// The endpoint is behind the loopback device (test runs see ifindex 1); its policy allows TCP 8080 from the
// peer identity. Measured, for a policy of 10 entries and for 10,000 more entries plus 10,000 more ipcache
// entries:
//   established  a packet of an established connection, peer → endpoint (to_container), repeated
//   reply        the endpoint's reply (from_container), repeated
//   new          the first packet (SYN) of a new connection each time (a conntrack insert and an event)
// A reader drains the event ring buffer meanwhile, polling with a timeout as the agent does.
// Needs root and bpffs; creates only a pin directory under /sys/fs/bpf, removed at the end.

import CLibbpf
import Datapath
import Foundation

private struct CostError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

private func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }

private func mapped(_ a: UInt32) -> [UInt8] {
    [UInt8](repeating: 0, count: 10) + [0xff, 0xff, UInt8(a >> 24), UInt8(a >> 16 & 0xff), UInt8(a >> 8 & 0xff), UInt8(a & 0xff)]
}

private func update(_ fd: Int32, _ key: [UInt8], _ value: [UInt8]) throws {
    let rc = key.withUnsafeBytes { k in value.withUnsafeBytes { v in bpf_map_update_elem(fd, k.baseAddress, v.baseAddress, 0) } }
    guard rc == 0 else { throw CostError("map update failed: errno \(-rc)") }
}

/// Ethernet + IPv4 + TCP (20 bytes, no options) + 16 bytes of payload.
private func tcpPacket(src: UInt32, dst: UInt32, sport: UInt16, dport: UInt16, flags: UInt8) -> [UInt8] {
    var p = [UInt8](repeating: 0, count: 14 + 20 + 20 + 16)
    p[12] = 0x08; p[13] = 0x00
    p[14] = 0x45; p[16] = 0; p[17] = UInt8(p.count - 14); p[22] = 64; p[23] = 6
    for i in 0..<4 { p[26 + i] = UInt8(src >> (24 - 8 * UInt32(i)) & 0xff); p[30 + i] = UInt8(dst >> (24 - 8 * UInt32(i)) & 0xff) }
    p[34] = UInt8(sport >> 8); p[35] = UInt8(sport & 0xff); p[36] = UInt8(dport >> 8); p[37] = UInt8(dport & 0xff)
    p[46] = 0x50; p[47] = flags; p[48] = 0xff; p[49] = 0xff
    return p
}

private final class CostDrain: @unchecked Sendable {
    private let lock = NSLock()
    private var stopFlag = false
    private var rb: OpaquePointer?
    private let finished = DispatchSemaphore(value: 0)
    private var stopped: Bool { lock.lock(); defer { lock.unlock() }; return stopFlag }

    init(fd: Int32) throws {
        rb = ring_buffer__new(fd, { _, _, _ in 0 }, nil, nil)
        guard rb != nil else { throw CostError("ring_buffer__new failed") }
        Thread { [self] in
            while !stopped { if ring_buffer__poll(rb, 100) == 0 { _ = ring_buffer__consume(rb) } }
            finished.signal()
        }.start()
    }

    func stop() {
        lock.lock(); stopFlag = true; lock.unlock()
        finished.wait()
        ring_buffer__free(rb)
    }
}

func runBPFCostBenchmark(_ args: [String]) -> Int32 {
    var source = "bpf/membrane.c", repeatCount = 200_000, newFlows = 20_000
    var i = 0
    while i < args.count {
        func value() -> String {
            guard i + 1 < args.count else { print("usage: membrane-bench bpf-cost [--source FILE] [--repeat N] [--new-flows N]"); exit(2) }
            i += 1; return args[i]
        }
        switch args[i] {
        case "--source": source = value()
        case "--repeat": repeatCount = Int(value()) ?? repeatCount
        case "--new-flows": newFlows = min(Int(value()) ?? newFlows, 60_000)
        default: print("usage: membrane-bench bpf-cost [--source FILE] [--repeat N] [--new-flows N]"); return 2
        }
        i += 1
    }
    let tmp = NSTemporaryDirectory() + "membrane-bpf-cost-\(getpid())"
    let root = "/sys/fs/bpf/membrane-cost-\(getpid())"
    defer {
        if let names = try? FileManager.default.contentsOfDirectory(atPath: root) { for n in names { unlink(root + "/" + n) } }
        rmdir(root)
        try? FileManager.default.removeItem(atPath: tmp)
    }
    do {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let object = URL(fileURLWithPath: tmp + "/membrane.o")
        try BPFDatapath.compile(source: URL(fileURLWithPath: source), output: object)
        return try measure(object: object, root: root, repeatCount: repeatCount, newFlows: newFlows, source: source)
    } catch {
        FileHandle.standardError.write(Data("membrane-bench bpf-cost: \(error)\n".utf8))
        return 1
    }
}


private func measure(object: URL, root: String, repeatCount: Int, newFlows: Int, source: String) throws -> Int32 {
    let obj: OpaquePointer? = root.withCString { rootPath in
        let p = UnsafeMutablePointer<bpf_object_open_opts>.allocate(capacity: 1)
        defer { p.deallocate() }
        UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<bpf_object_open_opts>.stride)
        p.pointee.sz = MemoryLayout<bpf_object_open_opts>.size
        p.pointee.pin_root_path = rootPath
        return bpf_object__open_file(object.path, p)
    }
    guard let obj, libbpf_get_error(UnsafeRawPointer(obj)) == 0 else { throw CostError("open \(object.path)") }
    defer { bpf_object__close(obj) }
    let rc = bpf_object__load(obj)
    guard rc == 0 else { throw CostError("load: errno \(-rc)") }
    func mapFD(_ name: String) -> Int32? { bpf_object__find_map_by_name(obj, name).map { bpf_map__fd($0) } }
    func progFD(_ name: String) throws -> Int32 {
        guard let p = bpf_object__find_program_by_name(obj, name) else { throw CostError("no program \(name)") }
        return bpf_program__fd(p)
    }
    guard let endpoints = mapFD("endpoints"), let ipcache = mapFD("ipcache"), let policyMaps = mapFD("policy_maps"),
          let events = mapFD("events") else { throw CostError("maps missing") }
    let conntrack = mapFD("conntrack_v2") ?? mapFD("conntrack")
    let toContainer = try progFD("to_container"), fromContainer = try progFD("from_container")
    var info = bpf_prog_info()
    var infoLen = UInt32(MemoryLayout<bpf_prog_info>.size)
    _ = bpf_obj_get_info_by_fd(toContainer, &info, &infoLen)
    let sizes = "to_container: \(info.xlated_prog_len / 8) instructions, \(info.jited_prog_len) bytes of machine code"

    let endpointIP: UInt32 = 0x0a01_0002, peerIP: UInt32 = 0x0a01_0001   // 10.1.0.2, 10.1.0.1
    let endpointID: UInt32 = 1, endpointIdentity: UInt32 = 1000, peerIdentity: UInt32 = 2000
    try update(endpoints, le32(1), le32(endpointID) + le32(endpointIdentity) + le32(0) + le32(1))
    if let revisions = mapFD("revisions") { try update(revisions, le32(0), le32(1)) }
    try update(ipcache, le32(128) + mapped(endpointIP), le32(endpointIdentity) + le32(0))
    try update(ipcache, le32(128) + mapped(peerIP), le32(peerIdentity) + le32(0))

    // The endpoint's policy map: 10 ingress ports from the peer, as in the datapath benchmark's (b).
    let inner: Int32 = {
        let p = UnsafeMutablePointer<bpf_map_create_opts>.allocate(capacity: 1)
        defer { p.deallocate() }
        UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<bpf_map_create_opts>.stride)
        p.pointee.sz = MemoryLayout<bpf_map_create_opts>.size
        p.pointee.map_flags = UInt32(BPF_F_NO_PREALLOC)
        return bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "mb_cost_policy", 12, 12, 16384, p)
    }()
    guard inner >= 0 else { throw CostError("create policy map: errno \(-inner)") }
    defer { close(inner) }
    func policyKey(identity: UInt32, port: UInt16) -> [UInt8] { le32(64) + le32(identity) + [0, 6, UInt8(port >> 8), UInt8(port & 0xff)] }
    let allow: [UInt8] = [0, 0, 0, 0, 24, 0, 0, 0] + le32(1)
    for port: UInt16 in [5201, 11111, 8080, 443, 8443, 9090, 6379, 5432, 3306, 53] { try update(inner, policyKey(identity: peerIdentity, port: port), allow) }
    var innerFD = inner
    try update(policyMaps, le32(endpointID), withUnsafeBytes(of: &innerFD) { Array($0) })

    let drain = try CostDrain(fd: events)
    defer { drain.stop() }

    func run(_ prog: Int32, _ packet: [UInt8], repeat n: Int) throws -> (ns: Double, retval: UInt32) {
        try packet.withUnsafeBytes { data in
            let p = UnsafeMutablePointer<bpf_test_run_opts>.allocate(capacity: 1)
            defer { p.deallocate() }
            UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<bpf_test_run_opts>.stride)
            p.pointee.sz = MemoryLayout<bpf_test_run_opts>.size
            p.pointee.data_in = data.baseAddress
            p.pointee.data_size_in = UInt32(packet.count)
            p.pointee.repeat = Int32(n)
            let rc = bpf_prog_test_run_opts(prog, p)
            guard rc == 0 else { throw CostError("BPF_PROG_TEST_RUN: errno \(-rc)") }
            return (Double(p.pointee.duration), p.pointee.retval)
        }
    }
    func flushConntrack() {
        guard let ct = conntrack else { return }
        var key = [UInt8](repeating: 0, count: 44)
        while key.withUnsafeMutableBytes({ bpf_map_get_next_key(ct, nil, $0.baseAddress) }) == 0 {
            _ = key.withUnsafeBytes { bpf_map_delete_elem(ct, $0.baseAddress) }
        }
    }

    var json: [(String, JSON)] = [("source", .str(source)), ("repeat", .int(repeatCount)), ("new_flows", .int(newFlows)),
                                  ("to_container_instructions", .int(Int(info.xlated_prog_len / 8))),
                                  ("to_container_jited_bytes", .int(Int(info.jited_prog_len)))]
    say("BPF cost per run (BPF_PROG_TEST_RUN, \(source)): established/reply = median of 5 × \(repeatCount) repeats; new = mean of \(newFlows) SYNs")
    say("  " + sizes)
    for config in ["b", "c"] {
        if config == "c" {
            for k in 0..<10_000 {
                try update(ipcache, le32(128) + mapped(0x0a02_0000 + UInt32(k)), le32(100_000 + UInt32(k)) + le32(0))
                try update(inner, policyKey(identity: 100_000 + UInt32(k), port: 9999), allow)
            }
            if let revisions = mapFD("revisions") { try update(revisions, le32(0), le32(2)) }
        }
        flushConntrack()
        let forward = tcpPacket(src: peerIP, dst: endpointIP, sport: 40000, dport: 8080, flags: 0x10)
        let reply = tcpPacket(src: endpointIP, dst: peerIP, sport: 8080, dport: 40000, flags: 0x10)
        let first = try run(toContainer, tcpPacket(src: peerIP, dst: endpointIP, sport: 40000, dport: 8080, flags: 0x02), repeat: 1)
        guard first.retval == 0 else { throw CostError("the allowed SYN was dropped (retval \(first.retval))") }
        var est: [Double] = [], rep: [Double] = []
        for _ in 0..<5 {
            let e = try run(toContainer, forward, repeat: repeatCount)
            let r = try run(fromContainer, reply, repeat: repeatCount)
            guard e.retval == 0, r.retval == 0 else { throw CostError("established packets dropped (\(e.retval), \(r.retval))") }
            est.append(e.ns); rep.append(r.ns)
        }
        var total = 0.0
        for k in 0..<newFlows {
            let syn = tcpPacket(src: peerIP, dst: endpointIP, sport: UInt16(1024 + k), dport: 8080, flags: 0x02)
            let r = try run(toContainer, syn, repeat: 1)
            guard r.retval == 0 else { throw CostError("a new allowed connection was dropped") }
            total += r.ns
        }
        let denied = try run(toContainer, tcpPacket(src: peerIP, dst: endpointIP, sport: 40001, dport: 7, flags: 0x02), repeat: 1)
        let e = est.sorted()[2], r = rep.sorted()[2], n = total / Double(newFlows)
        say("  (\(config)) \(config == "b" ? "10-entry policy          " : "+10k policy, +10k ipcache")  established \(fmt(e, 0)) ns   reply \(fmt(r, 0)) ns   new \(fmt(n, 0)) ns"
            + (denied.retval == 2 ? "" : "   (WRONG: a denied SYN passed)"))
        json.append((config, .obj([("established_ns", .num(e)), ("reply_ns", .num(r)), ("new_ns", .num(n)),
                                   ("established_samples", .arr(est.map { .num($0) })), ("reply_samples", .arr(rep.map { .num($0) }))])))
    }
    print("JSON: " + JSON.obj(json).text)
    return 0
}
