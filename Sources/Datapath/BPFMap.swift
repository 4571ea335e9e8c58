import CLibbpf
import Foundation

/// An error from the kernel or libbpf, with what was being done.
public struct DatapathError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var errno: Int32
    public var description: String {
        errno == 0 ? operation : "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
    init(_ operation: String, errno: Int32 = Glibc.errno) { self.operation = operation; self.errno = errno }
}

/// A BPF map, by file descriptor, with byte-array keys and values (the layouts are defined by the encoders).
public struct BPFMap: Sendable {
    public let fd: Int32
    public let name: String
    public let keySize: Int
    public let valueSize: Int

    init(fd: Int32, name: String) throws {
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &len) == 0 else { throw DatapathError("bpf_obj_get_info_by_fd(\(name))") }
        self.fd = fd; self.name = name
        keySize = Int(info.key_size); valueSize = Int(info.value_size)
    }

    enum Kind { case hash, lruHash, array }

    /// Creates a map (not pinned).
    static func create(_ kind: Kind, name: String, keySize: Int, valueSize: Int, maxEntries: Int, flags: UInt32 = 0) throws -> BPFMap {
        let type: bpf_map_type = switch kind {
        case .hash: BPF_MAP_TYPE_HASH
        case .lruHash: BPF_MAP_TYPE_LRU_HASH
        case .array: BPF_MAP_TYPE_ARRAY
        }
        let fd = withZeroedOptions(bpf_map_create_opts.self, {
            $0.pointee.sz = MemoryLayout<bpf_map_create_opts>.size
            $0.pointee.map_flags = flags
        }) { bpf_map_create(type, name, UInt32(keySize), UInt32(valueSize), UInt32(maxEntries), $0) }
        guard fd >= 0 else { throw DatapathError("create map \(name)", errno: -fd) }
        return try BPFMap(fd: fd, name: name)
    }

    /// Opens a pinned map.
    public static func pinned(_ path: String) throws -> BPFMap {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { throw DatapathError("bpf_obj_get(\(path))") }
        return try BPFMap(fd: fd, name: (path as NSString).lastPathComponent)
    }

    public func update(_ key: [UInt8], _ value: [UInt8], flags: UInt64 = UInt64(BPF_ANY)) throws {
        precondition(key.count == keySize && value.count == valueSize, "\(name): key/value size mismatch")
        let rc = key.withUnsafeBytes { k in value.withUnsafeBytes { v in bpf_map_update_elem(fd, k.baseAddress, v.baseAddress, flags) } }
        guard rc == 0 else { throw DatapathError("update \(name)", errno: -rc) }
    }

    /// Deletes a key; returns false when it was not there.
    @discardableResult
    public func delete(_ key: [UInt8]) throws -> Bool {
        let rc = key.withUnsafeBytes { bpf_map_delete_elem(fd, $0.baseAddress) }
        if rc == 0 { return true }
        if -rc == ENOENT || errno == ENOENT { return false }
        throw DatapathError("delete from \(name)", errno: -rc)
    }

    public func lookup(_ key: [UInt8]) -> [UInt8]? {
        var value = [UInt8](repeating: 0, count: valueSize)
        let rc = key.withUnsafeBytes { k in value.withUnsafeMutableBytes { bpf_map_lookup_elem(fd, k.baseAddress, $0.baseAddress) } }
        return rc == 0 ? value : nil
    }

    /// Every key in the map.
    public func keys() -> [[UInt8]] {
        var out: [[UInt8]] = []
        var current: [UInt8]?
        var next = [UInt8](repeating: 0, count: keySize)
        while true {
            let rc: Int32
            if let c = current {
                rc = c.withUnsafeBytes { k in next.withUnsafeMutableBytes { bpf_map_get_next_key(fd, k.baseAddress, $0.baseAddress) } }
            } else {
                rc = next.withUnsafeMutableBytes { bpf_map_get_next_key(fd, nil, $0.baseAddress) }
            }
            if rc != 0 { break }
            out.append(next)
            current = next
        }
        return out
    }

    /// Every entry in the map.
    public func entries() -> [(key: [UInt8], value: [UInt8])] {
        keys().compactMap { k in lookup(k).map { (k, $0) } }
    }

    /// Per-CPU arrays return one value per possible CPU; this sums them as little-endian u64.
    public func perCPUSum(_ key: [UInt8]) -> UInt64 {
        let cpus = Int(libbpf_num_possible_cpus())
        guard cpus > 0 else { return 0 }
        var values = [UInt8](repeating: 0, count: 8 * cpus)
        let rc = key.withUnsafeBytes { k in values.withUnsafeMutableBytes { bpf_map_lookup_elem(fd, k.baseAddress, $0.baseAddress) } }
        guard rc == 0 else { return 0 }
        var sum: UInt64 = 0
        for c in 0..<cpus {
            var v: UInt64 = 0
            for b in 0..<8 { v |= UInt64(values[c * 8 + b]) << (8 * UInt64(b)) }
            sum &+= v
        }
        return sum
    }

    public func pin(_ path: String) throws {
        guard bpf_obj_pin(fd, path) == 0 else { throw DatapathError("pin \(name) at \(path)") }
    }

    public func close() { Glibc.close(fd) }
}
