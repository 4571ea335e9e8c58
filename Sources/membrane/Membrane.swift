import ArgumentParser
import Foundation

@main
struct Membrane: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membrane",
        abstract: "Identity-aware network policy for Linux: Cilium's policy model, computed and explained.",
        discussion: """
        Offline commands read Kubernetes manifests (policies, and the Namespaces, Pods, Nodes and Services they \
        apply to) from files or directories given with -f and compute what the agent would enforce. Live commands \
        talk to membrane-agent over its unix socket (--socket, or MEMBRANE_SOCKET).
        """,
        subcommands: [PolicyCommand.self, IdentityCommand.self, EndpointCommand.self, StatusCommand.self, BPFCommand.self,
                      ObserveCommand.self])
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct ManifestOptions: ParsableArguments {
    @Option(name: [.customShort("f"), .customLong("file")], parsing: .upToNextOption,
            help: "Manifest files or directories (recursively *.yaml, *.yml, *.json); - for stdin.")
    var files: [String] = []

    func validateFiles() throws {
        if files.isEmpty { throw ValidationError("at least one -f PATH is required") }
    }
}

struct OutputOptions: ParsableArguments {
    @Option(name: [.customShort("o"), .customLong("output")], help: "Output format: table or json.")
    var output: OutputFormat = .table
}

/// Writes aligned tables: columns padded to their widest cell, as cilium-dbg prints them.
func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in
            i == cells.count - 1 ? c : c.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0)
        }.joined()
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
}

func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}

func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
