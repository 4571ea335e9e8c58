import Foundation
import HubbleAPI
import SwiftProtobuf

/// Hubble's flow ring buffer: the last `capacity` flows (default 4,095, as Hubble), in arrival order, with
/// the number seen since start and the events lost before they reached it.
///
/// Every entry has a sequence number; a reader keeps its own cursor, so a slow `follow` reader that the
/// ring overtakes learns exactly how many flows it missed (sent as `lost_events`, source HUBBLE_RING_BUFFER)
/// instead of blocking the writer. Appends take the lock once per batch. Flows arrive built (`Flow_Flow`) or,
/// from the datapath, as a `FlowBatch` that builds them only for a reader.
public final class FlowStore: @unchecked Sendable {
    public static let defaultCapacity = 4095

    public let capacity: Int
    public let nodeName: String
    let startedAt = Date()
    private let lock = NSLock()
    private var entries: [Entry]
    /// Sequence number of the next entry; the oldest held is `max(0, next - capacity)`.
    private var next: UInt64 = 0
    private var seen: UInt64 = 0
    private var lostUpstream: UInt64 = 0
    private var namespaces = Set<String>()
    private var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var waiterID: UInt64 = 0

    /// A flow (built, or one of a batch's flows to build when read), or a notice that events were lost before
    /// reaching the store (kept in order with the flows).
    enum Entry {
        case flow(Flow_Flow, timeNs: Int64)
        case batched(any FlowBatch, index: Int)
        case lost(Flow_LostEvent, timeNs: Int64)

        var timeNs: Int64 {
            switch self {
            case .flow(_, let t), .lost(_, let t): t
            case .batched(let b, let i): b.timeNs(i)
            }
        }

        /// Whether a flow entry passes the filters (lost-event notices pass every filter).
        func matches(_ filters: FlowFilterSet) -> Bool {
            guard !filters.isEmpty else { return true }
            switch self {
            case .flow(let f, _): return filters.matches(f)
            case .batched(let b, let i): return filters.matches(b.flow(i, parts: filters.parts))
            case .lost: return true
            }
        }

        var isFlow: Bool { if case .lost = self { false } else { true } }
    }

    public init(capacity: Int = FlowStore.defaultCapacity, nodeName: String) {
        precondition(capacity > 0, "flow store capacity must be positive")
        self.capacity = capacity
        self.nodeName = nodeName
        entries = Array(repeating: .lost(Flow_LostEvent(), timeNs: 0), count: capacity)
    }

    // MARK: Writing

