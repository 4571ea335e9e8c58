import Agent
import Datapath
import Foundation
import Hubble
import HubbleAPI
import HubbleClient
import HubbleServer
import SwiftProtobuf

// `membrane-bench observe`: the flow pipeline's rates, measured side by side in one run.
//   ingest   kernel ring buffer → decoded events → flows → store (events produced in the kernel with
//            BPF_PROG_TEST_RUN, faster than any consumer, so the consumer runs flat out)
//   export   store → GetFlows → a gRPC client on the unix socket, with and without a filter
//   overhead the event thread's CPU at the event rate of 10,000 connections/s (2 policy-verdict events each)

private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// CPU seconds used by the whole process and by the calling thread (getrusage).
private func cpuSeconds() -> (process: Double, thisThread: Double) {
    func seconds(_ who: Int32) -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(who), &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }
    return (seconds(RUSAGE_SELF.rawValue), seconds(1 /* RUSAGE_THREAD */))
}

/// A realistic flow as the agent produces it (endpoints with labels, a policy, TCP flags).
private func sampleFlow(_ i: Int) -> Flow_Flow {
    var f = Flow_Flow()
    f.time = Google_Protobuf_Timestamp(seconds: 1_700_000_000 + Int64(i / 1000), nanos: Int32(i % 1000) * 1_000_000)
    f.uuid = UUID().uuidString
    f.verdict = i % 2 == 0 ? .forwarded : .dropped
    f.ip.source = "10.200.0.\(i % 200 + 1)"; f.ip.destination = "10.200.1.\(i % 100 + 1)"; f.ip.ipVersion = .ipv4
    var tcp = Flow_TCP(); tcp.sourcePort = UInt32(30000 + i % 30000); tcp.destinationPort = 8080; tcp.flags.syn = true
    f.l4.protocol = .tcp(tcp)
    f.source.id = UInt32(i % 50); f.source.identity = 300; f.source.namespace = "default"; f.source.podName = "client-\(i % 50)"
    f.source.labels = ["k8s:app=client", "k8s:io.kubernetes.pod.namespace=default"]
    f.destination.id = 51; f.destination.identity = 400; f.destination.namespace = "prod"; f.destination.podName = "backend-0"
    f.destination.labels = ["k8s:app=backend", "k8s:io.kubernetes.pod.namespace=prod"]
    f.type = .l3L4; f.nodeName = "bench"; f.eventType.type = 5; f.trafficDirection = .ingress; f.policyMatchType = 2
    f.summary = "TCP Flags: SYN"
    var p = Flow_Policy(); p.name = "allow-client"; p.namespace = "prod"; p.kind = "CiliumNetworkPolicy"; p.revision = 3
    if f.verdict == .forwarded { f.ingressAllowedBy = [p] } else { f.dropReason = 133; f.dropReasonDesc = .policyDenied; f.ingressDeniedBy = [p] }
    return f
}

struct ObserveBench {
    var events = 2_000_000
    var rounds = 3
    var exportFlows = 1_000_000
    var connectionsPerSecond = 10_000
    var overheadSeconds = 5.0

    /// Emits `events` events in the kernel, then waits until the consumer has accounted for all of them
    /// (`accounted`: received + counted lost since the start); returns the seconds it all took.
    func burst(_ datapath: BPFDatapath, _ packet: [UInt8], accounted: () -> Int) throws -> Double {
        let start = now()
        var produced = 0
        while produced < events {
            let n = min(100_000, events - produced)
            _ = try datapath.testRun(egress: true, packet: packet, repeat: Int32(n))
            produced += n
        }
        while accounted() < events && now() - start < 60 { Thread.sleep(forTimeInterval: 0.001) }
        return now() - start
    }

