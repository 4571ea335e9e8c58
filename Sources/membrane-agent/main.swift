import Agent
import AgentAPI
import ArgumentParser
import Foundation
import HubbleServer
import Logging
import Policy
import PolicyAPI
import ServiceLifecycle

@main
struct MembraneAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membrane-agent",
        abstract: "The Membrane agent: endpoints, identities, and policy enforced in eBPF on this host.",
        discussion: """
        Programs and maps are pinned under --bpf-root, so enforcement continues while the agent is stopped;
        a restarted agent adopts them, reprograms what changed and removes what is stale.
        """)

    @Option(help: "The REST API's unix socket.") var socket = AgentAPI.defaultSocket
    @Option(help: "A directory of manifests to watch (policies, CIDR groups, namespace labels).") var manifests: String?
    @Option(help: "This node's name.") var nodeName = ProcessInfo.processInfo.hostName
    @Option(help: "The IPv4 range endpoints get their address from.") var podCidr = "10.200.0.0/16"
    @Option(help: "Where maps and programs are pinned.") var bpfRoot = "/sys/fs/bpf/membrane"
    @Option(help: "Where the agent keeps the state it adopts after a restart.") var stateDir = "/run/membrane"
    @Option(help: "bpf/membrane.c (found in the checkout by default).") var bpfSource: String?
    @Option(help: "Policy enforcement mode: default, always or never.") var enforcementMode = "default"
    @Flag(help: "Audit mode: would-be drops are forwarded and reported with verdict AUDIT.") var auditMode = false
    @Option(help: "Hubble's Observer API on a unix socket (`hubble observe --server unix://PATH`); empty = off.")
    var hubbleSocket = "/run/membrane/hubble.sock"
    @Option(help: "Hubble's Observer API on TCP, host:port; empty = off.") var hubbleListenAddress = "127.0.0.1:4244"
    @Option(help: "Flows kept for observe (Hubble's ring buffer).") var hubbleEventBufferCapacity = 4095
    @Option(help: "Prometheus metrics at http://ADDRESS/metrics (host:port or :port); empty = off.") var prometheusServeAddr = ":9962"

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let logger = Logger(label: "membrane-agent")
        var config = AgentConfig()
        config.socketPath = socket
        config.manifestsDirectory = manifests
        config.nodeName = nodeName
        guard let cidr = IPPrefix(podCidr), cidr.isIPv4 else { throw ValidationError("--pod-cidr \(podCidr): expected an IPv4 prefix") }
        config.podCIDR = cidr
        config.bpfRoot = bpfRoot
        config.stateDirectory = stateDir
        config.bpfSource = bpfSource
        guard let mode = EnforcementMode(rawValue: enforcementMode) else { throw ValidationError("--enforcement-mode: default, always or never") }
        config.settings = EngineSettings(enforcementMode: mode, auditMode: auditMode)
        guard hubbleEventBufferCapacity > 0 else { throw ValidationError("--hubble-event-buffer-capacity must be positive") }
        config.flowBufferCapacity = hubbleEventBufferCapacity
        config.hubbleSocket = hubbleSocket.isEmpty ? nil : hubbleSocket
        config.hubbleListenAddress = hubbleListenAddress.isEmpty ? nil : hubbleListenAddress
        config.metricsAddress = prometheusServeAddr.isEmpty ? nil : prometheusServeAddr
        let tcp = try config.hubbleListenAddress.map { address -> (host: String, port: Int) in
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
                throw ValidationError("--hubble-listen-address \(address): expected host:port")
            }
            let host = String(address[..<colon])
            return (host.isEmpty ? "0.0.0.0" : host, port)
        }
        let agent = try Agent(config: config, logger: logger)
        var services: [any Service] = [APIServer(agent: agent, socketPath: socket, logger: logger)]
        if let manifests { services.append(ManifestWatcher(agent: agent, directory: manifests, logger: logger)) }
        if config.hubbleSocket != nil || tcp != nil {
            services.append(HubbleServer(backend: HubbleObserver(agent: agent), unixSocketPath: config.hubbleSocket, tcpAddress: tcp))
        }
        if let address = config.metricsAddress { services.append(try MetricsServer(registry: agent.metrics, address: address, logger: logger)) }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