    public func append(_ flows: [Flow_Flow]) {
        guard !flows.isEmpty else { return }
        let wake = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            for f in flows {
                put(.flow(f, timeNs: f.time.nanosecondsSinceEpoch))
                if !f.source.namespace.isEmpty { namespaces.insert(f.source.namespace) }
                if !f.destination.namespace.isEmpty { namespaces.insert(f.destination.namespace) }
            }
            seen += UInt64(flows.count)
            return takeWaiters()
        }
        for w in wake { w.resume() }
    }

    public func append(_ flow: Flow_Flow) { append([flow]) }

    /// Stores a batch's flows, to be built only when read.
    public func append(_ batch: any FlowBatch) {
        guard batch.count > 0 else { return }
        let wake = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            for i in 0..<batch.count { put(.batched(batch, index: i)) }
            for n in batch.namespaces where !n.isEmpty { namespaces.insert(n) }
            seen += UInt64(batch.count)
            return takeWaiters()
        }
        for w in wake { w.resume() }
    }

    /// Records events lost before the store (e.g. the kernel ring buffer was full), as Hubble does with a
    /// LostEvent entry that readers receive in order.
    public func recordLost(_ count: UInt64, source: Flow_LostEventSource, at time: Date = Date()) {
        guard count > 0 else { return }
        var e = Flow_LostEvent()
        e.source = source
        e.numEventsLost = count
        e.first = Google_Protobuf_Timestamp(date: time)
        e.last = e.first
        let wake = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            lostUpstream += count
            put(.lost(e, timeNs: e.first.nanosecondsSinceEpoch))
            return takeWaiters()
        }
        for w in wake { w.resume() }
    }

    private func put(_ e: Entry) {
        entries[Int(next % UInt64(capacity))] = e
        next += 1
    }

    private func takeWaiters() -> [CheckedContinuation<Void, Never>] {
        guard !waiters.isEmpty else { return [] }
        defer { waiters.removeAll() }
        return Array(waiters.values)
    }

    // MARK: Status

    public struct Status: Sendable {
        public var numFlows: UInt64, maxFlows: UInt64, seenFlows: UInt64, lostUpstream: UInt64, uptimeNs: UInt64
    }

    public var status: Status {
        lock.withLock {
            Status(numFlows: min(next, UInt64(capacity)), maxFlows: UInt64(capacity), seenFlows: seen,
                   lostUpstream: lostUpstream, uptimeNs: UInt64(max(0, Date().timeIntervalSince(startedAt)) * 1e9))
        }
    }

    public var namespacesSeen: [String] { lock.withLock { namespaces.sorted() } }

    // MARK: Reading

    /// The responses to one GetFlows request, with Hubble's stream semantics (reference §2.3):
    /// `number` N without `first` = the last N matching flows, oldest first; `first` = the first N from the
    /// oldest end; `since` starts at the first flow at or after it; `until` ends the stream at the first flow
    /// after it; `follow` keeps streaming new flows (without `number` or `since`: only new ones) until the
    /// client cancels. Lost-event notices pass every filter and do not count toward N.
    public func responses(for request: Observer_GetFlowsRequest) throws -> AsyncThrowingStream<Observer_GetFlowsResponse, any Error> {
        let reader = try self.reader(for: request)
        return AsyncThrowingStream(unfolding: { try await reader.nextEntry().map(self.response) })
    }

    /// The same responses serialized, in batches of what was available at once (up to 512), for the gRPC server:
    /// one write per batch, and batched flows go from their events to bytes without building a message.
    public func encodedResponseBatches(for request: Observer_GetFlowsRequest) throws -> AsyncThrowingStream<[[UInt8]], any Error> {
        let reader = try self.reader(for: request)
        return AsyncThrowingStream(unfolding: {
            guard let batch = try await reader.nextBatch() else { return nil }
            return try batch.map(self.encodedResponse)
        })
    }

    private func reader(for request: Observer_GetFlowsRequest) throws -> Reader {
        if request.first && request.follow { throw FilterError("first cannot be specified with follow") }
        let filters = try FlowFilterSet(whitelist: request.whitelist, blacklist: request.blacklist)
        let since: Int64? = request.hasSince ? request.since.nanosecondsSinceEpoch : nil
        let until: Int64? = request.hasUntil && !request.follow ? request.until.nanosecondsSinceEpoch : nil
        let number = request.number
        let reader = Reader(store: self, filters: filters, since: since, until: until, follow: request.follow,
                            limit: request.first && number > 0 ? number : nil)
        lock.withLock {
            let oldest = next > UInt64(capacity) ? next - UInt64(capacity) : 0
            if request.first || since != nil || (number == 0 && !request.follow) {
                reader.cursor = oldest
            } else if number > 0 {
                reader.cursor = lastMatching(number, from: oldest, filters: filters, since: since, until: until)
            } else {
                reader.cursor = next
            }
            reader.end = request.follow ? nil : next
        }
        return reader
    }

    /// The sequence number from which the last `n` matching flows start (the caller holds the lock).
    private func lastMatching(_ n: UInt64, from oldest: UInt64, filters: FlowFilterSet, since: Int64?, until: Int64?) -> UInt64 {
        var found: UInt64 = 0
        var seq = next
        while seq > oldest && found < n {
            seq -= 1
            let e = entries[Int(seq % UInt64(capacity))]
            guard e.isFlow else { continue }
            let t = e.timeNs
            if let until, t > until { continue }
            if let since, t < since { break }
            if e.matches(filters) { found += 1 }
        }
        return seq
    }

    /// Copies up to `max` entries from `cursor` (the caller's lock-free snapshot); reports how many the ring
    /// overwrote before the cursor was reached.
    fileprivate func read(from cursor: UInt64, max: Int, end: UInt64?) -> (entries: [Entry], next: UInt64, missed: UInt64, atEnd: Bool) {
        lock.withLock {
            let oldest = next > UInt64(capacity) ? next - UInt64(capacity) : 0
            var c = cursor, missed: UInt64 = 0
            if c < oldest { missed = oldest - c; c = oldest }
            let stop = min(next, end ?? next, c + UInt64(max))
            var out: [Entry] = []
            out.reserveCapacity(Int(stop - c))
            while c < stop { out.append(entries[Int(c % UInt64(capacity))]); c += 1 }
            return (out, c, missed, c >= (end ?? UInt64.max) || (end == nil && c >= next))
        }
    }

    /// Waits until an entry with sequence number `seq` exists, or the task is cancelled.
    fileprivate func waitForEntry(_ seq: UInt64) async {
        let id = lock.withLock { () -> UInt64 in waiterID += 1; return waiterID }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = lock.withLock { () -> Bool in
                    if next > seq || Task.isCancelled { return true }
                    waiters[id] = c
                    return false
                }
                if ready { c.resume() }
            }
        } onCancel: {
            let c = lock.withLock { waiters.removeValue(forKey: id) }
            c?.resume()
        }
    }

    /// One GetFlows call's position in the store.
    fileprivate final class Reader: @unchecked Sendable {
        let store: FlowStore
        let filters: FlowFilterSet
        let since: Int64?, until: Int64?
        let follow: Bool
        var limit: UInt64?
        var cursor: UInt64 = 0
        var end: UInt64?
        var finished = false
        private var pending: [Entry] = []
        private var pendingIndex = 0

        init(store: FlowStore, filters: FlowFilterSet, since: Int64?, until: Int64?, follow: Bool, limit: UInt64?) {
            self.store = store; self.filters = filters; self.since = since; self.until = until; self.follow = follow; self.limit = limit
        }

        func nextEntry() async throws -> Entry? {
            if pendingIndex >= pending.count {
                guard let batch = try await nextBatch() else { return nil }
                pending = batch
                pendingIndex = 0
            }
            defer { pendingIndex += 1 }
            return pending[pendingIndex]
        }

        /// The next non-empty batch of entries to send, nil at the end of the stream.
        func nextBatch() async throws -> [Entry]? {
            var pending: [Entry] = []
            while true {
                if !pending.isEmpty { return pending }
                if finished || Task.isCancelled { return nil }
                let chunk = store.read(from: cursor, max: 512, end: end)
                cursor = chunk.next
                if chunk.missed > 0 {
                    var lost = Flow_LostEvent()
                    lost.source = .hubbleRingBuffer
                    lost.numEventsLost = chunk.missed
                    pending.append(.lost(lost, timeNs: 0))
                }
                for e in chunk.entries {
                    let t = e.timeNs
                    if let since, t < since { continue }
                    guard e.isFlow else { pending.append(e); continue }
                    if let until, t > until { finished = true; break }
                    guard e.matches(filters) else { continue }
                    pending.append(e)
                    if let l = limit {
                        if l <= 1 { finished = true; break } else { limit = l - 1 }
                    }
                }
                if chunk.atEnd && !follow { finished = true }
                if pending.isEmpty && !finished && chunk.entries.isEmpty && chunk.missed == 0 {
                    await store.waitForEntry(cursor)
                }
            }
        }
    }

    func response(_ e: Entry) -> Observer_GetFlowsResponse {
        switch e {
        case .flow(let f, _): response(flow: f)
        case .batched(let b, let i): response(flow: b.flow(i, parts: .all))
        case .lost(let l, _): response(lost: l)
        }
    }

    func encodedResponse(_ e: Entry) throws -> [UInt8] {
        switch e {
        case .batched(let b, let i): b.encodedResponse(i, nodeName: nodeName)
        default: try response(e).serializedBytes()
        }
    }

    /// The response carrying a flow, with the copies of its node name and time the real server sends.
    public func response(flow: Flow_Flow) -> Observer_GetFlowsResponse {
        var r = Observer_GetFlowsResponse()
        r.flow = flow
        r.nodeName = flow.nodeName.isEmpty ? nodeName : flow.nodeName
        r.time = flow.time
        return r
    }

    func response(lost: Flow_LostEvent) -> Observer_GetFlowsResponse {
        var r = Observer_GetFlowsResponse()
        r.lostEvents = lost
        r.nodeName = nodeName
        r.time = lost.hasFirst ? lost.first : Google_Protobuf_Timestamp(date: Date())
        return r
    }
}

extension Google_Protobuf_Timestamp {
    var nanosecondsSinceEpoch: Int64 { seconds * 1_000_000_000 + Int64(nanos) }
}
