import CLibbpf
import Foundation
import Policy
import PolicyAPI

/// Calls `body` with a libbpf option struct whose every byte is zero, padding included, before `configure`
/// sets its fields in place. libbpf rejects option structs with non-zero bytes past the fields it knows,
/// and a Swift value does not keep its padding: copying it to pass `&value` may leave garbage there
/// (seen in release builds), so the struct lives in zeroed raw memory for its whole life.
func withZeroedOptions<T, R>(_: T.Type, _ configure: (UnsafeMutablePointer<T>) -> Void,
                             _ body: (UnsafeMutablePointer<T>) throws -> R) rethrows -> R {
    let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
    defer { p.deallocate() }
    UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.stride)
    configure(p)
    return try body(p)
}

/// The loaded datapath: Membrane's tc programs and their maps, pinned under `root` so that they keep
/// enforcing when the agent stops, and are adopted (not recreated) when it starts again.
///
/// One program pair serves every endpoint: it finds the endpoint behind the interface in `endpoints`
/// and its policy map in `policy_maps` (a map of maps). Each policy map is pinned on its own
/// (`root/policy_<endpoint id>`), so that an agent restart finds the maps it programmed.
///
/// Conntrack entries remember the revisions their verdict was computed under: the endpoint's policy
/// revision (in its `endpoints` value) and the ipcache revision (`revisions`). Every change that can change
/// a verdict — `syncPolicy` that changed the map, `installEndpoint`, `removePolicyMap`, `syncIPCache` that
/// changed the cache — hands out a new revision after the change, so the next packet of every established
/// connection concerned is checked against the policy again.
///
/// A pinned map whose layout changed gets a new name (`conntrack_v2`); loading removes the pins of older
/// layouts (`obsoletePins`), carrying their entries over where they can be.
/// Not thread-safe: callers serialize their calls (the agent does, under its lock).
public final class BPFDatapath: @unchecked Sendable {
    public let root: String
    private let object: OpaquePointer
    public let policyMaps: BPFMap
    public let ipcache: BPFMap
    public let endpoints: BPFMap
    /// `conntrack_v2`.
    public let conntrack: BPFMap
    /// The ipcache revision and the revision counter (`REVISION_*` in membrane.h).
    public let revisions: BPFMap
    public let counters: BPFMap
    /// The event ring buffer (`struct event`). Events are submitted with BPF_RB_NO_WAKEUP until an eighth of
    /// the ring is waiting, so epoll reports the ring only then: a reader polls with a timeout and, after a
    /// poll that timed out, drains what is there (`ring_buffer__consume`).
    public let events: BPFMap
    let fromContainer: Int32
    let toContainer: Int32

    public static let policyMapCapacity = 16384
    /// The policies behind each entry's cookie, for attributing events.
    public let cookies = CookieTable()

    /// Pins of maps whose layout an older build had, removed on load: `conntrack` (version 1: a key per
    /// direction, a packet counter; its entries are carried over to `conntrack_v2`).
    public static let obsoletePins = ["conntrack"]

    /// Compiles bpf/membrane.c with clang's BPF target (the Swift toolchain's clang works).
    public static func compile(source: URL, output: URL, clang: String = "clang") throws {
        try FileManager.default.createDirectory(at: output.deletingLastPathComponent(), withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [clang, "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include/x86_64-linux-gnu",
                       "-c", source.path, "-o", output.path]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw DatapathError("clang -target bpf \(source.path): \(message)", errno: 0) }
    }

