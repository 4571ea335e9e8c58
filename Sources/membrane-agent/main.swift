import Agent
import AgentAPI
import ArgumentParser
import Foundation
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
        let agent = try Agent(config: config, logger: logger)
        var services: [any Service] = [APIServer(agent: agent, socketPath: socket, logger: logger)]
        if let manifests { services.append(ManifestWatcher(agent: agent, directory: manifests, logger: logger)) }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
