import CLibbpf
import Foundation

extension BPFDatapath {
    /// Runs one of the tc programs `repeat` times on `packet` in the kernel (BPF_PROG_TEST_RUN), without an
    /// interface: the program sees the loopback device, which is no endpoint. Benchmarks and tests use it
    /// to make the datapath emit events at the kernel's own rate. Returns the program's last verdict
    /// (TC_ACT_*) and the kernel's average time per run.
    public func testRun(egress: Bool, packet: [UInt8], repeat count: Int32) throws -> (verdict: UInt32, nsPerRun: UInt32) {
        let fd = egress ? fromContainer : toContainer
        return try packet.withUnsafeBytes { data in
            try withZeroedOptions(bpf_test_run_opts.self, {
                $0.pointee.sz = MemoryLayout<bpf_test_run_opts>.size
                $0.pointee.data_in = data.baseAddress
                $0.pointee.data_size_in = UInt32(data.count)
                $0.pointee.repeat = count
            }) { opts in
                let rc = bpf_prog_test_run_opts(fd, opts)
                guard rc == 0 else { throw DatapathError("test run of \(egress ? "from_container" : "to_container")", errno: -rc) }
                return (opts.pointee.retval, opts.pointee.duration)
            }
        }
    }

    /// An Ethernet + IPv4 + TCP SYN packet from `source` to `destination` (addresses as 4 bytes), for test runs.
    public static func tcpSynPacket(source: [UInt8], destination: [UInt8], sourcePort: UInt16, destinationPort: UInt16) -> [UInt8] {
        var p: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]           // dst MAC, src MAC, IPv4
        p += [0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0] + source + destination    // IPv4, 40 bytes, TCP
        p += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xff)]
        p += [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]            // seq, ack, offset 5, SYN
        return p
    }
}
