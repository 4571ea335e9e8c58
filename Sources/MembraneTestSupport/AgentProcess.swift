import Foundation

/// What a program printed and how it ended.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var out: String
    public var err: String

    /// Standard output as a JSON object ([:] when it is not one).
    public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any] ?? [:] }
}

/// Runs a program to its end, feeding it `stdin`. With `env`, the program gets exactly that environment
/// (plus PATH); without, it inherits this process's. With `directory`, it runs there.
public func runProcess(_ path: String, _ args: [String] = [], env: [String: String]? = nil, directory: URL? = nil,
                       stdin: String? = nil) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.currentDirectoryURL = directory
    if var env {
        env["PATH"] = env["PATH"] ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        p.environment = env
    }
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out; p.standardError = err; p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
}

/// The checkout and the products built from it, for tests that run the real binaries.
public enum BuiltProducts {
    public static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A product beside the running test bundle, else in .build/debug.
    public static func path(_ name: String) -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
        return FileManager.default.isExecutableFile(atPath: beside.path) ? beside.path : repo.appendingPathComponent(".build/debug/\(name)").path
    }
}

public struct AgentProcessError: Error, CustomStringConvertible {
    public var description: String
}

/// A real `membrane-agent` of a test's own: socket, state, manifests and Hubble socket in a fresh temporary
/// directory, its own bpffs root and pod CIDR, metrics on a port of its own when asked (suites run in
/// parallel). Test suites subclass it with their traffic helpers.
open class AgentProcess: @unchecked Sendable {
    public let dir: String
    public let bpfRoot: String
    public let cidr: String
    public let metricsPort: Int?
    public let extraArgs: [String]
    public var socket: String { dir + "/membrane.sock" }
    public var hubbleSocket: String { dir + "/hubble.sock" }
    public var manifests: String { dir + "/manifests" }
    public private(set) var process: Process?

    /// Starts the agent; `name` tells its directories apart from other suites'.
    public init(name: String, cidr: String, metrics: Bool = true, extraArgs: [String] = []) throws {
        let tag = "\(getpid())-\(UUID().uuidString.prefix(6))"
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mb-\(name)-\(tag)").path
        bpfRoot = "/sys/fs/bpf/membrane-\(name)-\(tag)"
        self.cidr = cidr
        metricsPort = metrics ? Int.random(in: 20000...29999) : nil
        self.extraArgs = extraArgs
        try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
        try start()
    }

    /// Starts (or restarts) the agent over the same directories and pins; returns when it answers.
    public func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BuiltProducts.path("membrane-agent"))
        p.arguments = ["--socket", socket, "--state-dir", dir + "/state", "--bpf-root", bpfRoot, "--pod-cidr", cidr,
                       "--manifests", manifests, "--bpf-source", BuiltProducts.repo.appendingPathComponent("bpf/membrane.c").path,
                       "--hubble-socket", hubbleSocket, "--hubble-listen-address", "",
                       "--prometheus-serve-addr", metricsPort.map { "127.0.0.1:\($0)" } ?? ""] + extraArgs
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        for _ in 0..<100 {
            if (try? cli(["status", "-o", "json"]).status) == 0 { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw AgentProcessError(description: "the agent did not come up (socket \(socket))")
    }

    /// Kills the agent the hard way (what adoption after a crash is tested with).
    public func kill9() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    /// Runs the `membrane` CLI against this agent.
    @discardableResult
    public func cli(_ args: [String], stdin: String? = nil) throws -> ProcessResult {
        var env = ProcessInfo.processInfo.environment
        env["MEMBRANE_SOCKET"] = socket
        return try runProcess(BuiltProducts.path("membrane"), args, env: env, stdin: stdin)
    }

    /// The CLI's JSON output; throws when the command fails.
    public func json(_ args: [String]) throws -> Any {
        let r = try cli(args + ["-o", "json"])
        guard r.status == 0 else { throw AgentProcessError(description: "membrane \(args.joined(separator: " ")): \(r.err)") }
        return try JSONSerialization.jsonObject(with: Data(r.out.utf8))
    }

    public func endpoints() throws -> [[String: Any]] { try json(["endpoint", "list"]) as? [[String: Any]] ?? [] }

    /// Deletes the endpoints, stops the agent, and removes its pins and directory.
    open func tearDown() {
        if let eps = try? endpoints() {
            for e in eps { _ = try? cli(["endpoint", "delete", String(e["id"] as? Int ?? 0)]) }
        }
        if let p = process { p.terminate(); p.waitUntilExit() }
        if let names = try? FileManager.default.contentsOfDirectory(atPath: bpfRoot) { for n in names { unlink(bpfRoot + "/" + n) } }
        rmdir(bpfRoot)
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Runs a command found on PATH (`argv[0]`) with the inherited environment.
public func runCommand(_ argv: [String], stdin: String? = nil) throws -> ProcessResult {
    try runProcess("/usr/bin/env", argv, stdin: stdin)
}

/// Policies the agent suites apply through the CLI.
public enum TestPolicies {
    /// prod/db: only app=web may reach app=db, on 5432/TCP.
    public static let db = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: db, namespace: prod}
        spec:
          endpointSelector: {matchLabels: {app: db}}
          ingress:
          - fromEndpoints: [{matchLabels: {app: web}}]
            toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
        """
}
