import AgentAPI
import Foundation
import Policy
import PolicyAPI

/// The agent's settings (`membrane-agent --help` documents each).
public struct AgentConfig: Sendable {
    public var socketPath = AgentAPI.defaultSocket
    public var manifestsDirectory: String?
    public var nodeName = ProcessInfo.processInfo.hostName
    public var podCIDR = IPPrefix("10.200.0.0/16")!
    public var bpfRoot = "/sys/fs/bpf/membrane"
    /// Where the agent keeps the state it adopts after a restart (endpoints, API-applied policies).
    public var stateDirectory = "/run/membrane"
    /// bpf/membrane.c; found next to the executable's checkout when not given.
    public var bpfSource: String?
    public var clusterName = "default"
    public var settings = EngineSettings()
    /// Flows kept for `observe` (Hubble's `--hubble-event-buffer-capacity`).
    public var flowBufferCapacity = 4095
    /// Hubble's Observer API: a unix socket and a TCP address (nil = off).
    public var hubbleSocket: String? = "/run/membrane/hubble.sock"
    public var hubbleListenAddress: String? = "127.0.0.1:4244"
    /// Prometheus `/metrics` (Cilium's `--prometheus-serve-addr`), nil = off.
    public var metricsAddress: String? = ":9962"

    public init() {}

    /// bpf/membrane.c in the first ancestor of the executable (or of the working directory) that has one.
    public func resolvedBPFSource() -> String? {
        if let bpfSource { return bpfSource }
        var candidates: [URL] = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent())
        for start in candidates {
            var dir = start
            for _ in 0..<8 {
                let file = dir.appendingPathComponent("bpf/membrane.c")
                if FileManager.default.fileExists(atPath: file.path) { return file.path }
                dir = dir.deletingLastPathComponent()
            }
        }
        return nil
    }
}

/// Errors the API reports, with their HTTP status.
public enum AgentError: Error, CustomStringConvertible, Sendable {
    case notFound(String)
    case invalid([String])
    case conflict(String)
    case failed(String)

    public var status: Int {
        switch self { case .notFound: 404; case .invalid: 400; case .conflict: 409; case .failed: 500 }
    }

    public var description: String {
        switch self {
        case .notFound(let s), .conflict(let s), .failed(let s): s
        case .invalid(let errors): errors.joined(separator: "\n")
        }
    }
}