    /// Mounts bpffs at /sys/fs/bpf when it is not mounted yet.
    public static func ensureBPFFS() throws {
        if let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8),
           mounts.split(separator: "\n").contains(where: { $0.split(separator: " ").dropFirst().first == "/sys/fs/bpf" && $0.contains(" bpf ") }) {
            return
        }
        guard Glibc.mount("bpf", "/sys/fs/bpf", "bpf", 0, nil) == 0 else { throw DatapathError("mount bpffs at /sys/fs/bpf") }
    }

    /// Loads the object; maps already pinned under `root` are reused with their contents (adoption).
    public init(objectFile: URL, root: String = "/sys/fs/bpf/membrane") throws {
        try BPFDatapath.ensureBPFFS()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        self.root = root
        let obj: OpaquePointer? = root.withCString { rootPath in
            withZeroedOptions(bpf_object_open_opts.self, {
                $0.pointee.sz = MemoryLayout<bpf_object_open_opts>.size
                $0.pointee.pin_root_path = rootPath
            }) { bpf_object__open_file(objectFile.path, $0) }
        }
        guard let obj, libbpf_get_error(UnsafeRawPointer(obj)) == 0 else { throw DatapathError("open \(objectFile.path)") }
        let rc = bpf_object__load(obj)
        guard rc == 0 else { bpf_object__close(obj); throw DatapathError("load \(objectFile.path)", errno: -rc) }
        object = obj
        func map(_ name: String) throws -> BPFMap {
            guard let m = bpf_object__find_map_by_name(obj, name) else { throw DatapathError("map \(name) missing", errno: 0) }
            return try BPFMap(fd: bpf_map__fd(m), name: name)
        }
        func prog(_ name: String) throws -> Int32 {
            guard let p = bpf_object__find_program_by_name(obj, name) else { throw DatapathError("program \(name) missing", errno: 0) }
            return bpf_program__fd(p)
        }
        policyMaps = try map("policy_maps"); ipcache = try map("ipcache"); endpoints = try map("endpoints")
        conntrack = try map("conntrack_v2"); revisions = try map("revisions"); counters = try map("counters"); events = try map("events")
        fromContainer = try prog("from_container"); toContainer = try prog("to_container")

        for name in BPFDatapath.obsoletePins where FileManager.default.fileExists(atPath: "\(root)/\(name)") {
            if name == "conntrack", let old = try? BPFMap.pinned("\(root)/\(name)") {
                migrateConntrackV1(from: old)
                old.close()
            }
            unlink("\(root)/\(name)")
        }
        for (key, value) in endpoints.entries() where key.count == 4 && value.count == 16 {
            ifindexOf[UInt16(truncatingIfNeeded: MapLayouts.readLE32(value, at: 0))] = Int32(bitPattern: MapLayouts.readLE32(key, at: 0))
        }
        // Verdicts recorded under an earlier agent (or carried over from an older layout) are checked again.
        try bumpIPCacheRevision()
    }

    // MARK: Revisions

    /// The last revision handed out (also in `revisions`, so that a restarted agent continues the sequence).
    private var lastRevision: UInt32 = 0
    /// Which interface each installed endpoint is behind (its `endpoints` key).
    private var ifindexOf: [UInt16: Int32] = [:]

    private func nextRevision() throws -> UInt32 {
        // The map's counter too: another datapath on the same root (an agent restarted over a running one)
        // may have handed out revisions since; a revision must never come back for a different state.
        let stored = revisions.lookup(MapLayouts.le32(MapLayouts.revisionCounter)).map { MapLayouts.readLE32($0, at: 0) } ?? 0
        lastRevision = max(lastRevision, stored) &+ 1
        if lastRevision == 0 { lastRevision = 1 }
        try revisions.update(MapLayouts.le32(MapLayouts.revisionCounter), MapLayouts.le32(lastRevision))
        return lastRevision
    }

    private func bumpIPCacheRevision() throws {
        let r = try nextRevision()
        try revisions.update(MapLayouts.le32(MapLayouts.revisionIPCache), MapLayouts.le32(r))
    }

    /// Gives an installed endpoint a new policy revision (nothing to do for one not installed yet:
    /// `installEndpoint` gives it one).
    private func bumpPolicyRevision(endpoint id: UInt16) throws {
        guard let ifindex = ifindexOf[id] else { return }
        let key = MapLayouts.endpointKey(ifindex: ifindex)
        guard var value = endpoints.lookup(key), value.count == 16, MapLayouts.readLE32(value, at: 0) == UInt32(id) else {
            ifindexOf[id] = nil
            return
        }
        value.replaceSubrange(12..<16, with: MapLayouts.le32(try nextRevision()))
        do { try endpoints.update(key, value, flags: UInt64(BPF_EXIST)) } catch let e as DatapathError where e.errno == ENOENT {}
    }

    /// Carries the entries of a version-1 conntrack map (key: saddr, daddr, sport, dport, protocol, direction,
    /// pad, endpoint; value: last seen, packets, lifetime, flags) over to `conntrack_v2`, with revision 0, so
    /// that established connections keep their replies across the upgrade and are checked again on their next packet.
    private func migrateConntrackV1(from old: BPFMap) {
        guard old.keySize == 44, old.valueSize == 24 else { return }
        for (k, v) in old.entries() {
            let direction = k[37]
            let endpoint = MapLayouts.readLE32(k, at: 40)
            let lifetime = MapLayouts.readLE32(v, at: 16)
            let egress = direction == MapLayouts.directionEgress
            let (local, remote) = egress ? (Array(k[0..<16]), Array(k[16..<32])) : (Array(k[16..<32]), Array(k[0..<16]))
            let (localPort, remotePort) = egress ? (Array(k[32..<34]), Array(k[34..<36])) : (Array(k[34..<36]), Array(k[32..<34]))
            let key = MapLayouts.conntrackKey(local: local, remote: remote, localPort: localPort, remotePort: remotePort,
                                              protocol: k[36], endpoint: endpoint)
            let value = MapLayouts.conntrackValue(lastSeen: Array(v[0..<8]), lifetime: lifetime, policyRevision: 0, ipcacheRevision: 0,
                                                  direction: direction,
                                                  flags: lifetime == MapLayouts.ctLifetimeClosing ? MapLayouts.ctFlagClosing : 0)
            try? conntrack.update(key, value, flags: UInt64(BPF_NOEXIST))
        }
    }

    /// Open policy maps, and what this process last programmed into each (so a sync writes only the
    /// difference, without reading the map back).
    private var openPolicyMaps: [UInt16: BPFMap] = [:]
    private var programmed: [UInt16: [[UInt8]: [UInt8]]] = [:]

    deinit {
        for m in openPolicyMaps.values { m.close() }
        bpf_object__close(object)
    }

    // MARK: Endpoints

    /// Attaches the programs to an endpoint's host-side interface (replacing older ones atomically, so that
    /// a restarted agent takes over without a gap) and records which endpoint is behind it.
    public func installEndpoint(ifindex: Int32, id: UInt16, identity: NumericIdentity, audit: Bool) throws {
        try endpoints.update(MapLayouts.endpointKey(ifindex: ifindex),
                             MapLayouts.endpointValue(id: id, identity: identity, audit: audit, policyRevision: try nextRevision()))
        ifindexOf[id] = ifindex
        try withZeroedOptions(bpf_tc_hook.self, {
            $0.pointee.sz = MemoryLayout<bpf_tc_hook>.size
            $0.pointee.ifindex = ifindex
            $0.pointee.attach_point = BPF_TC_INGRESS
        }) { hook in
            let created = bpf_tc_hook_create(hook)
            guard created == 0 || -created == EEXIST else { throw DatapathError("create clsact on ifindex \(ifindex)", errno: -created) }
            for (point, fd) in [(BPF_TC_INGRESS, fromContainer), (BPF_TC_EGRESS, toContainer)] {
                hook.pointee.attach_point = point
                let rc = withZeroedOptions(bpf_tc_opts.self, {
                    $0.pointee.sz = MemoryLayout<bpf_tc_opts>.size
                    $0.pointee.prog_fd = fd
                    $0.pointee.handle = 1
                    $0.pointee.priority = 1
                    $0.pointee.flags = UInt32(BPF_TC_F_REPLACE.rawValue)
                }) { bpf_tc_attach(hook, $0) }
                guard rc == 0 else { throw DatapathError("attach to ifindex \(ifindex)", errno: -rc) }
            }
        }
    }

    /// Detaches from the interface (if it still exists) and forgets the endpoint, its policy map and its
    /// connection-tracking entries (so that a later endpoint with the same ID inherits no flows).
    public func removeEndpoint(ifindex: Int32, id: UInt16) throws {
        let rc = withZeroedOptions(bpf_tc_hook.self, {
            $0.pointee.sz = MemoryLayout<bpf_tc_hook>.size
            $0.pointee.ifindex = ifindex
            $0.pointee.attach_point = bpf_tc_attach_point(rawValue: BPF_TC_INGRESS.rawValue | BPF_TC_EGRESS.rawValue)
        }) { bpf_tc_hook_destroy($0) }
        // ENOENT/ENODEV/EINVAL: the interface (and its qdisc) is gone already.
        guard rc == 0 || [ENOENT, ENODEV, EINVAL].contains(-rc) else { throw DatapathError("detach from ifindex \(ifindex)", errno: -rc) }
        try endpoints.delete(MapLayouts.endpointKey(ifindex: ifindex))
        if ifindexOf[id] == ifindex { ifindexOf[id] = nil }
        try removePolicyMap(endpoint: id)
        for key in conntrack.keys() where key.count >= 44 {
            let owner = UInt32(key[40]) | UInt32(key[41]) << 8 | UInt32(key[42]) << 16 | UInt32(key[43]) << 24
            if owner == UInt32(id) { try? conntrack.delete(key) }
        }
    }

    // MARK: Policy maps

    func policyMapPath(_ endpoint: UInt16) -> String { "\(root)/policy_\(endpoint)" }

    /// The endpoint's policy map: the pinned one if it exists (adoption), else a new empty one. It is put
    /// into `policy_maps` once, when first opened: each update of a map-of-maps waits for an RCU grace period.
    public func policyMap(endpoint: UInt16) throws -> BPFMap {
        if let m = openPolicyMaps[endpoint] { return m }
        let path = policyMapPath(endpoint)
        let map: BPFMap
        if FileManager.default.fileExists(atPath: path) {
            map = try BPFMap.pinned(path)
        } else {
            let fd = withZeroedOptions(bpf_map_create_opts.self, {
                $0.pointee.sz = MemoryLayout<bpf_map_create_opts>.size
                $0.pointee.map_flags = UInt32(BPF_F_NO_PREALLOC)
            }) {
                bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "mb_policy_\(endpoint)", UInt32(PolicyMapKey.encodedSize),
                               UInt32(PolicyEntry.encodedSize), UInt32(BPFDatapath.policyMapCapacity), $0)
            }
            guard fd >= 0 else { throw DatapathError("create policy map for endpoint \(endpoint)", errno: -fd) }
            map = try BPFMap(fd: fd, name: "policy_\(endpoint)")
            try map.pin(path)
        }
        var fd = map.fd
        try policyMaps.update(MapLayouts.endpointID(endpoint), withUnsafeBytes(of: &fd) { Array($0) })
        openPolicyMaps[endpoint] = map
        // What the map holds now (adopted maps hold what the previous agent programmed).
        programmed[endpoint] = Dictionary(map.entries().map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        return map
    }

    public func removePolicyMap(endpoint: UInt16) throws {
        try policyMaps.delete(MapLayouts.endpointID(endpoint))
        unlink(policyMapPath(endpoint))
        openPolicyMaps.removeValue(forKey: endpoint)?.close()
        programmed[endpoint] = nil
        try bumpPolicyRevision(endpoint: endpoint)
    }

    /// What a policy map sync did.
    public struct SyncResult: Sendable {
        public var added = 0, changed = 0, removed = 0
        /// The desired state did not fit: the map was emptied so that everything is dropped (fail closed).
        public var overflow = false
    }

    /// Programs an endpoint's policy map to hold exactly `state`'s entries, changing entries in place. When
    /// anything changed, the endpoint gets a new policy revision afterwards: established connections are
    /// checked against the new entries on their next packet.
    ///
    /// The order keeps every intermediate state at most as permissive as the old or the new policy: new
    /// denies first, then stale allows go, then new allows come, then stale denies go. When the entries
    /// do not fit, the map is emptied — the datapath then drops everything for this endpoint — and the
    /// overflow is reported, rather than enforcing an incomplete policy that could let denied traffic through.
    @discardableResult
    public func syncPolicy(endpoint: UInt16, state: MapState) throws -> SyncResult {
        let fresh = openPolicyMaps[endpoint] == nil
        let map = try policyMap(endpoint: endpoint)
        var desired: [[UInt8]: [UInt8]] = [:]
        for (key, entry) in state.sortedEntries {
            desired[key.encoded] = entry.encoded(for: key, cookie: cookies.cookie(for: entry.origins))
        }
        var result = SyncResult()
        let existing = programmed[endpoint] ?? [:]
        defer { programmed[endpoint] = result.overflow ? [:] : desired }
        do {
            try BPFDatapath.write(map, from: existing, to: desired, &result)
        } catch {
            try? bumpPolicyRevision(endpoint: endpoint)   // what was written applies to established connections too
            throw error
        }
        // After the changes: the next packet of every connection of this endpoint is checked against them.
        if fresh || result.overflow || result.added + result.changed + result.removed > 0 {
            try bumpPolicyRevision(endpoint: endpoint)
        }
        return result
    }

    private static func write(_ map: BPFMap, from existing: [[UInt8]: [UInt8]], to desired: [[UInt8]: [UInt8]],
                              _ result: inout SyncResult) throws {
        func isDeny(_ v: [UInt8]) -> Bool { v.count > 2 && v[2] & 1 == 1 }
        if desired.count > BPFDatapath.policyMapCapacity {
            for k in existing.keys { try map.delete(k) }
            result.overflow = true
            result.removed = existing.count
            return
        }
        for (k, v) in desired where isDeny(v) && existing[k] != v {
            try map.update(k, v); if existing[k] == nil { result.added += 1 } else { result.changed += 1 }
        }
        for (k, v) in existing where !isDeny(v) && desired[k] == nil { try map.delete(k); result.removed += 1 }
        for (k, v) in desired where !isDeny(v) && existing[k] != v {
            try map.update(k, v); if existing[k] == nil { result.added += 1 } else { result.changed += 1 }
        }
        for (k, v) in existing where isDeny(v) && desired[k] == nil { try map.delete(k); result.removed += 1 }
    }

    /// The entries of an endpoint's policy map, read back from the kernel.
    public func readPolicy(endpoint: UInt16) throws -> [(key: PolicyMapKey, value: [UInt8])] {
        let map = try BPFMap.pinned(policyMapPath(endpoint))
        defer { map.close() }
        return map.entries().compactMap { e in PolicyMapKey(encoded: e.key).map { ($0, e.value) } }.sorted { $0.key < $1.key }
    }

    // MARK: ipcache

    /// Programs the ipcache to hold exactly these prefixes; when that changed anything, a new ipcache revision
    /// follows, so that established connections are checked again with their peers' current identities.
    public func syncIPCache(_ wanted: [IPPrefix: NumericIdentity]) throws {
        var desired: [[UInt8]: [UInt8]] = [:]
        for (p, id) in wanted { desired[MapLayouts.ipcacheKey(p)] = MapLayouts.ipcacheValue(identity: id) }
        let existing = Dictionary(ipcache.entries().map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        var changed = false
        do {
            for (k, v) in desired where existing[k] != v { changed = true; try ipcache.update(k, v) }
            for k in existing.keys where desired[k] == nil { changed = true; try ipcache.delete(k) }
        } catch {
            try? bumpIPCacheRevision()
            throw error
        }
        if changed { try bumpIPCacheRevision() }
    }

    // MARK: Counters

    public func counter(direction: TrafficDirection, slot: UInt8) -> UInt64 {
        counters.perCPUSum(MapLayouts.counterSlot(direction: direction, reason: slot))
    }

    public func dropCount(_ reason: DropReason, direction: TrafficDirection) -> UInt64 {
        counter(direction: direction, slot: reason.rawValue)
    }

    public func forwardCount(direction: TrafficDirection) -> UInt64 { counter(direction: direction, slot: 0) }

    /// Events the datapath could not queue because the ring buffer was full (counter slot 3).
    public var lostEvents: UInt64 { TrafficDirection.allCases.reduce(0) { $0 + counter(direction: $1, slot: 3) } }

    /// Removes everything pinned under `root` (maps and policy maps); programs go with their last attachment.
    public static func unpinAll(root: String = "/sys/fs/bpf/membrane") {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return }
        for n in names { unlink("\(root)/\(n)") }
        rmdir(root)
    }
}
