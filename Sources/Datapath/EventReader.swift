import CLibbpf
import Foundation

/// Drains the datapath's `events` ring buffer on a thread of its own and hands the decoded events to
/// `deliver` in batches (one batch per wakeup), so the consumer pays one call per batch, not per event.
///
/// Records that do not decode are counted in `undecodable`, not guessed at. Events the kernel could not
/// reserve room for (the ring was full) never reach here: the datapath counts them itself
/// (`BPFDatapath.lostEvents`).
public final class EventReader: @unchecked Sendable {
    private let ring: OpaquePointer
    private let sink: Sink
    private let thread: Thread
    private let stopped = DispatchSemaphore(value: 0)

    /// Collects one poll's worth of events; reached from libbpf's C callback through its context pointer.
    final class Sink: @unchecked Sendable {
        var batch: [DatapathEvent] = []
        var undecodable: UInt64 = 0
        var received: UInt64 = 0
        var running = true
        let lock = NSLock()
        let deliver: @Sendable ([DatapathEvent]) -> Void
        init(deliver: @escaping @Sendable ([DatapathEvent]) -> Void) { self.deliver = deliver }
    }

    /// Starts reading `events` (the map from `BPFDatapath.events`). `deliver` runs on the reader thread.
    public init(events: BPFMap, deliver: @escaping @Sendable ([DatapathEvent]) -> Void) throws {
        let sink = Sink(deliver: deliver)
        let context = Unmanaged.passRetained(sink).toOpaque()
        let callback: ring_buffer_sample_fn = { ctx, data, size in
            let sink = Unmanaged<Sink>.fromOpaque(ctx!).takeUnretainedValue()
            if let event = DatapathEvent(bytes: UnsafeRawBufferPointer(start: data, count: size)) {
                sink.batch.append(event)
            } else {
                sink.lock.withLock { sink.undecodable += 1 }
            }
            return 0
        }
        guard let ring = ring_buffer__new(events.fd, callback, context, nil) else {
            Unmanaged<Sink>.fromOpaque(context).release()
            throw DatapathError("open the events ring buffer")
        }
        self.ring = ring
        self.sink = sink
        let stopped = self.stopped
        let handle = RingHandle(ring)
        thread = Thread {
            let ring = handle.ring
            sink.batch.reserveCapacity(4096)
            while sink.lock.withLock({ sink.running }) {
                // The datapath wakes the reader only when the ring fills up (BPF_RB_NO_WAKEUP otherwise): after a
                // poll timeout, consume what is waiting anyway (epoll reports nothing without a wakeup).
                let n = ring_buffer__poll(ring, 20)
                if n < 0 && -n != EINTR { break }
                if n == 0 { _ = ring_buffer__consume(ring) }
                if !sink.batch.isEmpty {
                    let batch = sink.batch
                    sink.batch.removeAll(keepingCapacity: true)
                    sink.lock.withLock { sink.received += UInt64(batch.count) }
                    sink.deliver(batch)
                }
            }
            stopped.signal()
        }
        thread.name = "membrane-events"
        thread.start()
    }

    /// Events delivered so far, and records that did not decode.
    public var counts: (received: UInt64, undecodable: UInt64) {
        sink.lock.withLock { (sink.received, sink.undecodable) }
    }

    /// Stops the thread (after its current poll) and frees the ring buffer.
    public func stop() {
        let wasRunning = sink.lock.withLock { () -> Bool in
            defer { sink.running = false }
            return sink.running
        }
        guard wasRunning else { return }
        stopped.wait()
        ring_buffer__free(ring)
        Unmanaged.passUnretained(sink).release()
    }

    deinit { stop() }
}

/// libbpf's ring buffer handle, used by the reader thread alone until `stop()` frees it.
private final class RingHandle: @unchecked Sendable {
    let ring: OpaquePointer
    init(_ ring: OpaquePointer) { self.ring = ring }
}