    func run() throws -> JSON {
        let root = "/sys/fs/bpf/membrane-obsbench-\(getpid())"
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("membrane-obsbench-\(getpid())")
        defer { BPFDatapath.unpinAll(root: root); try? FileManager.default.removeItem(at: tmp) }
        guard let source = AgentConfig().resolvedBPFSource() else { throw AgentError.failed("bpf/membrane.c not found: run from the checkout") }
        let object = tmp.appendingPathComponent("membrane.o")
        try BPFDatapath.compile(source: URL(fileURLWithPath: source), output: object)
        let datapath = try BPFDatapath(objectFile: object, root: root)
        let packet = BPFDatapath.tcpSynPacket(source: [10, 250, 0, 1], destination: [10, 250, 0, 2], sourcePort: 40000, destinationPort: 8080)

        // Ingest: decode only (a reader that drops the events) beside the full pipeline, interleaved.
        say("== ingest: kernel ring buffer → flow store (\(events) events per round, \(rounds) rounds)")
        var decodeRates: [Double] = [], pipelineRates: [Double] = [], lostShares: [Double] = []
        for round in 1...rounds {
            let counter = ManagedCounter()
            let reader = try EventReader(events: datapath.events) { counter.add($0.count) }
            let lost0 = datapath.lostEvents
            let decodeSeconds = try burst(datapath, packet) { counter.value + Int(datapath.lostEvents - lost0) }
            decodeRates.append(Double(counter.value) / decodeSeconds)
            reader.stop()

            let store = FlowStore(capacity: 4095, nodeName: "bench")
            let pipeline = FlowPipeline(datapath: datapath, store: store)
            try pipeline.start(events: datapath.events)
            let (r0, l0, s0) = (pipeline.received, pipeline.lostSinceStart, store.status.seenFlows)
            let pipelineSeconds = try burst(datapath, packet) { Int(pipeline.received - r0 + pipeline.lostSinceStart - l0) }
            let r = (rate: Double(store.status.seenFlows - s0) / pipelineSeconds, stored: Double(store.status.seenFlows - s0),
                     lost: Double(pipeline.lostSinceStart - l0))
            pipeline.stop()
            pipelineRates.append(r.rate)
            lostShares.append(r.lost / Double(events))
            say("  round \(round): decode only \(fmt(decodeRates.last! / 1e6, 2)) M events/s; pipeline \(fmt(r.rate / 1e6, 2)) M flows/s into the store (\(Int(r.stored)) stored, \(Int(r.lost)) counted lost)")
        }
        // The store alone, with prebuilt flows.
        let prebuilt = (0..<1024).map(sampleFlow)
        let store = FlowStore(capacity: 4095, nodeName: "bench")
        let t0 = now()
        for _ in 0..<1000 { store.append(prebuilt) }
        let appendRate = 1_024_000 / (now() - t0)

        // Export: GetFlows from a store of `exportFlows` to a client on the unix socket.
        say("== export: store → GetFlows → client (\(exportFlows) flows)")
        let big = FlowStore(capacity: exportFlows, nodeName: "bench")
        var batch: [Flow_Flow] = []
        for i in 0..<exportFlows {
            batch.append(sampleFlow(i))
            if batch.count == 4096 { big.append(batch); batch.removeAll(keepingCapacity: true) }
        }
        big.append(batch)
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let socket = tmp.appendingPathComponent("hubble.sock").path
        let export = try blocking { try await exportRates(store: big, socket: socket) }

        // Overhead: the event thread's CPU at the event rate of `connectionsPerSecond`.
        let eventsPerSecond = connectionsPerSecond * 2
        say("== overhead: \(connectionsPerSecond) connections/s = \(eventsPerSecond) policy-verdict events/s for \(overheadSeconds) s")
        let ostore = FlowStore(capacity: 4095, nodeName: "bench")
        let pipeline = FlowPipeline(datapath: datapath, store: ostore)
        try pipeline.start(events: datapath.events)
        Thread.sleep(forTimeInterval: 0.1)
        // The producer (this thread, in the kernel's test run) is subtracted from the process' CPU time: what
        // remains is the event thread turning events into flows and storing them.
        let cpu0 = cpuSeconds()
        let start = now()
        var sent = 0
        while now() - start < overheadSeconds {
            let due = Int((now() - start) * Double(eventsPerSecond))
            if due > sent { _ = try datapath.testRun(egress: true, packet: packet, repeat: Int32(due - sent)); sent = due }
            Thread.sleep(forTimeInterval: 0.005)
        }
        Thread.sleep(forTimeInterval: 0.1)
        let cpu1 = cpuSeconds()
        let cpu = ((cpu1.process - cpu0.process) - (cpu1.thisThread - cpu0.thisThread)) / (now() - start)
        pipeline.stop()

        let ingest = median(pipelineRates), decode = median(decodeRates)
        say("")
        say("| measure | value | target |")
        say("|---|---|---|")
        say("| events decoded from the ring buffer (no flows) | \(fmt(decode / 1e6, 2)) M/s | |")
        say("| flows into the store (decode + flow + store) | \(fmt(ingest / 1e6, 2)) M/s | ≥ 1.0 M/s \(ingest >= 1e6 ? "PASS" : "MISS") |")
        say("| store append alone (prebuilt flows) | \(fmt(appendRate / 1e6, 2)) M/s | |")
        say("| share of the burst counted lost (ring full) | \(fmt(median(lostShares) * 100, 1)) % | |")
        say("| GetFlows out, no filter | \(fmt(export.all / 1e3, 0)) k flows/s | ≥ 200 k/s \(export.all >= 2e5 ? "PASS" : "MISS") |")
        say("| GetFlows out, filter --verdict DROPPED (half match) | \(fmt(export.filtered / 1e3, 0)) k flows/s sent, \(fmt(export.scanned / 1e3, 0)) k/s scanned | ≥ 200 k/s \(export.filtered >= 2e5 ? "PASS" : "MISS") |")
        say("| event thread CPU at \(connectionsPerSecond) conn/s | \(fmt(cpu * 100, 2)) % of one core (\(sent) events) | ≤ 10 % \(cpu <= 0.1 ? "PASS" : "MISS") |")
        return .obj([("benchmark", .str("observe")), ("events_per_round", .int(events)),
                     ("decode_events_per_s", .num(decode)), ("ingest_flows_per_s", .num(ingest)),
                     ("ingest_rounds", .arr(pipelineRates.map { .num($0) })), ("store_append_flows_per_s", .num(appendRate)),
                     ("lost_share", .num(median(lostShares))),
                     ("export_flows_per_s", .num(export.all)), ("export_filtered_flows_per_s", .num(export.filtered)),
                     ("export_filtered_scanned_per_s", .num(export.scanned)),
                     ("overhead_connections_per_s", .int(connectionsPerSecond)), ("overhead_cpu_share_of_core", .num(cpu))])
    }

