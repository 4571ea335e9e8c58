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
//   export   store (flows as the pipeline stores them: events with their context) → GetFlows → a gRPC client on
//            the unix socket, with and without a filter; the client either checks each response's framing and
//            tag (what the server can send) or decodes every Flow with SwiftProtobuf (what a Swift client can take)
//   costs    one flow built and serialized with SwiftProtobuf, written directly, and decoded
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
        // Costs of one flow, and export from a store of `exportFlows`.
        let sample = SampleFlows.batches(flows: exportFlows)
        let costs = flowCosts(sample)
        say("== per flow: build + serialize \(fmt(costs.buildSerializeNs, 0)) ns, direct encoding \(fmt(costs.encodeNs, 0)) ns, decode \(fmt(costs.decodeNs, 0)) ns (\(costs.bytes) bytes)")
        say("== export: store → GetFlows → client (\(exportFlows) flows)")
        let big = FlowStore(capacity: exportFlows, nodeName: "bench")
        for b in sample { big.append(b) }
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
        say("| share of the burst counted lost (ring full) | \(fmt(median(lostShares) * 100, 1)) % | |")
        say("| GetFlows out, no filter | \(fmt(export.all / 1e3, 0)) k flows/s | ≥ 200 k/s \(export.all >= 2e5 ? "PASS" : "MISS") |")
        say("| GetFlows out, filter --verdict DROPPED (2 of 3 match) | \(fmt(export.filtered / 1e3, 0)) k flows/s sent, \(fmt(export.scanned / 1e3, 0)) k/s scanned | ≥ 200 k/s \(export.filtered >= 2e5 ? "PASS" : "MISS") |")
        say("| GetFlows out to a Swift client decoding every Flow | \(fmt(export.decoded / 1e3, 0)) k flows/s (client-bound) | |")
        say("| one flow: build + serialize (SwiftProtobuf) / direct encoding | \(fmt(costs.buildSerializeNs, 0)) ns / \(fmt(costs.encodeNs, 0)) ns = \(fmt(costs.buildSerializeNs / costs.encodeNs, 1))× | |")
        say("| one flow: SwiftProtobuf decode (a Swift client's cost) | \(fmt(costs.decodeNs, 0)) ns | |")
        say("| event thread CPU at \(connectionsPerSecond) conn/s | \(fmt(cpu * 100, 2)) % of one core (\(sent) events) | ≤ 10 % \(cpu <= 0.1 ? "PASS" : "MISS") |")
        return .obj([("benchmark", .str("observe")), ("events_per_round", .int(events)),
                     ("decode_events_per_s", .num(decode)), ("ingest_flows_per_s", .num(ingest)),
                     ("ingest_rounds", .arr(pipelineRates.map { .num($0) })),
                     ("flow_build_serialize_ns", .num(costs.buildSerializeNs)), ("flow_encode_ns", .num(costs.encodeNs)),
                     ("flow_decode_ns", .num(costs.decodeNs)), ("flow_bytes", .int(costs.bytes)),
                     ("lost_share", .num(median(lostShares))),
                     ("export_flows_per_s", .num(export.all)), ("export_filtered_flows_per_s", .num(export.filtered)),
                     ("export_filtered_scanned_per_s", .num(export.scanned)), ("export_decoding_client_flows_per_s", .num(export.decoded)),
                     ("overhead_connections_per_s", .int(connectionsPerSecond)), ("overhead_cpu_share_of_core", .num(cpu))])
    }

    /// Nanoseconds per flow, over the first 64k sample flows: `Flow` built and serialized by SwiftProtobuf, the
    /// same response written directly, and SwiftProtobuf decoding it.
    func flowCosts(_ batches: [any FlowBatch]) -> (buildSerializeNs: Double, encodeNs: Double, decodeNs: Double, bytes: Int) {
        let flows = batches.prefix(256).flatMap { b in (0..<b.count).map { (b, $0) } }
        let store = FlowStore(nodeName: "bench")
        var bytes = 0, n = 0
        let t0 = now()
        for (b, i) in flows { bytes &+= ((try? store.response(flow: b.flow(i, parts: .all)).serializedBytes()) ?? []).count }
        let t1 = now()
        var encoded: [[UInt8]] = []
        encoded.reserveCapacity(flows.count)
        for (b, i) in flows { encoded.append(b.encodedResponse(i, nodeName: "bench")) }
        let t2 = now()
        for e in encoded { n &+= ((try? Observer_GetFlowsResponse(serializedBytes: e))?.flow.source.id ?? 0) > 0 ? 1 : 0 }
        let t3 = now()
        let count = Double(max(1, flows.count))
        return ((t1 - t0) / count * 1e9, (t2 - t1) / count * 1e9, (t3 - t2) / count * 1e9 + Double(n & 0), bytes / max(1, flows.count))
    }

    func exportRates(store: FlowStore, socket: String) async throws -> (all: Double, filtered: Double, scanned: Double, decoded: Double) {
        let server = HubbleServer(backend: HubbleObserver(flows: store), unixSocketPath: socket, tcpAddress: nil)
        let serving = Task { try await server.run() }
        defer { serving.cancel() }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(100))
        let client = try HubbleClient(server: "unix://" + socket)
        var all = Observer_GetFlowsRequest(); all.number = UInt64.max
        var filtered = all
        var f = Flow_FlowFilter(); f.verdict = [.dropped]
        filtered.whitelist = [f]
        var rates: [Double] = [], frates: [Double] = [], scanned: [Double] = [], decoded: [Double] = []
        for round in 1...rounds {
            var t = now()
            let a = try await WireClient.getFlows(socket: socket, all)
            let aSeconds = now() - t
            t = now()
            let b = try await WireClient.getFlows(socket: socket, filtered)
            let bSeconds = now() - t
            let counter = ManagedCounter()
            t = now()
            try await client.getFlows(all) { _ in counter.add(1) }
            let cSeconds = now() - t
            rates.append(Double(a.flows) / aSeconds); frates.append(Double(b.flows) / bSeconds)
            scanned.append(Double(store.status.numFlows) / bSeconds); decoded.append(Double(counter.value) / cSeconds)
            say("  round \(round): all \(a.flows) flows in \(fmt(aSeconds, 2)) s (\(a.bytes / max(1, a.flows)) bytes each); "
                + "filtered \(b.flows) in \(fmt(bSeconds, 2)) s; decoding client \(counter.value) in \(fmt(cSeconds, 2)) s")
        }
        return (median(rates), median(frates), median(scanned), median(decoded))
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