    func exportRates(store: FlowStore, socket: String) async throws -> (all: Double, filtered: Double, scanned: Double) {
        let server = HubbleServer(backend: HubbleObserver(flows: store), unixSocketPath: socket, tcpAddress: nil)
        let serving = Task { try await server.run() }
        defer { serving.cancel() }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(100))
        let client = try HubbleClient(server: "unix://" + socket)
        func measure(_ request: Observer_GetFlowsRequest) async throws -> (count: Int, seconds: Double) {
            let counter = ManagedCounter()
            let t0 = now()
            try await client.getFlows(request) { _ in counter.add(1) }
            return (counter.value, now() - t0)
        }
        var all = Observer_GetFlowsRequest(); all.number = UInt64.max
        var filtered = all
        var f = Flow_FlowFilter(); f.verdict = [.dropped]
        filtered.whitelist = [f]
        var rates: [Double] = [], frates: [Double] = [], scanned: [Double] = []
        for round in 1...rounds {
            let a = try await measure(all)
            let b = try await measure(filtered)
            rates.append(Double(a.count) / a.seconds); frates.append(Double(b.count) / b.seconds)
            scanned.append(Double(store.status.numFlows) / b.seconds)
            say("  round \(round): all \(a.count) flows in \(fmt(a.seconds, 2)) s; filtered \(b.count) flows in \(fmt(b.seconds, 2)) s")
        }
        return (median(rates), median(frates), median(scanned))
    }
}

/// A counter shared with a callback on another thread.
final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.withLock { n += k } }
    var value: Int { lock.withLock { n } }
}

private func median(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.sorted()[xs.count / 2] }

/// Runs async work from the synchronous benchmark driver.
private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<T, Error>?
    Task { do { result = .success(try await body()) } catch { result = .failure(error) }; done.signal() }
    done.wait()
    return try result!.get()
}

func runObserveBenchmark(_ args: [String]) -> Int32 {
    var b = ObserveBench()
    var i = 0
    while i < args.count {
        func int() -> Int {
            guard i + 1 < args.count, let v = Int(args[i + 1]), v > 0 else {
                print("usage: membrane-bench observe [--events N] [--rounds N] [--export-flows N] [--connections-per-second N] [--json-only]"); exit(2)
            }
            i += 1; return v
        }
        switch args[i] {
        case "--events": b.events = int()
        case "--rounds": b.rounds = int()
        case "--export-flows": b.exportFlows = int()
        case "--connections-per-second": b.connectionsPerSecond = int()
        case "--json-only": jsonOnly = true
        default: print("usage: membrane-bench observe [--events N] [--rounds N] [--export-flows N] [--connections-per-second N] [--json-only]"); return 2
        }
        i += 1
    }
    guard getuid() == 0 else { print("membrane-bench observe: needs root (eBPF)"); return 2 }
    do {
        print("JSON: " + (try b.run()).text)
        return 0
    } catch {
        FileHandle.standardError.write(Data("membrane-bench observe: \(error)\n".utf8))
        return 1
    }
}
